"""The ragkit exception hierarchy.

Every error a user can cause or meet is one of these. Messages name the file,
field or argument at fault. The CLI prints them without a traceback and exits
non-zero; the service maps each class to one HTTP status (``http_status``).
"""

from __future__ import annotations


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
