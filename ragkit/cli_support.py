"""What every ``ragkit`` command shares: errors as one line and an exit code, the command groups' help and flags."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup, TyperOption

T = TypeVar("T")

FALLBACK_HELP_WIDTH = 100
"""Columns of help text when no terminal can be measured and ``COLUMNS`` is unset (rich would use 80)."""

FLAG_VALUE_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})
"""Words written after a flag as though it took a value (``--sync true``)."""


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_action(action: Callable[[], T], interrupted: str = "interrupted") -> T:
    """Run ``action``, turning ragkit errors into one line on stderr and an exit code (130 on Ctrl-C)."""
    from ragkit.errors import RagkitError, StorageError, storage_error, storage_error_kind

    try:
        return action()
    except RagkitError as exc:
        if type(exc) is StorageError and storage_error_kind(exc) is not None:
            exc = storage_error(exc, "cannot write the store")  # a full or read-only disk: its own exit code
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail(interrupted, 130)
    raise AssertionError("unreachable")


def help_width() -> int | None:
    """Columns for help text: ``None`` where rich measures the window itself, else :data:`FALLBACK_HELP_WIDTH`.

    rich sizes help to the terminal on stdin, stdout or stderr, or to
    ``COLUMNS``; with neither (a pipe from a program, a CI log) it would wrap
    at 80 columns.
    """
    if os.environ.get("COLUMNS", "").strip().isdigit() or os.environ.get("TERMINAL_WIDTH"):
        return None
    for fd in (0, 1, 2):
        try:
            os.get_terminal_size(fd)
        except (OSError, ValueError):
            continue
        return None
    return FALLBACK_HELP_WIDTH


def _flag_type_hidden(display: Callable[[TyperOption, Any], str | None]) -> Callable[[TyperOption, Any], str | None]:
    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        # typer prints "<bool>" after a flag as though it took a value ("--sync <bool>"); a flag takes none
        return None if self.is_bool_flag else display(self, ctx)

    display_type_rich.__wrapped__ = display  # type: ignore[attr-defined]
    return display_type_rich


_display = getattr(TyperOption, "display_type_rich", None)
if _display is not None and not hasattr(_display, "__wrapped__"):
    TyperOption.display_type_rich = _flag_type_hidden(_display)  # type: ignore[method-assign,assignment]


def refuse_flag_values(command: Any, args: Sequence[str]) -> None:
    """A usage error when a flag of ``command`` is followed by a true/false word (``--sync true``).

    Flags take no value, so the word would become a path or a question; a
    real argument of that name goes before the flag or after ``--``.
    """
    flags: dict[str, Any] = {}
    for param in getattr(command, "params", []):
        if getattr(param, "is_bool_flag", False):
            flags.update(dict.fromkeys([*param.opts, *param.secondary_opts], param))
    for flag, word in itertools.pairwise(args):
        if flag == "--":
            return
        if flag in flags and word.lower() in FLAG_VALUE_WORDS:
            param = flags[flag]
            off = f" and {param.secondary_opts[0]} turns it off" if param.secondary_opts else ""
            raise typer.BadParameter(
                f"a flag takes no value, got {word!r} after it: write {flag} alone{off} "
                f"(an argument named {word!r} goes before {flag}, or after --)",
                param_hint=f"'{flag}'",
            )


class CommandGroup(TyperGroup):
    """ragkit's command groups: help as wide as the terminal, and no value after a flag."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """The subcommand, as typer resolves it, after refusing ``--flag true`` in its arguments."""
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not isinstance(command, TyperGroup):
            refuse_flag_values(command, rest)
        return name, command, rest

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line with help (and usage errors) as wide as the terminal, or 100 columns."""
        width = help_width()
        if width is None:
            return super().main(*args, **kwargs)
        from typer import rich_utils

        before = rich_utils.MAX_WIDTH
        rich_utils.MAX_WIDTH = width
        try:
            return super().main(*args, **kwargs)
        finally:
            rich_utils.MAX_WIDTH = before
