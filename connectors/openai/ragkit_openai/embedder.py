"""Embeddings from any OpenAI-compatible server: OpenAI, vLLM, TEI, llama.cpp, Ollama ...

Uses the official ``openai`` client (imported on first use, set up by
:class:`ragkit_openai.client.OpenAIClients` as for the chat generator).
Requests are batched, retried with exponential backoff on 408/409/429/5xx
answers, connection errors and timeouts (the client's own retry loop, which
also honours ``Retry-After``), and bounded by a per-request timeout. What
still fails becomes a ragkit error by the core's one upstream mapping
(:mod:`ragkit.upstream`), the same as for the chat generator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragkit.component import Component
from ragkit.embedders.inputs import check_texts
from ragkit.embedders.prefixes import default_prefixes
from ragkit.errors import ConfigError, UpstreamError
from ragkit.options import check_int
from ragkit.protocols import Vectors
from ragkit_openai.client import OpenAIConnected

logger = logging.getLogger(__name__)

_PROBE_TEXT = "dimension probe"


class OpenAIEmbedder(OpenAIConnected, Component):
    """Embeds texts through an OpenAI-compatible ``/v1/embeddings`` endpoint.

    Args:
        model: The model name sent with each request (the id the server knows it by).
        base_url: The server's API root, e.g. ``http://localhost:8080/v1``
            (TEI, vLLM). ``None``: OpenAI (or ``OPENAI_BASE_URL``).
        api_key: The key, if it is to be written into the config. Prefer
            ``api_key_env``: a key read from the environment is never saved.
        api_key_env: The environment variable holding the key. A server
            without authentication needs none (a placeholder is sent).
        dimension: The vector length. ``None``: learned from the first
            response. Sent as ``dimensions=`` only with ``request_dimensions``.
        request_dimensions: Ask the server for ``dimension``-long vectors
            (OpenAI text-embedding-3 and other Matryoshka models).
        batch_size: Texts per request; longer inputs are split, order kept.
        max_retries: Retries of a failed request (408, 409, 429, 5xx,
            connection errors, timeouts), with exponential backoff.
        timeout: Seconds one request may take.
        query_prefix: Prepended to queries. ``None``: picked from the model
            name (e5, bge ... as for local models); ``""`` means none.
        document_prefix: Prepended to documents; same rules.
        max_tokens: The model's input limit, for splitters (8191 for OpenAI's models).
        http_client: An ``httpx.Client`` (or ``httpx2.Client``) for the sync
            client, e.g. with a custom transport; not part of the saved config.
        async_http_client: The same for the async client.

    The fingerprint names the model and options, not the server, so moving a
    server keeps its cache and collections. Give the real model id as
    ``model`` even where the server ignores it (TEI serves one model
    whatever the name).

    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        dimension: int | None = None,
        request_dimensions: bool = False,
        batch_size: int = 128,
        max_retries: int = 3,
        timeout: float = 30.0,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        max_tokens: int = 8191,
        *,
        http_client: Any = None,
        async_http_client: Any = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"embedder option 'model': expected the model's name, got {model!r}")
        for name, value in (("query_prefix", query_prefix), ("document_prefix", document_prefix)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"embedder option {name!r}: expected a string, got {type(value).__name__}")
        if dimension is not None:
            check_int("embedder", "dimension", dimension, 1)
        check_int("embedder", "batch_size", batch_size, 1)
        check_int("embedder", "max_retries", max_retries, 0)
        check_int("embedder", "max_tokens", max_tokens, 1)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"embedder option 'timeout': expected a positive number of seconds, got {timeout!r}")
        if not isinstance(request_dimensions, bool):
            raise ConfigError(
                f"embedder option 'request_dimensions': expected true or false, got {request_dimensions!r}"
            )
        if request_dimensions and dimension is None:
            raise ConfigError("embedder option 'request_dimensions' needs 'dimension' to be set")
        self._connect(
            "embedder", model, base_url, api_key, api_key_env, timeout, max_retries, http_client, async_http_client
        )
        self._dimension = dimension
        self.request_dimensions = request_dimensions
        self.batch_size = batch_size
        auto_query, auto_document = default_prefixes(model)
        self.query_prefix: str = auto_query if query_prefix is None else query_prefix
        self.document_prefix: str = auto_document if document_prefix is None else document_prefix
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._tokenizer_tried = False

    # -- config and identity ------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """``openai:<model>:<digest of prefixes and requested dimensions>`` (the server's address is left out)."""
        options = {
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "dimensions": self._dimension if self.request_dimensions else None,
        }
        digest = hashlib.blake2b(json.dumps(options, sort_keys=True).encode(), digest_size=6).hexdigest()
        return f"openai:{self.model}:{digest}"

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, base_url={self.where!r})"

    @property
    def dimension(self) -> int:
        """The vector length: as configured, else learned from a response (one small request if none yet)."""
        if self._dimension is None:
            self._request_sync([self.document_prefix + _PROBE_TEXT])
        assert self._dimension is not None
        return self._dimension

    # -- embedding --------------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors for passages (with the document prefix), float32, L2-normalised."""
        return self._embed_sync(check_texts(texts), self.document_prefix)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Vectors for search queries (with the query prefix)."""
        return self._embed_sync(check_texts(texts), self.query_prefix)

    async def aembed_documents(self, texts: Sequence[str]) -> Vectors:
        """Async twin of :meth:`embed_documents` (the async client; batches one after another)."""
        return await self._embed_async(check_texts(texts), self.document_prefix)

    async def aembed_queries(self, texts: Sequence[str]) -> Vectors:
        """Async twin of :meth:`embed_queries`."""
        return await self._embed_async(check_texts(texts), self.query_prefix)

    def _batches(self, texts: list[str], prefix: str) -> list[list[str]]:
        inputs = [prefix + text for text in texts] if prefix else texts
        return [inputs[i : i + self.batch_size] for i in range(0, len(inputs), self.batch_size)]

    def _embed_sync(self, texts: list[str], prefix: str) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate([self._request_sync(batch) for batch in self._batches(texts, prefix)])

    async def _embed_async(self, texts: list[str], prefix: str) -> Vectors:
        if not texts:
            if self._dimension is None:
                await self._request_async([self.document_prefix + _PROBE_TEXT])
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = [await self._request_async(batch) for batch in self._batches(texts, prefix)]
        return np.concatenate(parts)

    def _request_kwargs(self, batch: list[str]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.request_dimensions:
            kwargs["dimensions"] = self._dimension
        return kwargs

    def _request_sync(self, batch: list[str]) -> Vectors:
        client = self._clients.sync()
        try:
            response = client.embeddings.create(**self._request_kwargs(batch))
        except Exception as exc:
            raise self._clients.error(exc) from None
        return self._vectors(response, len(batch))

    async def _request_async(self, batch: list[str]) -> Vectors:
        client = self._clients.for_loop()
        try:
            response = await client.embeddings.create(**self._request_kwargs(batch))
        except Exception as exc:
            raise self._clients.error(exc) from None
        return self._vectors(response, len(batch))

    def _vectors(self, response: Any, expected: int) -> Vectors:
        data = getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != expected:
            got = len(data) if isinstance(data, list) else "no"
            raise UpstreamError(f"embedding server {self.where} sent {got} vectors for {expected} texts")
        rows = sorted(data, key=lambda item: getattr(item, "index", 0) or 0)
        try:
            vectors = [_decode(item.embedding) for item in rows]
            lengths = {len(v) for v in vectors}
            if len(lengths) != 1 or 0 in lengths:
                raise ValueError(f"vector lengths {sorted(lengths)}")
            matrix = np.stack(vectors).astype(np.float32, copy=False)
        except (AttributeError, TypeError, ValueError) as exc:
            raise UpstreamError(f"embedding server {self.where} sent malformed vectors: {exc}") from None
        if not np.all(np.isfinite(matrix)):
            raise UpstreamError(f"embedding server {self.where} sent vectors with NaN or infinite values")
        self._learn_dimension(matrix.shape[1])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.maximum(norms, np.float32(1e-12), out=norms)
        return np.ascontiguousarray(matrix / norms, dtype=np.float32)

    def _learn_dimension(self, dim: int) -> None:
        with self._lock:
            if self._dimension is None:
                self._dimension = dim
                return
        if dim != self._dimension:
            raise ConfigError(
                f"embedder option 'dimension' is {self._dimension} but {self.where} returned "
                f"{dim}-long vectors for model {self.model!r}"
            )

    # -- tokens -------------------------------------------------------------------------------

    @property
    def max_tokens(self) -> int:
        """The model's input limit in tokens (the ``max_tokens`` option)."""
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes as a document (document prefix included).

        Exact for OpenAI's own models when ``tiktoken`` is installed (and its
        encoding file can be loaded); otherwise a rough estimate of
        ``len(text) // 4 + 1`` — other servers' tokenizers are not reachable
        through the OpenAI API.
        """
        items = check_texts(texts)
        inputs = [self.document_prefix + text for text in items] if self.document_prefix else items
        encoding = self._tiktoken()
        if encoding is None:
            return [len(text) // 4 + 1 for text in inputs]
        return [len(ids) for ids in encoding.encode_ordinary_batch(inputs)]

    def _tiktoken(self) -> Any:
        if not self._tokenizer_tried:
            self._tokenizer_tried = True
            try:
                import tiktoken
            except ImportError:
                return None
            try:
                # only models tiktoken knows: a served e5 or bge does not use OpenAI's tokenizer
                self._tokenizer = tiktoken.encoding_for_model(self.model)
            except KeyError:
                self._tokenizer = None
            except Exception as exc:  # the encoding file could not be fetched (offline)
                logger.warning(
                    "tiktoken could not load the encoding of %s (%s); estimating token counts", self.model, exc
                )
                self._tokenizer = None
        return self._tokenizer


def _decode(embedding: Any) -> np.ndarray:
    if isinstance(embedding, str):  # a server that answers base64 whatever was asked
        return np.frombuffer(base64.b64decode(embedding), dtype=np.float32)
    return np.asarray(embedding, dtype=np.float32).reshape(-1)
