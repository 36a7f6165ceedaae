"""Choosing a loader for each file by its suffix."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ragkit import registry
from ragkit.config import LoaderOptions
from ragkit.errors import ConfigError, LoaderError, RagkitError
from ragkit.limits import DEFAULT_MAX_CHUNKS_PER_FILE
from ragkit.loaders.archive_limits import ZIP_SUFFIXES, ArchiveLimits, check_archive
from ragkit.loaders.base import BaseLoader, SourceFile, UnsupportedFileError
from ragkit.schema import Document

logger = logging.getLogger(__name__)

BUILTIN_LOADERS: tuple[str, ...] = ("text", "markdown", "html", "pdf", "docx", "json", "jsonl", "csv")
"""Registered names of the loaders that ship with ragkit."""


@dataclass(frozen=True)
class FileLimits:
    """Per-file limits of an ingest: chunks per file, and how far a zip-based file may unpack.

    ``None`` lifts a limit. :meth:`from_options` reads the same names from
    :class:`~ragkit.config.LoaderOptions` where it has them.
    """

    max_chunks_per_file: int | None = DEFAULT_MAX_CHUNKS_PER_FILE
    """A file that gives more chunks than this fails as a whole (the ingest goes on with the others)."""
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    """Limits on zip-based files (docx, pptx, xlsx, odt, epub ...)."""

    def __post_init__(self) -> None:
        """Refuse a chunk limit that is not a positive whole number."""
        limit = self.max_chunks_per_file
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise ConfigError(f"max_chunks_per_file must be a positive whole number or null (no limit), not {limit!r}")

    @classmethod
    def from_options(cls, options: Any) -> FileLimits:
        """The limits named in ``options`` (attributes of the same names), defaults for the rest."""
        archive = {f.name: getattr(options, f.name) for f in fields(ArchiveLimits) if hasattr(options, f.name)}
        chunks = {"max_chunks_per_file": options.max_chunks_per_file} if hasattr(options, "max_chunks_per_file") else {}
        return cls(archive=ArchiveLimits(**archive), **chunks)


def _normal_suffix(suffix: str) -> str:
    suffix = suffix.strip().lower()
    return suffix if suffix.startswith(".") else "." + suffix


def _accepts(cls: type, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


class LoaderSet:
    """The loaders of one ingest, chosen by lower-case file suffix.

    Precedence: ``options.loaders`` overrides (component configs, built
    now, so a bad one fails here), then the built-in loaders, then other
    registered loaders (from connectors' entry points, role ``loader``),
    each claiming its class's ``extensions``. ``options.encoding``, when set,
    is passed to every loader that takes an ``encoding`` option and was not
    given one.

    ``limits`` (default: read from ``options``, see
    :meth:`FileLimits.from_options`) bound each file: the archive limits are
    passed to every loader that takes them as options and was not given
    them, and a zip-based file (:data:`~ragkit.loaders.archive_limits.ZIP_SUFFIXES`)
    whose loader does not check them itself is checked here before it is
    loaded; ``limits.max_chunks_per_file`` is applied by the ingest.
    """

    def __init__(self, options: LoaderOptions | None = None, limits: FileLimits | None = None) -> None:
        self.options = options or LoaderOptions()
        self.limits = limits if limits is not None else FileLimits.from_options(self.options)
        self._overrides: dict[str, BaseLoader] = {}
        for suffix, config in self.options.loaders.items():
            self._overrides[_normal_suffix(suffix)] = self._build(dict(config), where=f"loader override for {suffix!r}")
        self._builtin_types: dict[str, str] = {}
        for name in BUILTIN_LOADERS:
            cls = registry.get("loader", name)
            for suffix in getattr(cls, "extensions", ()):
                self._builtin_types.setdefault(_normal_suffix(suffix), name)
        self._plugin_types: dict[str, str] | None = None
        self._instances: dict[str, BaseLoader] = {}

    def _build(self, config: dict[str, Any], where: str) -> BaseLoader:
        try:
            cls = registry.get("loader", str(config.get("type")))
            if self.options.encoding is not None and "encoding" not in config and _accepts(cls, "encoding"):
                config["encoding"] = self.options.encoding
            for limit in fields(ArchiveLimits):
                if limit.name not in config and _accepts(cls, limit.name):
                    config[limit.name] = getattr(self.limits.archive, limit.name)
            loader = registry.build("loader", config)
        except RagkitError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not callable(getattr(loader, "load", None)):
            raise ConfigError(f"{where}: {type(loader).__name__} is not a loader (no load method)")
        return loader  # type: ignore[no-any-return]

    def _plugins(self) -> dict[str, str]:
        """Suffixes claimed by registered loaders that are not built in (imported on first need)."""
        if self._plugin_types is None:
            claimed: dict[str, str] = {}
            for name in registry.available("loader"):
                if name in BUILTIN_LOADERS:
                    continue
                try:
                    cls = registry.get("loader", name)
                except Exception as exc:  # a broken connector must not stop the others
                    logger.warning("loader %r could not be imported: %s", name, exc)
                    continue
                for suffix in getattr(cls, "extensions", ()) or ():
                    claimed.setdefault(_normal_suffix(suffix), name)
            self._plugin_types = claimed
        return self._plugin_types

    def _instance(self, name: str) -> BaseLoader:
        if name not in self._instances:
            self._instances[name] = self._build({"type": name}, where=f"loader {name!r}")
        return self._instances[name]

    def supported_suffixes(self) -> list[str]:
        """Every suffix some loader reads, sorted."""
        return sorted(set(self._overrides) | set(self._builtin_types) | set(self._plugins()))

    def loader_for(self, path: Path) -> BaseLoader:
        """The loader for ``path``'s suffix; :class:`UnsupportedFileError` when none reads it."""
        suffix = Path(path).suffix.lower()
        if suffix in self._overrides:
            return self._overrides[suffix]
        if suffix in self._builtin_types:
            return self._instance(self._builtin_types[suffix])
        if suffix and suffix in self._plugins():
            return self._instance(self._plugins()[suffix])
        supported = ", ".join(self.supported_suffixes())
        if not suffix:
            reason = f"the file has no suffix, so no loader can be chosen; supported suffixes: {supported}"
        else:
            reason = f"the suffix {suffix!r} is not supported; supported suffixes: {supported}"
        raise UnsupportedFileError(str(path), reason)

    def load(self, file: SourceFile) -> Iterator[Document]:
        """Documents of one discovered file; every problem is a :class:`LoaderError` naming it.

        Checks ``max_file_bytes`` and empty files first, and the archive
        limits of a zip-based file whose loader does not. Any other exception
        a loader raises is wrapped, so one bad file never stops a batch. It
        is a generator: errors surface while iterating, possibly after some
        documents (drop the file's documents then).
        """
        path = file.path
        limit = self.options.max_file_bytes
        if limit is not None and file.size > limit:
            raise LoaderError(str(path), f"file is {file.size} bytes, over the max_file_bytes limit of {limit}")
        if file.size == 0:
            raise LoaderError(str(path), "file is empty")
        loader = self.loader_for(path)
        if path.suffix.lower() in ZIP_SUFFIXES and not getattr(loader, "checks_archives", False):
            check_archive(path, self.limits.archive)
        try:
            yield from loader.load(path, file.source)
        except LoaderError:
            raise
        except MemoryError:
            raise
        except OSError as exc:
            raise LoaderError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
        except RagkitError as exc:
            raise LoaderError(str(path), str(exc)) from exc
        except Exception as exc:
            name = getattr(loader, "component_type", "") or type(loader).__name__
            raise LoaderError(str(path), f"loader {name!r} failed: {type(exc).__name__}: {exc}") from exc

    async def aload(self, file: SourceFile) -> list[Document]:
        """Async twin of :meth:`load` (runs in a worker thread), returning a list."""
        return await asyncio.to_thread(lambda: list(self.load(file)))
