"""Embeddings both ways: a LangChain ``Embeddings`` as a ragkit embedder, a ragkit embedder as LangChain ``Embeddings``.

:class:`LangChainEmbedder` (component ``embedder.langchain``) wraps any
LangChain embeddings class named by import path and keyword arguments::

    embedder: {type: langchain, embeddings: langchain_openai.OpenAIEmbeddings,
               kwargs: {model: text-embedding-3-small}}

Vectors are L2-normalised (ragkit's stores score by inner product, so that
is cosine similarity) unless ``normalize`` is off. :meth:`LangChainEmbedder.wrap`
takes an ``Embeddings`` object instead, keeping the very object for this
process and a config that rebuilds it (its pydantic fields, secrets left to
the environment).

:class:`RagkitEmbeddings` is the other way: any ragkit embedder (a
collection's, with its query and document prefixes) as LangChain
``Embeddings``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from ragkit.component import Component
from ragkit.embedders.inputs import check_texts
from ragkit.errors import ConfigError, UpstreamError
from ragkit.protocols import Embedder, Vectors
from ragkit_langchain._imports import class_path, instantiate, rebuild_kwargs

_PROBE_TEXT = "dimension probe"

_LIVE: dict[str, Embeddings] = {}
"""Embeddings objects given to :meth:`LangChainEmbedder.wrap` in this process, by class path and arguments."""


def _live_key(path: str, kwargs: Mapping[str, Any]) -> str:
    return json.dumps([path, dict(kwargs)], sort_keys=True, default=str)


class LangChainEmbedder(Component):
    """A LangChain ``Embeddings`` class as a ragkit embedder (see the module docstring).

    Args:
        embeddings: Import path of the class (``langchain_openai.OpenAIEmbeddings``).
        kwargs: Its constructor's keyword arguments.
        normalize: L2-normalise the vectors (ragkit's stores score by inner product).
        dimension: The vector length, if known (else one probe text is embedded to learn it).

    """

    role = "embedder"
    component_type = "langchain"

    def __init__(
        self,
        embeddings: str,
        kwargs: Mapping[str, Any] | None = None,
        normalize: bool = True,
        dimension: int | None = None,
    ) -> None:
        if not isinstance(normalize, bool):
            raise ConfigError(f"embedder 'langchain': normalize must be true or false, got {normalize!r}")
        if dimension is not None and (isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1):
            raise ConfigError(f"embedder 'langchain': dimension must be a positive integer, got {dimension!r}")
        self.path = embeddings
        self.kwargs = dict(kwargs or {})
        self.normalize = normalize
        self._dimension = dimension
        live = _LIVE.get(_live_key(embeddings, self.kwargs))
        self.model: Embeddings = live if live is not None else instantiate(embeddings, kwargs, "embedder")
        if not isinstance(self.model, Embeddings):
            raise ConfigError(f"embedder 'langchain': {embeddings} is not a LangChain Embeddings class")

    @classmethod
    def wrap(cls, embeddings: Embeddings, normalize: bool = True) -> LangChainEmbedder:
        """An embedder over the very object ``embeddings``, configured to rebuild it from its class and fields.

        The object is remembered for this process: an embedder built from the
        same config here (a collection's, say) uses it too instead of building
        another (which might need the secrets the config leaves out).
        """
        if not isinstance(embeddings, Embeddings):
            raise ConfigError(f"expected a LangChain Embeddings object, got {type(embeddings).__name__}")
        path, kwargs = class_path(embeddings), rebuild_kwargs(embeddings)
        _LIVE[_live_key(path, kwargs)] = embeddings
        return cls(path, kwargs, normalize)

    @property
    def fingerprint(self) -> str:
        """``langchain:<class>:<digest of its arguments and normalisation>``."""
        options = json.dumps([self.kwargs, self.normalize], sort_keys=True, default=str)
        return f"langchain:{self.path}:{hashlib.blake2b(options.encode(), digest_size=6).hexdigest()}"

    @property
    def dimension(self) -> int:
        """The vector length: as configured, else learned by embedding one probe text."""
        if self._dimension is None:
            self._dimension = int(self.embed_documents([_PROBE_TEXT]).shape[1])
        return self._dimension

    def _array(self, rows: Sequence[Sequence[float]], count: int) -> Vectors:
        vectors = np.asarray(rows, dtype=np.float32)
        if count == 0:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != count:
            raise UpstreamError(
                f"embedder 'langchain': {self.path} returned {vectors.shape[0] if vectors.ndim else 0} vectors "
                f"for {count} texts"
            )
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = np.asarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)
        return vectors

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors of passages, by the model's ``embed_documents``."""
        items = check_texts(texts)
        return self._array(self.model.embed_documents(items) if items else [], len(items))

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Vectors of queries, by the model's ``embed_query`` (one call each)."""
        items = check_texts(texts)
        return self._array([self.model.embed_query(t) for t in items], len(items))

    async def aembed_documents(self, texts: Sequence[str]) -> Vectors:
        """Async twin of :meth:`embed_documents` (the model's ``aembed_documents``)."""
        items = check_texts(texts)
        return self._array(await self.model.aembed_documents(items) if items else [], len(items))

    async def aembed_queries(self, texts: Sequence[str]) -> Vectors:
        """Async twin of :meth:`embed_queries`."""
        items = check_texts(texts)
        rows = await asyncio.gather(*(self.model.aembed_query(t) for t in items))
        return self._array(list(rows), len(items))


class RagkitEmbeddings(Embeddings):
    """A ragkit embedder as LangChain ``Embeddings`` (queries and documents keep the embedder's own prefixes)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors of ``texts`` as passages."""
        return [row.tolist() for row in self.embedder.embed_documents(texts)] if texts else []

    def embed_query(self, text: str) -> list[float]:
        """The vector of ``text`` as a query."""
        return [float(x) for x in self.embedder.embed_queries([text])[0]]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async twin of :meth:`embed_documents`."""
        return [row.tolist() for row in await self.embedder.aembed_documents(texts)] if texts else []

    async def aembed_query(self, text: str) -> list[float]:
        """Async twin of :meth:`embed_query`."""
        return [float(x) for x in (await self.embedder.aembed_queries([text]))[0]]
