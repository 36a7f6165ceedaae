"""The base class of every vector store, and how a collection builds one.

A store is built through :meth:`StoreBase.from_config` with three values the
collection injects: ``path`` (a folder the store may use), ``dimension`` (the
embedder's vector length) and ``name`` (the collection's name). Only the other
options are the store's saved configuration, so :meth:`StoreBase.to_config`
leaves the injected ones out. Optional features (``drop``, ``stats``,
``chunks_of_documents``) are declared in :attr:`StoreBase.capabilities`; see
:data:`ragkit.protocols.STORE_CAPABILITIES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import numpy as np

from ragkit import registry
from ragkit.component import Component
from ragkit.errors import ConfigError, ConflictError
from ragkit.protocols import STORE_CAPABILITIES, StoreWithStats, Vectors, VectorStore, capabilities_of
from ragkit.schema import Chunk

S = TypeVar("S", bound="StoreBase")

INJECTED = ("path", "dimension", "name")
"""Constructor arguments the collection supplies; never part of a store's saved config."""


class StoreBase(Component):
    """Base of the vector stores: construction with injected values, config, shared checks."""

    role: ClassVar[str] = "store"
    capabilities: ClassVar[frozenset[str]] = frozenset()
    """The optional features this store implements (names from :data:`ragkit.protocols.STORE_CAPABILITIES`)."""
    unsaved_options: ClassVar[tuple[str, ...]] = ()
    """Constructor arguments never written into a saved config (a secret token, a read-only switch)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = sorted(set(cls.capabilities) - set(STORE_CAPABILITIES))
        if unknown:
            raise TypeError(f"{cls.__name__} declares unknown capabilities {unknown}; known: {STORE_CAPABILITIES}")

    @classmethod
    def from_config(  # type: ignore[override]  # the collection injects path, dimension and name
        cls: type[S],
        config: Mapping[str, Any],
        *,
        path: str | Path | None = None,
        dimension: int | None = None,
        name: str | None = None,
    ) -> S:
        """Build from the saved options (``type`` is ignored) and the collection's ``path``, ``dimension``, ``name``.

        The injected values may also come inside ``config`` (as a test or a
        script that builds a store by hand may pass them); the keyword
        arguments win.
        """
        injected = {"path": path, "dimension": dimension, "name": name}
        params = {**config, **{key: value for key, value in injected.items() if value is not None}}
        missing = [key for key in ("path", "dimension") if key not in params]
        if missing:
            raise ConfigError(f"store {cls.component_type!r}: building it needs {' and '.join(missing)}")
        return super().from_config(params)

    def to_config(self) -> dict[str, Any]:
        """The options that reopen this store: without the injected values and the unsaved options."""
        config = super().to_config()
        for key in (*INJECTED, *self.unsaved_options):
            config.pop(key, None)
        return config

    def check_vectors(self, chunks: Sequence[Chunk], vectors: Vectors, where: str) -> Vectors:
        """``vectors`` as a C-contiguous float32 matrix, refused with a :class:`ConflictError` if it does not fit.

        ``where`` names the store in the message (``store at /path``, ``Milvus collection 'x'``).
        """
        dimension = cast(VectorStore, self).dimension
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != dimension:
            got = matrix.shape[1] if matrix.ndim == 2 else f"shape {matrix.shape}"
            raise ConflictError(f"{where} holds {dimension}-dimensional vectors, got {got}-dimensional ones")
        if len(chunks) != len(matrix):
            raise ConflictError(f"upsert got {len(chunks)} chunks but {len(matrix)} vectors")
        return matrix


def build_store(options: Mapping[str, Any], *, path: Path, dimension: int, name: str) -> VectorStore:
    """The store ``options["type"]`` names, built with the injected ``path``, ``dimension`` and ``name``.

    A registered class that is not a :class:`StoreBase` (written before the
    base class existed) is still built the old way,
    ``cls(path=..., dimension=..., name=..., **options)``.
    """
    kind = str(options["type"])
    cls: Any = registry.get("store", kind)
    params = {key: value for key, value in options.items() if key != "type"}
    if isinstance(cls, type) and issubclass(cls, StoreBase):
        return cast(VectorStore, cls.from_config(params, path=path, dimension=dimension, name=name))
    try:
        return cast(VectorStore, cls(path=path, dimension=dimension, name=name, **params))
    except TypeError as exc:
        raise ConfigError(f"store {kind!r}: {exc}") from None


def store_stats(store: VectorStore) -> dict[str, Any]:
    """The store's own stats when it declares ``stats``, else just its chunk count."""
    if "stats" in capabilities_of(store):
        return cast(StoreWithStats, store).stats()
    return {"chunks": store.count()}
