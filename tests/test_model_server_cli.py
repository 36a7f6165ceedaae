"""``ragkit serve-model``'s command line: which generator config it serves, and its refusal to serve keyless beyond
loopback (checked before any model loads). The server itself is tested in tests/service/test_model_server.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.errors import ConfigError
from ragkit.model_server_cli import generator_config

QWEN = {"type": "transformers", "model": "qwen2.5-coder-0.5b-instruct"}


def test_the_generator_comes_from_inline_yaml_a_file_or_a_recipe(tmp_path: Path):
    assert generator_config("{type: transformers, quantize: int8}") == {"type": "transformers", "quantize": "int8"}
    assert generator_config("basic") == QWEN  # pipeline: generator: of pipelines/basic.yaml
    assert generator_config("sql") == QWEN  # sql_engine: generator: of pipelines/sql.yaml
    own = tmp_path / "mine.yaml"
    own.write_text("type: openai\nmodel: m\nbase_url: http://127.0.0.1:9/v1\n", encoding="utf-8")
    assert generator_config(str(own))["type"] == "openai"
    (tmp_path / "none.yaml").write_text("retrieval: {top_k: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no generator config"):
        generator_config(str(tmp_path / "none.yaml"))


def test_it_refuses_to_serve_beyond_loopback_without_a_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RAGKIT_MODEL_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve-model", "--generator", "{type: transformers}", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "without --api-key" in result.output
