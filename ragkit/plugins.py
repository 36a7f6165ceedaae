"""Commands and service endpoints that connectors provide, found lazily through the registry.

The core never imports a connector. A connector announces a CLI command as
the ``cli.<name>`` entry point (a function taking the command's arguments,
``main(argv) -> None``) and a service endpoint as ``service.<name>`` (a
function that mounts itself on the FastAPI app, ``mount(app) -> None``), in
the ``ragkit.components`` group::

    [project.entry-points."ragkit.components"]
    "cli.mcp" = "ragkit_mcp.cli:main"
    "service.mcp" = "ragkit_mcp.http:mount"

:func:`add_connector_command` adds ``ragkit <name>`` to the CLI, which looks
its implementation up only when run (and says which distribution to install
when it is missing); :func:`mount_connector` mounts the endpoint when the
connector is installed and does nothing otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragkit import registry
from ragkit.errors import MissingDependencyError, NotFoundError

if TYPE_CHECKING:
    import typer


def connector_entry(role: str, name: str, distribution: str) -> Any:
    """The ``<role>.<name>`` entry point's object; :class:`MissingDependencyError` names ``distribution`` if absent."""
    try:
        return registry.get(role, name)
    except NotFoundError:
        feature = f"'ragkit {name}'" if role == "cli" else f"{role} {name!r}"
        raise MissingDependencyError(feature, distribution) from None


def add_connector_command(app: typer.Typer, name: str, distribution: str, help: str) -> None:
    """Add ``ragkit NAME ...`` to ``app``: it runs the ``cli.NAME`` entry point with the remaining arguments.

    The connector parses its own arguments (``ragkit NAME --help`` is its help).
    """
    import typer

    from ragkit.cli_support import run_action

    def command(ctx: typer.Context) -> None:
        run_action(lambda: connector_entry("cli", name, distribution)(list(ctx.args)))

    command.__annotations__ = {"ctx": typer.Context, "return": None}  # typer reads them; typer is imported here
    app.command(
        name,
        help=help,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(command)


def mount_connector(app: Any, name: str) -> bool:
    """Let the ``service.NAME`` entry point mount itself on the FastAPI ``app``; whether it was installed."""
    try:
        mount = registry.get("service", name)
    except NotFoundError:
        return False
    mount(app)
    return True
