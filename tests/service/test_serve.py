"""``serve()``: the real entry point in its own process, with JSON log lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.service.conftest import free_port

SCRIPT = """
import sys
from ragkit.service import ServiceSettings, serve
serve(ServiceSettings(port=int(sys.argv[1]), store_dir=sys.argv[2], log_level="INFO"))
"""


def wait_until_serving(process: subprocess.Popen[Any], port: int, request_id: str | None = None) -> httpx.Response:
    """The first answer of ``/healthz`` once the service in ``process`` listens (fails if it exits or takes >60 s)."""
    headers = {"X-Request-ID": request_id} if request_id else {}
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", headers=headers)
        except httpx.TransportError:
            stderr = process.stderr.read() if process.stderr and process.poll() is not None else ""
            assert process.poll() is None, stderr or "the service exited"
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)


def test_serve_runs_uvicorn_and_logs_json_lines(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(port), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        response = wait_until_serving(process, port, "serve-1")
        assert response.json() == {"status": "ok"}
        listing = httpx.get(f"http://127.0.0.1:{port}/v1/collections", headers={"X-Request-ID": "serve-2"})
        assert listing.json() == {"collections": []}
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    health, listing_line = ([line for line in lines if line.get("request_id") == rid] for rid in ("serve-1", "serve-2"))
    assert len(health) == 1 and health[0]["logger"] == "ragkit.service.access"
    assert health[0]["route"] == "/healthz" and health[0]["status"] == 200 and health[0]["key"] is None
    assert listing_line[0]["key"] == "anonymous", "no keys configured (loopback): the caller is anonymous"
    assert any("Uvicorn running" in line["message"] for line in lines), "uvicorn's own logs are JSON too"
    assert all(line.startswith("{") for line in stderr.splitlines() if line.strip()), stderr


TEXT_SCRIPT = """
import sys
from ragkit.service import ServiceSettings, serve
serve(ServiceSettings(port=int(sys.argv[1]), store_dir=sys.argv[2], log_level="INFO", log_json=False))
"""


def test_text_logs_escape_a_newline_in_the_path_and_a_lone_key_is_one_admin_key(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", TEXT_SCRIPT, str(port), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAGKIT_API_KEYS": "lone-secret-0123"},
    )
    auth = {"Authorization": "Bearer lone-secret-0123"}
    forged = "FORGED 200 key=admin"
    try:
        wait_until_serving(process, port)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/collections").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/v1/collections", headers=auth).status_code == 200
        deleted = httpx.delete(f"http://127.0.0.1:{port}/v1/collections/nope", headers=auth)
        assert deleted.status_code == 404, "the lone key may delete (admin): a missing collection is 404, not 403"
        path = f"/v1/collections/x%0a{forged.replace(' ', '%20')}"
        response = httpx.get(f"http://127.0.0.1:{port}{path}", headers=auth)
        assert response.status_code in (400, 404)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    lines = stderr.splitlines()
    assert any("one key without a scope: it is a full-access (admin) key" in line for line in lines), stderr
    assert not any(line.startswith(forged) for line in lines), stderr
    logged = [line for line in lines if forged in line]
    assert logged and all("ragkit.service.access" in line or "uvicorn" in line for line in logged), stderr
    assert any(f"/v1/collections/x\\n{forged}" in line for line in logged), stderr


def test_on_a_terminal_the_server_logs_text_and_json_otherwise(tmp_path: Path) -> None:
    import pty

    from ragkit.service import ServiceSettings

    assert ServiceSettings().log_json is None, "the default follows the terminal"
    port = free_port()
    primary, secondary = pty.openpty()  # stderr is a terminal, as when a person runs `ragkit serve`
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(port), str(tmp_path)], stdout=subprocess.DEVNULL, stderr=secondary
    )
    os.close(secondary)
    output = b""
    try:
        wait_until_serving(process, port, "tty-1")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            output += chunk
        os.close(primary)
    lines = [line for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    assert any("Uvicorn running" in line for line in lines), lines
    assert not any(line.lstrip().startswith("{") for line in lines), "no JSON records on a terminal"
    assert any("ragkit.service.access" in line and "/healthz" in line for line in lines), lines
