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
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ragkit.errors import ConfigError
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
def test_without_api_keys_the_compose_service_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """RAGKIT_API_KEYS unset: compose renders (so `down` works), and ragkit refuses to listen without keys."""
    result = compose_config()
    assert result.returncode == 0, result.stderr
    environment = yaml.safe_load(result.stdout)["services"]["ragkit"]["environment"]
    assert environment["RAGKIT_API_KEYS"] == ""
    for name, value in environment.items():
        if name.startswith("RAGKIT_"):
            monkeypatch.setenv(name, str(value))
    settings = ServiceSettings.load()
    with pytest.raises(ConfigError, match="without API keys"):
        create_app(settings)


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
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("RAGKIT_STORE_DIR", str(tmp_path))
    settings = ServiceSettings.load()
    assert settings.host == "0.0.0.0" and settings.port == 8000 and settings.auth_enabled
    assert set(settings.pipelines) == {"basic", "vllm", "tgi"}
    app = create_app(settings)
    vllm = app.state.ragkit.pipelines["vllm"].config.generator
    assert vllm["type"] == "openai" and vllm["model"] == "llm"  # pipelines/vllm.yaml, as compose serves it
    served = rendered["services"]["vllm"]["command"]
    assert "--served-model-name=llm" in served and f"--max-model-len={vllm['context_window']}" in " ".join(served)
    tgi = app.state.ragkit.pipelines["tgi"].config.generator
    assert f"--max-total-tokens={tgi['context_window']}" in " ".join(rendered["services"]["tgi"]["command"])
    with LiveServer(app) as server:
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


# -- the Helm chart ----------------------------------------------------------------------------------

CHART = DEPLOY / "helm" / "ragkit"
MILVUS_VALUES: dict[str, Any] = {
    "milvus": {"uri": "http://milvus.vectors.svc:19530", "tokenSecret": {"name": "milvus-auth", "key": "token"}},
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
    "persistence": {"accessModes": ["ReadWriteMany"], "storageClass": "nfs"},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "200m"},
        "hosts": [{"host": "rag.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "rag-tls", "hosts": ["rag.example.com"]}],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "apiKeys": {"existingSecret": "ragkit-keys", "existingSecretKey": "keys"},
    "pipelines": {
        "basic": "basic",
        "vllm": {
            "generator": {"type": "openai", "model": "Qwen/Qwen2.5-7B-Instruct", "base_url": "http://vllm:8000/v1"}
        },
    },
    "defaultPipeline": "vllm",
    "recipes": {
        "support.yaml": "description: Support docs\ncollection:\n  splitter: {type: markdown, chunk_size: 800}\n"
    },
    "settings": {"cors_origins": ["https://intranet.example.com"], "max_upload_bytes": 10485760, "preload": False},
    "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4318"}],
}
VALUE_SETS = {"defaults": {}, "milvus-hpa-ingress-servicemonitor": MILVUS_VALUES}


@pytest.fixture(scope="module")
def helm() -> Any:
    return pytest.importorskip("helm_python", reason="helm-python-sdk (the dev extra) bundles Helm's library")


