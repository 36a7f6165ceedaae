"""deploy/: the Compose file, Prometheus and Grafana configs, and the Helm chart, validated offline.

Compose: Debian's ``docker-compose`` (1.29, rejects unknown keys) renders the file with each
profile; the ragkit service's environment is loaded by the real settings and served on loopback.
Prometheus: ``promtool`` checks the scrape config and alert rules. Grafana: every metric the
dashboard queries is one the real ``/metrics`` exposes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ragkit.service import ServiceSettings, create_app
from tests.service.conftest import LiveServer

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "ragkit.json"
PROFILES = ["milvus", "observability", "vllm", "tgi"]
KEY = "compose-test-key-0123456789"

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="Debian's docker-compose (apt install docker-compose) is missing"
)
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (apt install prometheus) is missing"
)


def compose_config(*profiles: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` of deploy/compose.yaml with these profiles, in a clean environment."""
    args = ["docker-compose", "-f", str(COMPOSE)]
    for profile in profiles:
        args += ["--profile", profile]
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [*args, "config"], env={**base, **(env or {})}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """The whole file rendered with every profile (services keep their ``profiles`` key)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("Debian's docker-compose (apt install docker-compose) is missing")
    result = compose_config(*PROFILES, env={"RAGKIT_API_KEYS": f"{KEY}:admin"})
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


@needs_compose
@pytest.mark.parametrize("profiles", [(), *((p,) for p in PROFILES)], ids=lambda p: "+".join(p) or "default")
def test_compose_file_is_valid_with_each_profile(profiles: tuple[str, ...]) -> None:
    result = compose_config(*profiles, env={"RAGKIT_API_KEYS": f"{KEY}:admin"})
    assert result.returncode == 0, result.stderr


@needs_compose
def test_compose_validation_rejects_an_unknown_key(tmp_path: Path) -> None:
    """The check above can fail: docker-compose 1.29 refuses a key the Compose schema does not know."""
    broken = COMPOSE.read_text().replace("    restart: unless-stopped\n", "    restart_policy: always\n", 1)
    (tmp_path / "compose.yaml").write_text(broken)
    result = subprocess.run(
        ["docker-compose", "-f", str(tmp_path / "compose.yaml"), "config", "-q"],
        env={"PATH": os.environ["PATH"], "RAGKIT_API_KEYS": f"{KEY}:admin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "restart_policy" in result.stderr


@needs_compose
def test_compose_refuses_to_start_ragkit_without_api_keys() -> None:
    result = compose_config()
    assert result.returncode != 0
    assert "RAGKIT_API_KEYS" in result.stderr


def test_only_ragkit_starts_without_a_profile(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    default = sorted(name for name, service in services.items() if not service.get("profiles"))
    assert default == ["ragkit"]
    assert {p for service in services.values() for p in service.get("profiles", [])} == set(PROFILES)
    assert "depends_on" not in services["ragkit"]  # it must not pull a profile's service in
    for name in ("etcd", "minio", "milvus"):
        assert services[name]["profiles"] == ["milvus"] and "healthcheck" in services[name], name
    assert set(services["milvus"]["depends_on"]) == {"etcd", "minio"}
    assert services["milvus"]["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert services["milvus"]["environment"]["MINIO_ADDRESS"] == "minio:9000"


def test_gpu_profiles_reserve_a_gpu(rendered: dict[str, Any]) -> None:
    for name in ("vllm", "tgi"):
        devices = rendered["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices and "gpu" in devices[0]["capabilities"], name


def test_published_ports_bind_loopback_only(rendered: dict[str, Any]) -> None:
    for name, service in rendered["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)


def test_bind_mounted_configs_exist_and_match_the_containers_paths(rendered: dict[str, Any]) -> None:
    sources = []
    for service in rendered["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("/"):
                sources.append(Path(source))
    assert sources and all(path.exists() for path in sources), sources
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/ragkit.yaml").read_text())
    grafana_mounts = rendered["services"]["grafana"]["volumes"]
    dashboards_target = next(v.split(":")[1] for v in grafana_mounts if "grafana/dashboards" in v.split(":")[0])
    assert provider["providers"][0]["options"]["path"] == dashboards_target
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["ragkit:8000"] and scrape["metrics_path"] == "/metrics"


@needs_promtool
def test_promtool_accepts_the_scrape_config_and_alert_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 rules found" in result.stdout + result.stderr


def _queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [dashboard["templating"]["list"][1]["definition"]]
    exprs += [r["expr"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    return {name for expr in exprs for name in re.findall(r"\bragkit_[a-z_]+", expr)}


def test_the_compose_service_settings_load_and_every_dashboard_metric_is_exposed(
    rendered: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ragkit's compose environment is read by the real settings and served; /metrics has what Grafana asks."""
    environment = rendered["services"]["ragkit"]["environment"]
    for name, value in environment.items():
        if name.startswith("RAGKIT_"):
            monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("RAGKIT_STORE_DIR", str(tmp_path))
    settings = ServiceSettings.load()
    assert settings.host == "0.0.0.0" and settings.port == 8000 and settings.auth_enabled
    assert set(settings.pipelines) == {"basic", "vllm", "tgi"}
    with LiveServer(create_app(settings)) as server:
        ready = httpx.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text  # the openai and tgi generators are installed
        assert httpx.get(f"{server.url}/v1/collections", timeout=30).status_code == 401  # keys are on
        httpx.get(f"{server.url}/v1/collections", headers={"X-API-Key": KEY}, timeout=30)
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    samples = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    queried = _queried_metrics()
    assert len(queried) >= 9, queried
    for name in sorted(queried):
        found = [
            (family, kind)
            for family, kind in families.items()
            for suffix in suffixes.get(kind, ())
            if name == family + suffix
        ]
        assert found, f"{name} is queried by the dashboard or alerts but /metrics exposes no such series"
    assert {"ragkit_http_requests_total", "ragkit_http_request_duration_seconds_bucket"} <= samples
    assert "ragkit_http_requests_in_flight" in samples
