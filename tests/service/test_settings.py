"""Service settings: environment, YAML, and refusing to serve an open service beyond loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit.errors import ConfigError
from ragkit.service import ServiceSettings, create_app, serve
from ragkit.service.settings import is_loopback


def test_api_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGKIT_API_KEYS", "k-admin:admin, k-team:read+write:handbook|faq")
    monkeypatch.setenv("RAGKIT_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("RAGKIT_STORE_DIR", str(tmp_path))
    monkeypatch.setenv("RAGKIT_PORT", "9001")
    settings = ServiceSettings.load()
    first, second = settings.api_keys
    assert first.key.get_secret_value() == "k-admin" and first.name == "env-1" and first.collections is None
    assert first.granted() == {"admin", "write", "read"}
    assert second.scopes == {"read", "write"} and second.collections == ["handbook", "faq"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.store_dir == tmp_path and settings.port == 9001
    assert "k-admin" not in repr(settings), "keys are secrets: never printed"


def test_a_lone_key_without_a_scope_is_one_full_access_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RAGKIT_API_KEYS", "  s3cret-only  ")
    with caplog.at_level("WARNING", logger="ragkit.service"):
        [key] = ServiceSettings.load().api_keys
    assert key.key.get_secret_value() == "s3cret-only" and key.collections is None
    assert key.granted() == {"admin", "write", "read"}
    assert any("full-access (admin) key" in r.getMessage() for r in caplog.records), "the log says so"


# "k1" alone was refused here until it became one full-access key (issue 14, item 12)
@pytest.mark.parametrize("value", ["k1,k2", "k1:superuser", ":read", "k1:read:a:b"])
def test_malformed_env_keys_are_a_config_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RAGKIT_API_KEYS", value)
    with pytest.raises(ConfigError, match="API key entry 1"):
        ServiceSettings.load()


def test_settings_from_yaml_with_environment_winning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text(
        "service:\n"
        "  host: 0.0.0.0\n"
        "  port: 8100\n"
        f"  store_dir: {tmp_path / 'store'}\n"
        "  api_keys:\n"
        "    - {key: yaml-key, name: ops, scopes: [admin]}\n"
        f"  ingest_roots: [{tmp_path}]\n"
        "  pipelines: {basic: basic, short: {answer: {max_tokens: 8}}}\n"
        "  max_upload_bytes: 1000\n"
    )
    monkeypatch.setenv("RAGKIT_PORT", "8200")
    settings = ServiceSettings.load(config, host=None)
    assert settings.host == "0.0.0.0" and settings.port == 8200
    assert settings.api_keys[0].name == "ops" and settings.max_upload_bytes == 1000
    assert settings.ingest_roots == [tmp_path.resolve()]
    assert settings.pipelines["short"] == {"answer": {"max_tokens": 8}}
    settings.check_exposure()  # keys are set: a public host is fine


def test_bad_settings_name_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("port: not-a-port\n")
    with pytest.raises(ConfigError, match="port"):
        ServiceSettings.load(config)
    with pytest.raises(ConfigError, match="default_pipeline 'nope'"):
        ServiceSettings.load(default_pipeline="nope")


def test_refuses_to_serve_beyond_loopback_without_keys(tmp_path: Path) -> None:
    exposed = ServiceSettings(host="0.0.0.0", store_dir=tmp_path)
    with pytest.raises(ConfigError, match="refusing to serve on '0.0.0.0' without API keys"):
        serve(exposed)
    with pytest.raises(ConfigError, match="without API keys"):
        create_app(exposed)
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert is_loopback(host)
        ServiceSettings(host=host, store_dir=tmp_path).check_exposure()
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com", ""):
        assert not is_loopback(host)


def test_pipelines_from_their_own_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGKIT_PIPELINES", str(tmp_path))  # the recipe folder, not the service's pipelines
    monkeypatch.setenv("RAGKIT_SERVICE_PIPELINES", '{"fast": {"answer": {"max_tokens": 8}}}')
    monkeypatch.setenv("RAGKIT_DEFAULT_PIPELINE", "fast")
    settings = ServiceSettings.load()
    assert settings.pipelines == {"fast": {"answer": {"max_tokens": 8}}} and settings.default_pipeline == "fast"
