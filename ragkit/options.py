"""One validator for numeric component options: integers and numbers within bounds, as a :class:`ConfigError`.

Components check their constructor options with :func:`check_int` and
:func:`check_number` instead of each keeping a private copy (an option that
may be ``None``: ``None if value is None else check_int(...)``). ``bool`` is
never taken for a number (``True`` is not ``1`` here). The error names the
component and the option in one of two wordings, which callers keep so
that messages stay as users and tests know them:

* ``"expected"`` (the connectors' wording)::

    generator option 'max_tokens': expected an integer of at least 1, got 0
    generator option 'timeout': expected a number more than 0, got -1
    generator option 'backoff': expected a number at least 0, got -0.5

* ``"must"`` (the core's query stages and splitters)::

    context shaper 'dedupe': shingle must be an integer, got 1.5
    context shaper 'dedupe': shingle must be at least 1, got 0

``symbols=True`` writes the bounds as ``>= 1`` / ``> 0`` / ``<= 9`` instead
of words (``splitter 'recursive': chunk_size must be >= 1, got 0``).
"""

from __future__ import annotations

from typing import Literal

from ragkit.errors import ConfigError

Wording = Literal["expected", "must"]
"""How the error is worded: ``"expected"``: ``<owner> option '<option>': expected ...``;
``"must"``: ``<owner>: <option> must be ...``."""


def check_int(
    owner: str,
    option: str,
    value: object,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    wording: Wording = "expected",
    symbols: bool = False,
) -> int:
    """``value`` if it is an integer in ``[minimum, maximum]``, else a :class:`ConfigError` naming the option.

    Args:
        owner: What has the option, as the message starts (``"generator"``,
            ``"context shaper 'dedupe'"``).
        option: The option's name.
        value: What was given.
        minimum: The smallest value allowed (``None``: no lower bound).
        maximum: The largest value allowed (``None``: no upper bound).
        wording: The message's wording (see :data:`Wording`).
        symbols: Write the bounds as ``>=`` / ``<=`` instead of words.

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigError: ``value`` is not an integer (a ``bool`` is not), or is out of bounds.

    """
    bounds = _bounds(minimum, maximum, strict=False, symbols=symbols)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(_message(owner, option, value, "an integer", bounds, False, wording))
    if not _within(value, minimum, maximum, strict=False):
        raise ConfigError(_message(owner, option, value, "an integer", bounds, True, wording))
    return value


def check_number(
    owner: str,
    option: str,
    value: object,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    strict: bool = False,
    wording: Wording = "expected",
    symbols: bool = False,
) -> float:
    """``value`` if it is a number (int or float) in bounds, else a :class:`ConfigError` naming the option.

    The arguments are :func:`check_int`'s, the bounds floats, and ``strict``:
    ``value`` must be more than ``minimum``, not equal to it (a timeout: more
    than 0). An int ``value`` comes back as it is.
    """
    bounds = _bounds(minimum, maximum, strict=strict, symbols=symbols)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(_message(owner, option, value, "a number", bounds, False, wording))
    if not _within(value, minimum, maximum, strict=strict):
        raise ConfigError(_message(owner, option, value, "a number", bounds, True, wording))
    return value


def _within(value: float, minimum: float | None, maximum: float | None, *, strict: bool) -> bool:
    if minimum is not None and (value <= minimum if strict else value < minimum):
        return False
    return maximum is None or value <= maximum


def _bounds(minimum: float | None, maximum: float | None, *, strict: bool, symbols: bool) -> str:
    """The allowed range in words (``at least 1 and at most 9``) or symbols (``>= 1 and <= 9``); ``""``: any."""
    parts = []
    if minimum is not None:
        if symbols:
            parts.append(f"{'>' if strict else '>='} {_show(minimum)}")
        else:
            parts.append(f"{'more than' if strict else 'at least'} {_show(minimum)}")
    if maximum is not None:
        parts.append(f"{'<=' if symbols else 'at most'} {_show(maximum)}")
    return " and ".join(parts)


def _show(bound: float) -> str:
    """A bound as written in messages: an int as is, a float shortest (``0.0`` is ``0``)."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _message(owner: str, option: str, value: object, kind: str, bounds: str, right_type: bool, wording: Wording) -> str:
    """The error: ``expected <kind> [of] <bounds>`` in one sentence, or ``must be <kind>`` then ``must be <bounds>``."""
    if wording == "expected":
        # as the connectors always wrote it: "an integer of at least 1", but "a number at least 0"
        expected = f"{kind}{' of' if kind == 'an integer' else ''} {bounds}" if bounds else kind
        return f"{owner} option {option!r}: expected {expected}, got {value!r}"
    if not right_type:
        return f"{owner}: {option} must be {kind}, got {value!r}"
    return f"{owner}: {option} must be {bounds}, got {value!r}"
