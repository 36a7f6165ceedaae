"""Server-side paths a request may name: only inside the service's ``ingest_roots``.

``POST /v1/collections/{name}/ingest`` and ``POST /v1/evaluations`` read files
on the server. Both resolve what the request names with
:func:`resolve_server_path` and check any further path a file leads to (a
suite's documents and questions) with :func:`check_inside_roots`, so a
request can never read beyond the folders the operator listed.
"""

from __future__ import annotations

from pathlib import Path

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


def resolve_server_path(roots: list[Path], given: str) -> Path:
    """``given`` resolved inside one of ``roots``: 403 outside them, 404 if missing.

    A relative path is looked up under each root in turn; symbolic links are
    resolved before the check, so a link cannot lead out of the roots.
    """
    _roots_or_refuse(roots)
    if "\x00" in given:
        raise InputError("the path contains a NUL character")
    raw = Path(given).expanduser()
    candidates = [raw.resolve()] if raw.is_absolute() else [(root / raw).resolve() for root in roots]
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
    resolved = path.expanduser().resolve()
    if not is_inside(resolved, _roots_or_refuse(roots)):
        listing = ", ".join(str(r) for r in roots)
        raise ServiceHTTPError(403, f"{what} {str(resolved)!r} is outside the ingest roots ({listing})", "Forbidden")
