"""A Ray cluster on this machine for tests and benchmarks, started and stopped by process id.

Each node is ``ray start ... --block`` in a session of its own; stopping
kills the processes of those sessions (by PID) and nothing else. ``ray stop``
is never used: it kills every Ray process on the machine by name, other
people's included. Ray itself is not imported here; the ``ray`` command of
the running interpreter's environment is.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ragkit.errors import UnavailableError

START_TIMEOUT = 90.0
"""Seconds a node may take to say it started."""


class LocalRayCluster:
    """A head and ``nodes - 1`` more nodes joining it by address, ``cpus`` each, files in a temporary folder.

    Token auth is on (Ray's default for ``ray start --head``) with a token of
    its own, set in this process's environment (``RAY_AUTH_MODE``,
    ``RAY_AUTH_TOKEN``) while the cluster runs, so a driver here can connect;
    Ray reads these when it is first imported, so start the cluster first.
    Use as a context manager; :attr:`address` is the head's ``host:port``.
    """

    def __init__(self, nodes: int = 2, cpus: int = 2, object_store_bytes: int = 100_000_000) -> None:
        self.nodes = nodes
        self.cpus = cpus
        self.object_store_bytes = object_store_bytes
        self.address = ""
        self.sessions: list[int] = []
        self.folder: Path | None = None
        self._saved: dict[str, str | None] = {}

    def start(self) -> str:
        """Start the nodes; returns the head's address."""
        ray = Path(sys.executable).parent / "ray"
        if not ray.exists():
            raise UnavailableError(f"no `ray` command beside {sys.executable}: pip install 'ragkit[ray]'")
        self.folder = Path(tempfile.mkdtemp(prefix="rkray"))  # short: Ray's socket paths must stay under 108 bytes
        self._saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS")}
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        os.environ.pop("RAY_ADDRESS", None)
        common = [
            f"--num-cpus={self.cpus}",
            f"--object-store-memory={self.object_store_bytes}",
            "--disable-usage-stats",
            f"--temp-dir={self.folder}",
        ]
        try:
            head = ["--head", "--port=0", "--include-dashboard=false", *common]
            self.address = self._start(ray, head, self.folder / "head.log")
            for number in range(1, self.nodes):
                self._start(ray, [f"--address={self.address}", *common], self.folder / f"node{number}.log")
        except BaseException:
            self.stop()
            raise
        return self.address

    def _start(self, ray: Path, args: list[str], log: Path) -> str:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(ray), "start", *args, "--block"], stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        self.sessions.append(process.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "Ray runtime started" in text:
                found = re.search(r"ray start --address='([^']+)'", text)
                return found.group(1) if found else ""
            if process.poll() is not None:
                break
            time.sleep(0.3)
        raise UnavailableError(f"ray start did not start a node: {log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        """SIGTERM every process of the nodes' sessions, SIGKILL what is left after a few seconds; restore the env."""
        for sig, grace in ((signal.SIGTERM, 4.0), (signal.SIGKILL, 5.0)):
            for pid in self._pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while self._pids() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self._pids():
                break
        self.sessions = []
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved = {}
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _pids(self) -> list[int]:
        """The live (not zombie) processes of our sessions: each ``ray start`` and everything it started."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
            if int(session) in self.sessions and state != "Z":
                found.append(int(entry.name))
        return found

    def __enter__(self) -> LocalRayCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["LocalRayCluster"]
