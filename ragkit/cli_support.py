"""What every ``ragkit`` command shares: ragkit errors as one line on stderr and an exit code per error class."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

T = TypeVar("T")


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_action(action: Callable[[], T], interrupted: str = "interrupted") -> T:
    """Run ``action``, turning ragkit errors into one line on stderr and an exit code (130 on Ctrl-C)."""
    from ragkit.errors import RagkitError

    try:
        return action()
    except RagkitError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail(interrupted, 130)
    raise AssertionError("unreachable")
