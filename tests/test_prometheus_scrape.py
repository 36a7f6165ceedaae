"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes a real `ragkit serve` on loopback.

The scrape config is deploy/prometheus/prometheus.yml (with its alert rules) pointed at the test's server
with a one-second interval, so the deploy's own config and rules are what is checked; the test then asks
Prometheus's HTTP API for ragkit's request counter and its alert rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.service.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DEADLINE_S = 60

pytestmark = pytest.mark.skipif(
    not os.access(PROMETHEUS, os.X_OK), reason="Debian's prometheus is not installed (apt-get install prometheus)"
)


def wait_for(what: str, check: Any, process: subprocess.Popen[bytes]) -> Any:
    """Poll ``check()`` until it returns something truthy; fail with the process's output if it dies."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"{what}: the process exited with {process.returncode}:\n{output[-3000:]}")
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} did not happen within {DEADLINE_S} s"
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture()
def ragkit_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    command = [sys.executable, "-m", "ragkit.cli", "serve", "--port", str(port), "--store-dir", str(tmp_path / "home")]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("ragkit serve answering /healthz", lambda: httpx.get(f"{url}/healthz").status_code == 200, process)
        yield url
    finally:
        stop(process)


def test_prometheus_scrapes_ragkit_with_the_deploy_config(ragkit_server: str, tmp_path: Path) -> None:
    for _ in range(3):
        assert httpx.get(f"{ragkit_server}/v1/collections").status_code == 200

    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "ragkit")
    job["static_configs"][0]["targets"] = [ragkit_server.removeprefix("http://")]
    config["scrape_configs"] = [job]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    shutil.copy(REPO / "deploy" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")

    port = free_port()
    command = [
        PROMETHEUS,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        query = 'ragkit_http_requests_total{job="ragkit",route="/v1/collections",method="GET",status="200"}'

        def scraped() -> list[dict[str, Any]]:
            answer = httpx.get(f"{api}/query", params={"query": query}, timeout=5)
            return answer.json()["data"]["result"] if answer.status_code == 200 else []

        [sample] = wait_for("Prometheus holding ragkit_http_requests_total", scraped, process)
        assert float(sample["value"][1]) >= 3  # the three requests above (scrapes of /metrics are counted apart)
        assert sample["metric"]["service"] == "ragkit"  # the label the deploy config adds

        up = httpx.get(f"{api}/query", params={"query": 'up{job="ragkit"}'}, timeout=5).json()["data"]["result"]
        assert [float(s["value"][1]) for s in up] == [1.0]
        rules = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        names = {rule["name"] for group in rules for rule in group["rules"]}
        assert {"RagkitDown", "RagkitHighErrorRate"} <= names, names
        assert all(rule["health"] in ("ok", "unknown") for group in rules for rule in group["rules"])
    finally:
        stop(process)
