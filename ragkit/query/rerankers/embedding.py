"""The ``embedding-rerank`` stage: any ragkit embedder as a bi-encoder re-scorer.

Each hit is scored by the cosine between the question (embedded as a query)
and the chunk (embedded as a document, with its chunk header when the
collection has headers on). ``embedder:`` takes any embedder config
(``{"type": "sentence-transformers", "model": ...}``, an OpenAI-compatible
server ...), built when the stage is built; without it the collection's own
embedder is used, which is useful after a keyword retriever or a fusion step
(every hit then gets the dense scale) and costs little because the
embedding cache returns the chunk vectors stored at ingest. A stronger
embedder than the collection's gives a cheap reranker: it embeds only the
candidates, never the whole collection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ragkit import registry
from ragkit.errors import ConfigError, NotFoundError
from ragkit.query.rerankers.diversity import embed_candidates
from ragkit.query.stages import RerankerStage
from ragkit.query.state import QueryState
from ragkit.registry import register
from ragkit.schema import Hit

if TYPE_CHECKING:
    from ragkit.protocols import Embedder


@register("reranker", "embedding-rerank")
class EmbeddingReranker(RerankerStage):
    """Rescores hits by cosine(question, chunk) with an embedder; see the module docstring.

    Args:
        embedder: The embedder config (default: the collection's own embedder).
        top_k: Keep this many hits after reranking (default: all).
        min_score: Drop hits whose cosine is below this.
        candidates: Rerank only the first this many incoming hits.
        batch_size: Texts per embedding call.

    """

    def __init__(
        self,
        embedder: Mapping[str, Any] | str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        candidates: int | None = None,
        batch_size: int = 32,
    ) -> None:
        super().__init__(top_k=top_k, min_score=min_score, candidates=candidates, batch_size=batch_size)
        self._embedder: Embedder | None = None
        if embedder is not None:
            if isinstance(embedder, Mapping):
                embedder = dict(embedder)
            try:
                self._embedder = registry.build("embedder", embedder)
            except NotFoundError as exc:
                raise ConfigError(f"reranker 'embedding-rerank': embedder: {exc}") from None
            except ConfigError as exc:
                raise ConfigError(f"reranker 'embedding-rerank': embedder: {exc}") from None

    def rerank_many(self, states: Sequence[QueryState], hit_lists: Sequence[list[Hit]]) -> list[list[Hit]]:
        """Each list sorted by cosine to its question; one batched pass per embedder."""
        out: list[list[Hit]] = [[] for _ in states]
        groups: dict[int, list[int]] = {}
        for index, state in enumerate(states):
            if hit_lists[index]:
                key = 0 if self._embedder is not None else id(state.collection)
                groups.setdefault(key, []).append(index)
        for members in groups.values():
            embedder = self._embedder or states[members[0]].collection.embedder
            questions, documents = embed_candidates(
                embedder, [states[i].question for i in members], [hit_lists[i] for i in members], self.batch_size
            )
            for position, index in enumerate(members):
                hits = hit_lists[index]
                scores = documents[position] @ questions[position]
                order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), i))
                out[index] = [
                    hits[i].rescored(float(scores[i]), self.label, "reranked", rank) for rank, i in enumerate(order, 1)
                ]
        return out

    def score_many(self, questions: Sequence[str], hit_lists: Sequence[list[Hit]]) -> list[list[float]]:
        """Cosine of each hit to its question, with the configured embedder (needs ``embedder:``)."""
        if self._embedder is None:
            raise ConfigError("reranker 'embedding-rerank': score_many needs an 'embedder:' (no collection here)")
        q, docs = embed_candidates(self._embedder, questions, hit_lists, self.batch_size)
        return [[float(s) for s in np.asarray(d @ q[i])] for i, d in enumerate(docs)]
