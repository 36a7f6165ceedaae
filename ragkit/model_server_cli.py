"""``ragkit serve-model``: one generator as an OpenAI-compatible server (no retrieval).

::

    ragkit serve-model --generator "{type: transformers, model: qwen2.5-coder-0.5b-instruct, quantize: int8}"
    ragkit serve-model --generator basic --port 8001          # the generator: section of a recipe
    ragkit serve-model --generator my-model.yaml --host 0.0.0.0 --api-key "$KEY"

The app is :func:`ragkit.service.model_server.create_model_app`; clients
send ``model`` as the id ``GET /v1/models`` lists (the generator's model
name unless ``--model-id`` says otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from ragkit.cli_support import run_action


def generator_config(spec: str) -> dict[str, Any]:
    """The generator config ``spec`` names: inline YAML (``{type: ...}``), a YAML file or a recipe name.

    A file or recipe may hold the config itself (a mapping with ``type``) or
    a ``generator:`` section, at the top, under ``pipeline:`` or under
    ``sql_engine:``.
    """
    from ragkit.errors import ConfigError
    from ragkit.recipes import find_recipe
    from ragkit.yaml_io import read_mapping, safe_load

    text = spec.strip()
    if text.startswith("{"):
        data = safe_load(text)
        where = "--generator"
    else:
        path = find_recipe(text) if not Path(text).is_file() else Path(text)
        data, where = read_mapping(path, "generator config"), str(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a generator config such as '{{type: transformers}}'")
    candidates = [data, data.get("generator")]
    for section in ("pipeline", "sql_engine"):
        inner = data.get(section)
        if isinstance(inner, Mapping):
            candidates.append(inner.get("generator"))
    for candidate in candidates:
        if isinstance(candidate, Mapping) and "type" in candidate:
            return dict(candidate)
    raise ConfigError(f"{where}: no generator config found (a mapping with 'type', or a 'generator:' section)")


def serve_model_command(
    generator: Annotated[
        str,
        typer.Option(
            "--generator",
            "-g",
            help="Inline YAML ('{type: transformers, model: ...}'), a YAML file or a recipe name (its generator:).",
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    model_id: Annotated[
        str | None, typer.Option("--model-id", help="The model id clients send (default: the model's name).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="RAGKIT_MODEL_API_KEY", help="Require this key (Bearer or X-API-Key)."),
    ] = None,
    max_concurrent: Annotated[int, typer.Option("--max-concurrent", help="Generations at once.", min=1)] = 1,
    preload: Annotated[bool, typer.Option("--preload/--no-preload", help="Load the model before serving.")] = True,
) -> None:
    """Serve one generator as an OpenAI-compatible model: /v1/models and /v1/chat/completions, no retrieval."""

    def action() -> None:
        from pydantic import SecretStr

        from ragkit import registry
        from ragkit.errors import ConfigError
        from ragkit.service.model_server import create_model_app
        from ragkit.service.settings import ApiKey, is_loopback

        if not api_key and not is_loopback(host):
            raise ConfigError(f"refusing to serve on {host!r} without --api-key: anyone who can reach it could use it")
        built = registry.build("generator", generator_config(generator))
        if preload and callable(getattr(built, "load", None)):
            typer.echo(f"loading {built.model_name} ...", err=True)
            built.load()
        keys = [ApiKey(key=SecretStr(api_key), name="cli", scopes={"read"})] if api_key else []
        app = create_model_app(built, model_id=model_id, api_keys=keys, max_concurrent=max_concurrent)
        typer.echo(f"serving {model_id or built.model_name} on http://{host}:{port}/v1", err=True)
        import uvicorn

        uvicorn.run(app, host=host, port=port, workers=1, access_log=False, timeout_graceful_shutdown=30)

    run_action(action)
