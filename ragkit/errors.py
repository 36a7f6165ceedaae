"""The ragkit exception hierarchy.

Every error a user can cause or meet is one of these. Messages name the file,
field or argument at fault. The CLI prints them without a traceback and exits
non-zero; the service maps each class to one HTTP status (``http_status``).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class RagkitError(Exception):
    """Base class of every ragkit error."""

    http_status = 500
    exit_code = 1


class InputError(RagkitError, ValueError):
    """The caller passed something invalid: a bad argument, file, filter or config."""

    http_status = 400
    exit_code = 2


class ConfigError(InputError):
    """A component or collection configuration is invalid."""


class FilterError(InputError):
    """A metadata filter expression is malformed or names an unknown field."""


class LoaderError(InputError):
    """A source file could not be read or parsed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NotFoundError(RagkitError, LookupError):
    """A named thing (collection, document, component) does not exist."""

    http_status = 404
    exit_code = 3


class ConflictError(RagkitError):
    """The request conflicts with what is stored (e.g. an embedder mismatch)."""

    http_status = 409
    exit_code = 4


class StorageError(RagkitError):
    """The store could not be read or written (read-only folder, corrupt file)."""

    http_status = 500
    exit_code = 5


class StorageFullError(StorageError):
    """The store's file system is full (or the disk quota is used up): nothing more can be written."""

    http_status = 507
    exit_code = 9


class StorageReadOnlyError(StorageError):
    """The store's file system is mounted read-only: the store can be read but not changed."""

    http_status = 503
    exit_code = 10


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL, _SQLITE_READONLY = 13, 8
"""SQLite's primary result codes for a full disk and a read-only database (extended codes keep them in the low byte)."""


def storage_error_kind(exc: BaseException | None) -> type[StorageError] | None:
    """:class:`StorageFullError` or :class:`StorageReadOnlyError` when ``exc`` (or what it was raised from) says so.

    Looks at an ``OSError``'s errno (ENOSPC, EDQUOT; EROFS) and an ``sqlite3.Error``'s
    result code (SQLITE_FULL; SQLITE_READONLY), following ``__cause__``/``__context__``.
    """
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (StorageFullError, StorageReadOnlyError)):
            return type(exc)
        if isinstance(exc, OSError):
            if exc.errno in _FULL_ERRNOS:
                return StorageFullError
            if exc.errno == errno.EROFS:
                return StorageReadOnlyError
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            if code & 0xFF == _SQLITE_FULL:
                return StorageFullError
            if code & 0xFF == _SQLITE_READONLY and "read-only file system" in str(exc).lower():
                return StorageReadOnlyError
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def storage_error(exc: BaseException, doing: str) -> StorageError:
    """The ragkit error for ``exc``, met while ``doing`` (e.g. ``"cannot write /home/x/file"``).

    A full disk is a :class:`StorageFullError`, a read-only file system a
    :class:`StorageReadOnlyError` (the message names the cause and the path),
    anything else a plain :class:`StorageError`. A ragkit error's own message
    already says what failed, so it is kept as it is, with the cause added.
    """
    if isinstance(exc, RagkitError):
        message = str(exc)
    else:
        cause = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        filename = getattr(exc, "filename", None)
        where = f" ({filename})" if filename and str(filename) not in doing else ""
        message = f"{doing}{where}: {cause}"
    kind = storage_error_kind(exc)
    if kind is StorageFullError:
        return StorageFullError(f"{message} [the disk is full: free space on it and try again]")
    if kind is StorageReadOnlyError:
        return StorageReadOnlyError(f"{message} [the file system is read-only: the store can be read, not changed]")
    return StorageError(message)


@contextmanager
def storage_errors(doing: str) -> Iterator[None]:
    """Turn a full or read-only file system met in the block into :func:`storage_error`'s typed errors.

    An ``OSError`` (or a plain :class:`StorageError` raised from one) whose
    cause is a full disk or a read-only file system becomes a
    :class:`StorageFullError` or :class:`StorageReadOnlyError` naming
    ``doing``; every other exception passes unchanged.
    """
    try:
        yield
    except (StorageFullError, StorageReadOnlyError):
        raise
    except (OSError, StorageError) as exc:
        if storage_error_kind(exc) is None:
            raise
        raise storage_error(exc, doing) from exc


class UnavailableError(RagkitError):
    """An outside system (model server, database, optional package) is unavailable."""

    http_status = 503
    exit_code = 6


class UpstreamError(RagkitError):
    """An outside system (generator, model server) answered with an error or nonsense."""

    http_status = 502
    exit_code = 7


class UpstreamTimeoutError(UpstreamError):
    """An outside system did not answer in time."""

    http_status = 504
    exit_code = 8


class MissingDependencyError(UnavailableError):
    """An optional package needed for this feature is not installed."""

    def __init__(self, feature: str, package: str) -> None:
        super().__init__(f"{feature} needs the '{package}' package: pip install {package}")
        self.feature = feature
        self.package = package
