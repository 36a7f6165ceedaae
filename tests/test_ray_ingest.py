"""Ingestion on Ray Data (``ragkit ingest --engine ray``) on a real local Ray cluster.

The module starts one cluster (a head and a second node joining it by
address, each ``ray start --block`` in its own session, files in a temporary
folder, token auth with a token of its own) and stops it by killing the
processes of those two sessions by PID; never ``ray stop``, which would kill
every Ray process on the machine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ragkit import Collection
from ragkit.cli import app
from tests.conftest import SAMPLE_DOCS

if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads its auth settings on first import
    pytest.skip("ray is not installed (the ragkit[ray] extra)", allow_module_level=True)
RAY = Path(sys.executable).parent / "ray"
START_TIMEOUT = 90.0


def _session_pids(sid: int) -> list[int]:
    """The processes of session ``sid`` (the ``ray start`` we ran and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:  # state, ppid, pgrp, session
            found.append(int(entry.name))
    return found


def _stop(sessions: list[int]) -> None:
    """SIGTERM every process of our sessions, then SIGKILL what is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, 4.0), (signal.SIGKILL, 5.0)):
        pids = [pid for sid in sessions for pid in _session_pids(sid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            alive = [pid for sid in sessions for pid in _session_pids(sid) if _running(pid)]
            if not alive:
                return
            time.sleep(0.2)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _start(args: list[str], log: Path, env: dict[str, str], sessions: list[int]) -> str:
    """Run ``ray start ... --block`` in a new session; the head's address once it says it started."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(RAY), "start", *args, "--block"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    sessions.append(process.pid)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Ray runtime started" in text:
            found = re.search(r"ray start --address='([^']+)'", text)
            return found.group(1) if found else ""
        if process.poll() is not None:
            break
        time.sleep(0.3)
    raise RuntimeError(f"ray start did not start: {log.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a two-node Ray cluster on this machine (2 CPUs each), started for this module."""
    from ragkit.scaleout import ray_engine

    folder = Path(tempfile.mkdtemp(prefix="rkray"))  # short: Ray's socket paths must stay under 108 bytes
    token = secrets.token_hex(32)
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    os.environ.pop("RAY_ADDRESS", None)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=2", "--object-store-memory=100000000", "--disable-usage-stats", f"--temp-dir={folder}"]
    sessions: list[int] = []
    try:
        head = ["--head", "--port=0", "--include-dashboard=false", *common]
        address = _start(head, folder / "head.log", env, sessions)
        _start([f"--address={address}", *common], folder / "node.log", env, sessions)
        ray_engine.connect(address)
        deadline = time.monotonic() + START_TIMEOUT
        while ray_engine.cluster_cpus()[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert ray_engine.cluster_cpus() == (2, 4.0)
        yield address
    finally:
        ray_engine.disconnect()
        _stop(sessions)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray-corpus")
    for path in SAMPLE_DOCS.iterdir():
        shutil.copy2(path, folder / path.name)
    (folder / "empty.txt").write_text("")  # a file with no text: failed the same way by both engines
    return folder


def _contents(collection: Collection) -> tuple[dict[str, Any], dict[str, tuple[str, str]], dict[str, np.ndarray]]:
    """Source records (without times), chunks (id -> source, text) and the vectors of a query's hits."""
    records = {
        source: (r.content_hash, r.chunk_count, r.chunk_ids, r.document_ids)
        for source, r in collection.store.sources().items()
    }
    chunks = {c.id: (c.source, c.text) for batch in collection.store.iter_chunks(500) for c in batch}
    hits = {h.chunk.id: h.score for h in collection.search("how did the oil crisis end", top_k=5)}
    return records, chunks, hits


def _ingest_with_ray(collection: Collection, corpus: Path, address: str, sync: bool = False) -> Any:
    from ragkit.scaleout import RaySettings, ingest_with_ray

    return ingest_with_ray(collection, [corpus], RaySettings(address, workers=2, batch_size=32), sync=sync)


@pytest.fixture(scope="module")
def in_process(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home-local")
    with Collection.create("docs", store_dir=home) as collection:
        collection.ingest([corpus])
    return home


def test_same_chunks_ids_and_counts_as_in_process(cluster: str, corpus: Path, in_process: Path, tmp_path: Path) -> None:
    with Collection.open("docs", store_dir=in_process) as local:
        expected = _contents(local)
        local_report = local.ingest([corpus])  # nothing changed: the in-process ingest skips all
    with Collection.create("docs", store_dir=tmp_path) as collection:
        report = _ingest_with_ray(collection, corpus, cluster)
        records, chunks, hits = _contents(collection)
    assert report.added == 5 and report.updated == 0
    assert [f.source for f in report.failed] == ["empty.txt"]
    assert local_report.unchanged == 5
    assert records == expected[0]
    assert chunks == expected[1] and len(chunks) == report.chunks_written
    assert list(hits) == list(expected[2])
    assert np.allclose(list(hits.values()), list(expected[2].values()), atol=2e-3)  # batches padded differently


def test_second_run_skips_unchanged_updates_changed_and_syncs_deleted_via_cli(
    cluster: str, corpus: Path, tmp_path: Path
) -> None:
    homes = {engine: tmp_path / engine for engine in ("local", "ray")}
    works = {engine: tmp_path / f"docs-{engine}" for engine in homes}
    options = {"local": [], "ray": ["--engine", "ray", "--address", cluster, "--workers", "2", "--batch-size", "16"]}

    def ingest(engine: str, *more: str) -> dict[str, Any]:
        args = ["ingest", str(works[engine]), "-c", "docs", "--store-dir", str(homes[engine]), "--json", *more]
        result = CliRunner().invoke(app, [*args, *options[engine]])
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    for engine, work in works.items():
        shutil.copytree(corpus, work)
        assert ingest(engine)["added"] == 5
        (work / "black-death.txt").write_text("The plague came back.\n\nIt was rewritten for this test.\n")
        (work / "packet-switching.md").unlink()
    report = ingest("ray", "--sync")
    assert (report["added"], report["updated"], report["unchanged"], report["deleted"]) == (0, 1, 3, 1)
    assert report["chunks_written"] == 1 and report["chunks_deleted"] > 1
    assert ingest("local", "--sync")["deleted"] == 1
    found = {}
    for engine, home in homes.items():
        with Collection.open("docs", store_dir=home) as collection:
            records, chunks, _ = _contents(collection)
        found[engine] = (records, sorted(chunks.values()))
    assert "packet-switching.md" not in found["ray"][0] and found["ray"][0]["black-death.txt"][1] == 1
    assert found["ray"] == found["local"]
