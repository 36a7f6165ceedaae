"""Connector commands and endpoints found lazily (ragkit/plugins.py): the core names a connector's
command without importing it, and says what to install when it is missing."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from fastapi import FastAPI
from typer.testing import CliRunner

from ragkit import registry
from ragkit.errors import MissingDependencyError
from ragkit.plugins import add_connector_command, connector_entry, mount_connector


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def other() -> None:
        """Another command, so typer keeps a group."""

    return app


def test_a_missing_connector_command_says_what_to_install():
    app = _app()
    add_connector_command(app, "nothing", "ragkit-nothing", "A command from a connector that is not installed.")
    result = CliRunner().invoke(app, ["nothing", "--flag"])
    assert result.exit_code == MissingDependencyError.exit_code
    assert "pip install ragkit-nothing" in result.output
    with pytest.raises(MissingDependencyError, match="ragkit-nothing"):
        connector_entry("cli", "nothing", "ragkit-nothing")


def test_the_command_passes_every_argument_to_the_connector(monkeypatch):
    seen: list[list[str]] = []

    def main(argv: list[str]) -> None:
        seen.append(argv)

    monkeypatch.setitem(registry._registry, ("cli", "echo"), main)
    app = _app()
    add_connector_command(app, "echo", "ragkit-echo", "Echo.")
    result = CliRunner().invoke(app, ["echo", "--help", "--store-dir", "x", "pos"])
    assert result.exit_code == 0, result.output
    assert seen == [["--help", "--store-dir", "x", "pos"]]  # --help is the connector's own


def test_mount_connector_mounts_what_is_installed_and_nothing_else(monkeypatch):
    mounted: list[Any] = []
    monkeypatch.setitem(registry._registry, ("service", "echo"), mounted.append)
    app = FastAPI()
    assert mount_connector(app, "echo") is True and mounted == [app]
    assert mount_connector(app, "nothing-installed") is False


def test_as_retriever_for_a_framework_no_connector_provides_names_what_is_missing(tmp_path):
    from ragkit import Collection

    with (
        Collection.create("notes", store_dir=tmp_path) as collection,
        pytest.raises(MissingDependencyError, match="as_retriever.haystack"),
    ):
        collection.as_retriever(framework="haystack")
