"""The one module that imports the official ``pinecone`` client, and turns its errors into ragkit's.

:class:`PineconeIndexClient` opens (or creates) one dense-vector index over
HTTP and offers the few data-plane calls the store makes, taking and giving
plain dicts. The client sends no telemetry (pinecone 10.x has none; the
only hosts it talks to are the control-plane ``host`` and the index's own
host), so there is nothing to switch off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from ragkit.errors import (
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    RagkitError,
    StorageError,
    UnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)

DENSE_FIELD = "_values"
"""The schema field a dimension/metric index keeps its vectors in (API version 2026-07)."""


class PineconeIndexClient:
    """One Pinecone index (its data plane), reached through the official client.

    ``host`` is the control plane (default: ``PINECONE_CONTROLLER_HOST``, else
    ``https://api.pinecone.io``); ``index_host`` skips the describe call and
    talks to that data-plane host directly (then nothing is created or checked).
    """

    def __init__(
        self,
        *,
        api_key: str,
        index: str,
        host: str | None,
        index_host: str | None,
        timeout: float,
        retries: int,
    ) -> None:
        from pinecone import Pinecone, RetryConfig

        self.index_name = index
        self.where = f"Pinecone index {index!r}"
        self._api_key = api_key
        self._timeout = timeout
        control = host or os.environ.get("PINECONE_CONTROLLER_HOST", "")
        with self.errors("connecting"):
            self._pc = Pinecone(
                api_key=api_key,
                host=host or None,
                timeout=timeout,
                retry_config=RetryConfig(max_retries=retries),
                source_tag="ragkit",
                ssl_verify=not _plaintext(control),
            )
        self._index_host = index_host
        self._index: Any = None

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn the client's exceptions into ragkit errors naming the index and ``action``."""
        try:
            yield
        except RagkitError:
            raise
        except Exception as exc:
            raise self.wrap(exc, action) from exc

    def wrap(self, exc: Exception, action: str) -> RagkitError:
        """The ragkit error for a ``pinecone`` exception raised while ``action``."""
        from pinecone.errors import exceptions as pc_errors

        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        where = f"{self.where}: {action} failed: {message}"
        if isinstance(exc, (pc_errors.UnauthorizedError, pc_errors.ForbiddenError)):
            return ConfigError(f"{where} (check the API key: api_key_env names the variable that holds it)")
        if isinstance(exc, pc_errors.NotFoundError):
            return NotFoundError(where)
        if isinstance(exc, pc_errors.PineconeTimeoutError):
            return UpstreamTimeoutError(where)
        if isinstance(exc, pc_errors.PineconeConnectionError):
            return UnavailableError(f"{self.where} is unreachable ({action}): {message}")
        if isinstance(exc, (pc_errors.RateLimitError, pc_errors.ServiceError)):
            return UpstreamError(where)
        if isinstance(exc, pc_errors.ApiError):
            status = getattr(exc, "status_code", None)
            if status in (400, 413) and "dimension" in message.lower():
                return ConflictError(where)
            if status in (400, 413, 422):
                return InputError(where)
            return StorageError(where)
        if isinstance(exc, (pc_errors.PineconeValueError, pc_errors.PineconeTypeError)):
            return InputError(where)
        return StorageError(where)

    # -- control plane ---------------------------------------------------------------------------

    def open(self, *, create: bool, dimension: int, metric: str, cloud: str, region: str) -> tuple[int, str] | None:
        """Find the index (creating it if asked) and return its ``(dimension, metric)``.

        ``None`` when ``index_host`` was given: the index is not described.
        """
        from pinecone.errors import NotFoundError as PineconeNotFound

        if self._index_host:
            self._index = self._data_plane(self._index_host)
            return None
        try:
            with self.errors("describing the index"):
                model = self._pc.indexes.describe(self.index_name)
        except NotFoundError:
            if not create:
                raise NotFoundError(
                    f"{self.where} does not exist; create it, or set create: true to let ragkit create it"
                ) from None
            with self.errors("creating the index"):
                try:
                    model = self._pc.indexes.create(
                        name=self.index_name,
                        dimension=dimension,
                        metric=metric,
                        deployment={"deployment_type": "managed", "cloud": cloud, "region": region},
                    )
                except PineconeNotFound:  # pragma: no cover - a race with another creator's delete
                    raise
                except Exception as exc:
                    if getattr(exc, "status_code", None) != 409:  # 409: another process created it first
                        raise
                    model = self._pc.indexes.describe(self.index_name)
        from pinecone.models.indexes.schema import DenseVectorField

        field = model.schema.fields.get(DENSE_FIELD) if model.schema is not None else None
        if not isinstance(field, DenseVectorField):
            raise ConfigError(
                f"{self.where} is not a dense-vector index created with a dimension and metric "
                f"(its schema declares {sorted(model.schema.fields) if model.schema else 'nothing'})"
            )
        if not model.host:
            raise UnavailableError(f"{self.where} has no host yet (it is still being created); try again shortly")
        self._index = self._data_plane(model.host)
        return int(field.dimension), str(field.metric)

    def _data_plane(self, host: str) -> Any:
        """The client of the index at ``host`` (``pc.index(host=...)`` with the same settings).

        A plaintext ``http://`` host (a local emulator or test fake) gets
        ``ssl_verify=False``: no TLS is spoken, so there is nothing to verify,
        and loading the CA bundle would cost a tenth of a second per store.
        """
        from pinecone import Index

        with self.errors("opening the index host"):
            return Index(
                host=host,
                api_key=self._api_key,
                timeout=self._timeout,
                source_tag="ragkit",
                ssl_verify=not _plaintext(host),
            )

    # -- data plane --------------------------------------------------------------------------------

    def upsert(self, vectors: list[dict[str, Any]], namespace: str) -> None:
        """Write one batch of ``{"id", "values", "metadata"}`` records."""
        with self.errors(f"upserting {len(vectors)} vectors"):
            self._index.upsert(vectors=vectors, namespace=namespace)

    def query(
        self, vector: list[float], top_k: int, namespace: str, flt: Mapping[str, Any] | None, with_metadata: bool
    ) -> list[tuple[str, float, dict[str, Any] | None]]:
        """``(id, score, metadata)`` of the ``top_k`` nearest records passing ``flt``."""
        with self.errors("querying"):
            found = self._index.query(
                vector=vector,
                top_k=top_k,
                namespace=namespace,
                filter=dict(flt) if flt is not None else None,
                include_metadata=with_metadata,
                include_values=False,
            )
        return [(match.id, float(match.score), match.metadata) for match in found.matches]

    def fetch(self, ids: Sequence[str], namespace: str) -> dict[str, dict[str, Any]]:
        """The metadata of the records with these ids that exist."""
        with self.errors(f"fetching {len(ids)} vectors"):
            found = self._index.fetch(ids=list(ids), namespace=namespace)
        return {key: dict(vector.metadata or {}) for key, vector in found.vectors.items()}

    def fetch_by_metadata(
        self, flt: Mapping[str, Any], namespace: str, limit: int
    ) -> Iterator[dict[str, dict[str, Any]]]:
        """Pages of ``{id: metadata}`` of every record passing ``flt``."""
        token: str | None = None
        while True:
            with self.errors("fetching vectors by metadata"):
                page = self._index.fetch_by_metadata(
                    filter=dict(flt), namespace=namespace, limit=limit, pagination_token=token
                )
            yield {key: dict(vector.metadata or {}) for key, vector in page.vectors.items()}
            token = page.pagination.next if page.pagination else None
            if not token:
                return

    def list_ids(self, namespace: str, prefix: str | None = None, limit: int = 100) -> Iterator[list[str]]:
        """Pages of the ids in ``namespace`` (those starting with ``prefix``)."""
        token: str | None = None
        while True:
            with self.errors("listing vector ids"):
                page = self._index.list_paginated(
                    namespace=namespace, prefix=prefix, limit=limit, pagination_token=token
                )
            ids = [item.id for item in page.vectors if item.id is not None]
            if ids:
                yield ids
            token = page.pagination.next if page.pagination else None
            if not token:
                return

    def delete(self, namespace: str, *, ids: Sequence[str] | None = None, everything: bool = False) -> None:
        """Delete these ids, or every record of ``namespace``."""
        with self.errors("deleting vectors"):
            if everything:
                self._index.delete(delete_all=True, namespace=namespace)
            elif ids:
                self._index.delete(ids=list(ids), namespace=namespace)

    def namespace_counts(self) -> tuple[dict[str, int], int | None]:
        """Vectors per namespace, and the index's dimension."""
        with self.errors("reading index stats"):
            stats = self._index.describe_index_stats()
        return {name: int(summary.vector_count) for name, summary in stats.namespaces.items()}, stats.dimension

    def close(self) -> None:
        """Close the HTTP connections."""
        for client in (self._index, self._pc):
            closer = getattr(client, "close", None)
            if closer is not None:
                with suppress(Exception):  # closing must not raise
                    closer()
        self._index = None


def _plaintext(url: str) -> bool:
    """Whether ``url`` is spoken without TLS."""
    return url.strip().lower().startswith("http://")
