"""Checks every embedder applies to its input."""

from __future__ import annotations

from collections.abc import Sequence

from ragkit.errors import InputError


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list of strings, or an :class:`InputError` naming the first bad item.

    A single string is refused rather than embedded character by character.
    """
    if isinstance(texts, str):
        raise InputError("embed: expected a list of texts, got a single string")
    items = list(texts)
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise InputError(f"embed: text {index} is {type(text).__name__}, not str")
    return items
