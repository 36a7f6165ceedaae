"""Stop strings on streamed text: pure functions, no model.

OpenAI semantics: generation ends where a stop string first appears and the
stop string itself is not part of the answer. While streaming, text that
could be the start of a stop string is held back until the next piece shows
whether it is one.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragkit.errors import InputError


def normalize_stops(stop: Sequence[str] | str | None) -> tuple[str, ...]:
    """The stop option as a tuple of non-empty strings (a single string is one stop)."""
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop):
        raise InputError(f"option 'stop': expected a string or a list of strings, got {stop!r}")
    return tuple(dict.fromkeys(s for s in stop if s))


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Where the first stop string in ``text`` begins, or ``None``."""
    found = [index for index in (text.find(s) for s in stops) if index >= 0]
    return min(found) if found else None


def held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of some stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class StopScanner:
    """Feeds streamed pieces in, gives out the text that is safe to show.

    >>> scanner = StopScanner(["###"])
    >>> scanner.feed("Hello #"), scanner.feed("## rest")
    (('Hello ', False), ('', True))
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add ``piece``; return (text to emit now, whether a stop string was reached).

        After a stop, further pieces are ignored.
        """
        if self.stopped:
            return "", True
        if not self.stops:
            return piece, False
        pending = self._pending + piece
        index = find_stop(pending, self.stops)
        if index is not None:
            self._pending = ""
            self.stopped = True
            return pending[:index], True
        keep = held_back(pending, self.stops)
        self._pending = pending[len(pending) - keep :]
        return pending[: len(pending) - keep], False

    def flush(self) -> str:
        """The held-back text, once the stream has ended without reaching a stop."""
        if self.stopped:
            return ""
        pending, self._pending = self._pending, ""
        return pending


__all__ = ["StopScanner", "find_stop", "held_back", "normalize_stops"]
