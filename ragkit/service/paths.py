"""Server-side paths a request may name: only inside the service's ``ingest_roots``.

``POST /v1/collections/{name}/ingest`` and ``POST /v1/evaluations`` read files
on the server. Both resolve what the request names with
:func:`resolve_server_path` and check any further path a file leads to (a
suite's documents and questions) with :func:`check_inside_roots`, so a
request can never read beyond the folders the operator listed.

The component options of a suite (judge, embedder, metric and pipeline
configs) are checked by :func:`confine_config`: every option that names a
file or folder (``cache_dir``, ``model: /models/x`` ...) must lie inside the
roots, and every server URL (``base_url`` ...) must be one the operator
allows (:func:`endpoint_allowed`), so a suite cannot make the service write,
read or call anything beyond what it was set up for.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ragkit.errors import InputError, NotFoundError
from ragkit.service.errors import ServiceHTTPError


def _roots_or_refuse(roots: list[Path]) -> list[Path]:
    if not roots:
        raise ServiceHTTPError(
            403, "reading server paths is disabled: the service has no ingest_roots configured", "Forbidden"
        )
    return roots


def is_inside(path: Path, roots: list[Path]) -> bool:
    """Whether the resolved ``path`` is one of ``roots`` or lies under one."""
    return any(path == root or path.is_relative_to(root) for root in roots)


def _resolved(path: Path, given: str) -> Path:
    """``path.resolve()``, with a symbolic-link loop (``RuntimeError`` on Python 3.11) a 400 naming ``given``."""
    try:
        return path.resolve()
    except RuntimeError:
        raise InputError(f"path {given[:200]!r} runs into a symbolic link loop") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"path {given[:200]!r} runs into a symbolic link loop") from None
        raise InputError(f"path {given[:200]!r} cannot be resolved: {exc.strerror}") from None


def resolve_server_path(roots: list[Path], given: str) -> Path:
    """``given`` resolved inside one of ``roots``: 403 outside them, 404 if missing.

    A relative path is looked up under each root in turn; symbolic links are
    resolved before the check, so a link cannot lead out of the roots.
    """
    _roots_or_refuse(roots)
    if "\x00" in given:
        raise InputError("the path contains a NUL character")
    raw = Path(given).expanduser()
    candidates = [_resolved(raw, given)] if raw.is_absolute() else [_resolved(root / raw, given) for root in roots]
    inside = [c for c in candidates if is_inside(c, roots)]
    if not inside:
        listing = ", ".join(str(r) for r in roots)
        raise ServiceHTTPError(403, f"path {given!r} is outside the ingest roots ({listing})", "Forbidden")
    for candidate in inside:
        try:
            if candidate.exists():
                return candidate
        except OSError as exc:
            raise InputError(f"path {given[:200]!r} cannot be read: {exc.strerror}") from None
    raise NotFoundError(f"path {given!r} does not exist")


def check_inside_roots(roots: list[Path], path: Path, what: str) -> None:
    """403 unless the resolved ``path`` (named ``what`` in the message) lies inside ``roots``."""
    resolved = _resolved(path.expanduser(), str(path))
    if not is_inside(resolved, _roots_or_refuse(roots)):
        listing = ", ".join(str(r) for r in roots)
        raise ServiceHTTPError(403, f"{what} {str(resolved)!r} is outside the ingest roots ({listing})", "Forbidden")


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PATH_KEY = re.compile(r"(?:^|_)(?:dir|directory|folder|path|file|root|home|cache)$")
"""Option names whose value is always a path (``cache_dir``, ``prompt_file``, ``path`` ...)."""
_MAYBE_PATH_KEY = re.compile(r"(?:^|_)(?:model|tokenizer|uri|model_name_or_path)$")
"""Option names whose value is a path when it looks like one or exists, else a hub model name or a URL."""
_ENDPOINT_KEY = re.compile(r"(?:^|_)(?:url|endpoint|api_base|host|address)$")
"""Option names whose value is a server to call, with or without a scheme."""
OPENAI_DEFAULT = "https://api.openai.com/v1"
"""Where an ``openai`` component without ``base_url`` (nor ``OPENAI_BASE_URL``) sends its requests."""


def _walk(value: Any, where: str, key: str = "") -> Iterator[tuple[str, str, str]]:
    """``(field, option name, text)`` of every string in a nested config."""
    if isinstance(value, dict):
        if value.get("type") == "openai" and "base_url" not in value:
            yield f"{where}.base_url", "base_url", os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT
        for name, item in value.items():
            yield from _walk(item, f"{where}.{name}" if where else str(name), str(name).lower())
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]", key)
    elif isinstance(value, str):
        yield where, key, value


def _looks_like_path(text: str) -> bool:
    if text.startswith(("/", "~", ".", "\\")) or (len(text) > 1 and text[1] == ":"):
        return True
    try:
        return Path(text).exists()  # what a loader would open, relative to the service's working folder
    except (OSError, ValueError):
        return True


def endpoints_in(config: Any) -> list[str]:
    """Every server URL a config names (to allow the ones the service's own pipelines use)."""
    return [text for _, _, text in _walk(config, "") if _URL.match(text)]


def _parts(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def endpoint_allowed(url: str, allowed: Sequence[str]) -> bool:
    """Whether ``url`` has the scheme, host and port of an ``allowed`` URL and starts with its path."""
    scheme, host, port, path = _parts(url)
    if not host:
        return False
    for entry in allowed:
        a_scheme, a_host, a_port, a_path = _parts(entry)
        if (scheme, host, port) == (a_scheme, a_host, a_port) and (path == a_path or path.startswith(a_path + "/")):
            return True
    return False


def confine_config(config: Any, where: str, roots: list[Path], allowed_endpoints: Sequence[str]) -> None:
    """403 if ``config`` names a path outside ``roots`` or a server URL not in ``allowed_endpoints``.

    ``config`` is a suite's component options, named ``where`` in messages. Relative paths are taken
    as the components take them: from the service's working folder. A bare
    ``gguf_file`` name is a file inside ``model``, which is checked itself.
    """
    for field, key, text in _walk(config, where):
        if _URL.match(text) or (_ENDPOINT_KEY.search(key) and text):
            if not endpoint_allowed(text if _URL.match(text) else f"http://{text}", allowed_endpoints):
                listing = ", ".join(allowed_endpoints) or "none"
                raise ServiceHTTPError(
                    403,
                    f"{field}: the endpoint {text[:200]!r} is not one this service may call "
                    f"(allowed: {listing}; an operator adds more with allowed_endpoints)",
                    "Forbidden",
                )
            continue
        if key == "gguf_file" and text and Path(text).name == text and text != "..":
            continue
        if _PATH_KEY.search(key) or (_MAYBE_PATH_KEY.search(key) and _looks_like_path(text)):
            if "\x00" in text:
                raise InputError(f"{field}: the path contains a NUL character")
            try:
                check_inside_roots(roots, Path(text), field)
            except (OSError, RuntimeError) as exc:  # a symbolic link loop, a name too long
                raise InputError(f"{field}: path {text[:200]!r} cannot be resolved: {exc}") from None
