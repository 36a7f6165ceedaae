"""LangChain document loaders as a ragkit loader (component ``loader.langchain``).

Name the loader class by import path, give its keyword arguments, and map
the suffixes it should read in the collection's loader options::

    loader:
      loaders:
        .csv: {type: langchain, loader: langchain_community.document_loaders.CSVLoader}
        .eml: {type: langchain, loader: langchain_community.document_loaders.UnstructuredEmailLoader,
               kwargs: {mode: elements}}

Each file is loaded by a new instance built with ``kwargs`` plus the file's
path (under ``path_argument``, ``file_path`` by default), through
``lazy_load()``. Every LangChain document becomes a ragkit document of the
file's source (ids ``<source>#0``, ``#1`` ...) with its scalar metadata;
LangChain's own ``source`` (the path) gives way to ragkit's, and the keys in
``zero_based`` (``page``, ``row``: LangChain counts them from 0) are shifted
to ragkit's count from 1, so citations name the right page or row. A loader
that fails on a file fails that file only, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.document_loaders import BaseLoader as LCBaseLoader

from ragkit.errors import ConfigError, LoaderError
from ragkit.loaders.base import RESERVED_METADATA, BaseLoader, scalar_metadata
from ragkit.schema import Document
from ragkit_langchain._imports import import_class


class LangChainLoader(BaseLoader):
    """Any LangChain ``BaseLoader`` class over one file (see the module docstring).

    Args:
        loader: Import path of the class (``langchain_community.document_loaders.CSVLoader``).
        kwargs: Its constructor's other keyword arguments.
        path_argument: The constructor argument that takes the file's path.
        zero_based: Metadata keys LangChain counts from 0, shifted by one.

    """

    role = "loader"
    component_type = "langchain"

    def __init__(
        self,
        loader: str,
        kwargs: Mapping[str, Any] | None = None,
        path_argument: str = "file_path",
        zero_based: Sequence[str] = ("page", "row"),
    ) -> None:
        cls = import_class(loader, "loader")
        if not issubclass(cls, LCBaseLoader):
            raise ConfigError(f"loader 'langchain': {loader} is not a LangChain document loader (BaseLoader)")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ConfigError(f"loader 'langchain': kwargs must be a mapping, got {type(kwargs).__name__}")
        if not isinstance(path_argument, str) or not path_argument:
            raise ConfigError(f"loader 'langchain': path_argument must be a name, got {path_argument!r}")
        self.cls = cls
        self.kwargs = dict(kwargs or {})
        self.path_argument = path_argument
        self.zero_based = tuple(zero_based)

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """The file's LangChain documents as ragkit documents of ``source``."""
        try:
            instance = self.cls(**{**self.kwargs, self.path_argument: str(path)})
            for index, item in enumerate(instance.lazy_load()):
                yield self._document(item, index, path, source)
        except LoaderError:
            raise
        except Exception as exc:  # whatever the LangChain loader raises about this file
            raise LoaderError(str(path), f"{self.cls.__name__}: {type(exc).__name__}: {exc}") from None

    def _document(self, item: Any, index: int, path: Path, source: str) -> Document:
        metadata = {k: v for k, v in scalar_metadata(dict(item.metadata)).items() if k not in RESERVED_METADATA}
        for key in self.zero_based:
            value = item.metadata.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                metadata[key] = value + 1
        metadata.update(self.base_metadata(path, source))
        return self.make_document(source, str(item.page_content), metadata, fragment=str(index))