def render(helm: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's manifests for ``values``, as parsed documents (NOTES.txt left out)."""
    chart = helm.Chart.load(CHART)
    rendered = chart.render(values, name="rag", namespace="search", is_install=True)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [doc["kind"] for doc in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {doc["kind"]: doc for doc in docs}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_lints_clean(helm: Any, values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, namespace="search")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_manifests_pass_kubernetes_validate_strict(helm: Any, values: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (the dev extra)")
    docs = render(helm, values)
    version = kubernetes_validate.latest_version()
    checked = []
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: not in the bundled schemas; its shape is checked below
        kubernetes_validate.validate(doc, version, strict=True)  # raises on an unknown or mistyped field
        checked.append(doc["kind"])
    expected = {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service", "ServiceAccount"}
    if values:
        expected = expected - {"Secret"} | {"HorizontalPodAutoscaler", "Ingress", "PodDisruptionBudget"}
    assert set(checked) == expected


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The check above can fail: --strict refuses a field the Kubernetes schema does not have."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (the dev extra)")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"prots": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, kubernetes_validate.latest_version(), strict=True)


def test_defaults_are_one_replica_on_a_volume_with_a_generated_admin_key(helm: Any) -> None:
    docs = by_kind(render(helm, {}))
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    claim = next(v for v in pod["volumes"] if v["name"] == "data")["persistentVolumeClaim"]["claimName"]
    assert claim == docs["PersistentVolumeClaim"]["metadata"]["name"]
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    import base64

    key = base64.b64decode(docs["Secret"]["data"]["RAGKIT_API_KEYS"]).decode()
    secret, scope = key.split(":")
    assert scope == "admin" and len(secret) == 40
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_milvus_mode_scales_out_and_the_service_monitor_selects_the_service(helm: Any) -> None:
    docs = by_kind(render(helm, MILVUS_VALUES))
    deployment, service, monitor = docs["Deployment"], docs["Service"], docs["ServiceMonitor"]
    assert "replicas" not in deployment["spec"] and "strategy" not in deployment["spec"]  # the HPA owns replicas
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    pdb = docs["PodDisruptionBudget"]["spec"]
    assert pdb["minAvailable"] == 1 and pdb["selector"]["matchLabels"] == service["spec"]["selector"]
    backend = docs["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"number": service["spec"]["ports"][0]["port"]}}
    # the ServiceMonitor (monitoring.coreos.com/v1, not in kubernetes-validate's schemas), checked by hand
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(monitor["spec"]) == {"selector", "namespaceSelector", "endpoints"}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["search"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] and endpoint["path"] == "/metrics"
    assert set(endpoint) == {"port", "path", "interval", "scrapeTimeout"}
    assert re.fullmatch(r"\d+[smh]", endpoint["interval"]) and re.fullmatch(r"\d+[smh]", endpoint["scrapeTimeout"])
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAGKIT_API_KEYS"]["valueFrom"]["secretKeyRef"] == {"name": "ragkit-keys", "key": "keys"}
    assert env["MILVUS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "milvus-auth", "key": "token"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 2}, "single-node mode"),
        ({"autoscaling": {"enabled": True}}, "single-node mode"),
        ({"milvus": {"uri": "http://milvus:19530"}, "replicaCount": 3}, "ReadWriteMany"),
        ({"milvus": {"uri": "milvus:19530"}}, "must be http(s)://host:port"),
        ({"defaultPipeline": "fast"}, "defaultPipeline"),
        ({"recipes": {"../x": "a: 1"}}, "must be a file name"),
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),  # values.schema.json: a typo
        ({"probes": {"readiness": {"path": "/ready"}}}, "value must be one of '/healthz', '/readyz'"),
    ],
    ids=["replicas", "hpa", "rwo-shared", "uri", "default-pipeline", "recipe-name", "typo", "probe-path"],
)
def test_chart_refuses_values_that_cannot_work(helm: Any, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(helm, values)


def test_the_chart_sets_settings_ragkit_really_reads_and_its_probes_answer(
    helm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Deployment's env, the settings file and the recipes, loaded by ragkit itself, then served."""
    from ragkit.config import CollectionConfig, Settings
    from ragkit.recipes import load_collection_config
    from ragkit.service.settings import PIPELINES_ENV

    values = {**MILVUS_VALUES, "apiKeys": {"value": f"{KEY}:admin"}}
    docs = by_kind(render(helm, values))
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    known = {f"RAGKIT_{name.upper()}" for name in [*ServiceSettings.model_fields, *Settings.model_fields]}
    ragkit_env = {name for name in env if name.startswith("RAGKIT_")}
    assert ragkit_env <= known | {"RAGKIT_PIPELINES", PIPELINES_ENV}, ragkit_env - known
    # the image's recipe folder with the chart's recipes mounted in it
    recipes = tmp_path / "recipes"
    shutil.copytree(ROOT / "pipelines", recipes)
    config_map = docs["ConfigMap"]["data"]
    for mount in container["volumeMounts"]:
        if mount["name"] == "config" and mount["mountPath"].startswith(env["RAGKIT_PIPELINES"] + "/"):
            (recipes / mount["subPath"]).write_text(config_map[mount["subPath"]])
    settings_file = tmp_path / "service.yaml"
    settings_file.write_text(config_map["service.yaml"])
    assert container["args"] == ["serve", "--config", "/etc/ragkit/service.yaml"]
    import base64

    secret = base64.b64decode(docs["Secret"]["data"]["RAGKIT_API_KEYS"]).decode()
    for name, value in {**env, "RAGKIT_API_KEYS": secret}.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAGKIT_PIPELINES", str(recipes))
    monkeypatch.setenv("RAGKIT_STORE_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("MILVUS_TOKEN", "root:Milvus")
    settings = ServiceSettings.load(settings_file)
    assert (settings.host, settings.port, settings.default_pipeline) == ("0.0.0.0", 8000, "vllm")
    assert settings.cors_origins == ["https://intranet.example.com"] and settings.max_upload_bytes == 10485760
    assert [k.key.get_secret_value() for k in settings.api_keys] == [KEY]
    # the milvus-server recipe is pipelines/milvus.yaml with the chart's server
    server = load_collection_config("milvus-server")
    lite = CollectionConfig.from_yaml(ROOT / "pipelines" / "milvus.yaml")
    assert server.store == {**lite.store, "uri": "http://milvus.vectors.svc:19530", "token_env": "MILVUS_TOKEN"}
    assert server.model_dump(exclude={"store"}) == lite.model_dump(exclude={"store"})
    assert load_collection_config("support").splitter["chunk_size"] == 800
    with LiveServer(create_app(settings)) as server_:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            response = httpx.get(f"{server_.url}{path}", timeout=30)
            assert response.status_code == 200, (probe, response.text)


@needs_promtool
def test_dashboard_queries_are_valid_promql_and_panels_are_well_formed(tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, passes promtool as a recording rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}
    grafana = {"$__rate_interval": "1m", "$__range": "1h", "$job": ".*"}
    rules = []
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            expr = target["expr"]
            for name, value in grafana.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, (panel["title"], expr)
            rules.append({"record": f"ragkit:panel_{panel['id']}_{target['refId'].lower()}", "expr": expr})
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "panels.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout + result.stderr


PODMAN_COMPOSE = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
PROFILE_SERVICES = {
    "": {"ragkit"},
    "milvus": {"ragkit", "etcd", "minio", "milvus"},
    "observability": {"ragkit", "prometheus", "grafana"},
    "vllm": {"ragkit", "vllm"},
    "tgi": {"ragkit", "tgi"},
}


@pytest.mark.skipif(not Path(PODMAN_COMPOSE).exists(), reason="podman-compose (the dev extra) is missing")
@pytest.mark.skipif(
    shutil.which("podman") is None, reason="podman-compose needs the podman binary: apt-get install podman"
)
@pytest.mark.parametrize("profile", PROFILE_SERVICES, ids=lambda p: p or "default")
def test_podman_compose_starts_what_each_profile_names(profile: str) -> None:
    """podman-compose (what brings the stack up here) reads the file and picks each profile's services."""
    args = [PODMAN_COMPOSE, "-f", str(COMPOSE), *(["--profile", profile] if profile else []), "config"]
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "RAGKIT_API_KEYS": f"{KEY}:admin"}
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert set(yaml.safe_load(result.stdout)["services"]) == PROFILE_SERVICES[profile]
