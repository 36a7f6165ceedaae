"""LlamaIndex readers as a ragkit loader (component ``loader.llamaindex``).

Name the reader class by import path, give its keyword arguments, and map
the suffixes it should read in the collection's loader options::

    loader:
      loaders:
        .json: {type: llamaindex, reader: llama_index.core.readers.json.JSONReader,
                kwargs: {levels_back: 0}}
        .md:   {type: llamaindex, reader: llama_index.core.SimpleDirectoryReader}

How the file reaches the reader:

- most readers (``BaseReader`` subclasses such as ``JSONReader`` or those of
  ``llama-index-readers-file``) are built once with ``kwargs`` and read each
  file through ``load_data(<path_argument>=path)``; ``path_argument`` is the
  name of ``load_data``'s file argument, found from its signature when not
  given (``file``, ``input_file``, ``file_path`` ...);
- ``SimpleDirectoryReader`` is built per file with ``input_files=[path]``
  plus ``kwargs`` (``file_extractor``, ``encoding`` ...), then ``load_data()``.

Every LlamaIndex document becomes a ragkit document of the file's source
(ids ``<source>#0``, ``#1`` ...) with its scalar metadata, mapped onto
ragkit's keys: ``page_label`` (LlamaIndex's page, a label counted from 1) gives
``page`` when it is a number (``page_number`` too), and the file keys give way
to ragkit's own: ``file_path`` (absolute, machine-specific) is dropped, as the
access/creation/modification dates that would change the chunks' metadata on
every read; ``source``, ``file_name``, ``file_type`` and ``uri`` are ragkit's,
``source`` the path relative to the folder ingested, as with every loader.
A reader that fails on a file fails that file only, with the reason.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from llama_index.core import SimpleDirectoryReader
from llama_index.core.readers.base import BaseReader as LIBaseReader

from ragkit.errors import ConfigError, LoaderError
from ragkit.loaders.base import RESERVED_METADATA, BaseLoader, scalar_metadata
from ragkit.schema import Document

DROPPED_METADATA = frozenset({"file_path", "creation_date", "last_modified_date", "last_accessed_date"})
"""LlamaIndex file metadata left out: machine-specific, or changing on every read."""
_PATH_ARGUMENTS = ("file", "input_file", "file_path", "path", "input_path")


def import_reader(path: str) -> type[LIBaseReader]:
    """The LlamaIndex reader class at ``path`` (``package.module.Class`` or ``package.module:Class``)."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"loader 'llamaindex': expected an import path like 'package.module.Class', got {path!r}")
    module_name, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not name:
        raise ConfigError(f"loader 'llamaindex': {path!r} is not an import path like 'package.module.Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"loader 'llamaindex': cannot import {module_name!r} for {path!r}: {exc}") from None
    found = getattr(module, name, None)
    if not isinstance(found, type):
        raise ConfigError(f"loader 'llamaindex': {module_name!r} has no class {name!r}")
    if not issubclass(found, LIBaseReader):
        raise ConfigError(f"loader 'llamaindex': {path} is not a LlamaIndex reader (BaseReader)")
    return found


def ragkit_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A LlamaIndex document's metadata on ragkit's keys (see the module docstring); ragkit's own keys left out."""
    kept = {
        k: v
        for k, v in scalar_metadata(dict(metadata)).items()
        if k not in RESERVED_METADATA and k not in DROPPED_METADATA
    }
    for key in ("page_label", "page_number"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            kept["page"] = value
            break
    return kept


class LlamaIndexLoader(BaseLoader):
    """Any LlamaIndex reader class over one file (see the module docstring).

    Args:
        reader: Import path of the class (``llama_index.core.readers.json.JSONReader``).
        kwargs: Its constructor's keyword arguments.
        path_argument: The ``load_data`` argument that takes the file's path (found when not given);
            for ``SimpleDirectoryReader``, the constructor's (``input_files``, given a one-item list).
        load_kwargs: Other keyword arguments of ``load_data``.

    """

    role = "loader"
    component_type = "llamaindex"

    def __init__(
        self,
        reader: str,
        kwargs: Mapping[str, Any] | None = None,
        path_argument: str | None = None,
        load_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        cls = import_reader(reader)
        for name, given in (("kwargs", kwargs), ("load_kwargs", load_kwargs)):
            if given is not None and not isinstance(given, Mapping):
                raise ConfigError(f"loader 'llamaindex': {name} must be a mapping, got {type(given).__name__}")
        self.cls = cls
        self.kwargs = dict(kwargs or {})
        self.load_kwargs = dict(load_kwargs or {})
        self.per_file = issubclass(cls, SimpleDirectoryReader)
        self.path_argument = path_argument or ("input_files" if self.per_file else self._load_argument(cls))
        self._instance: LIBaseReader | None = None

    @staticmethod
    def _load_argument(cls: type[LIBaseReader]) -> str:
        params = inspect.signature(cls.load_data).parameters
        for name in _PATH_ARGUMENTS:
            if name in params:
                return name
        raise ConfigError(
            f"loader 'llamaindex': cannot tell which argument of {cls.__name__}.load_data takes the file "
            f"(it has {', '.join(p for p in params if p != 'self') or 'none'}); set path_argument"
        )

    def _reader(self) -> LIBaseReader:
        if self._instance is None:
            try:
                self._instance = self.cls(**self.kwargs)
            except Exception as exc:  # the reader validating its arguments
                raise ConfigError(f"loader 'llamaindex': {self.cls.__name__} could not be built: {exc}") from None
        return self._instance

    def _read(self, path: Path) -> list[Any]:
        if self.per_file:
            reader = self.cls(**{**self.kwargs, self.path_argument: [str(path)]})
            return list(reader.load_data(**self.load_kwargs))
        return list(self._reader().load_data(**{**self.load_kwargs, self.path_argument: path}))

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """The file's LlamaIndex documents as ragkit documents of ``source``."""
        try:
            items = self._read(path)
        except (LoaderError, ConfigError):
            raise
        except Exception as exc:  # whatever the LlamaIndex reader raises about this file
            raise LoaderError(str(path), f"{self.cls.__name__}: {type(exc).__name__}: {exc}") from None
        for index, item in enumerate(items):
            metadata = ragkit_metadata(item.metadata)
            metadata.update(self.base_metadata(path, source))
            yield self.make_document(source, item.get_content(), metadata, fragment=str(index))
