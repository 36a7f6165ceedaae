"""Rerankers that reorder without a model of their own: ``mmr`` and ``lost-in-the-middle``.

- ``mmr``: maximal marginal relevance (Carbonell & Goldstein 1998). Picks
  hits one at a time, each maximising ``lambda_mult * relevance - (1 -
  lambda_mult) * redundancy``, where relevance is the cosine between the
  question and the chunk and redundancy the highest cosine between the chunk
  and the hits already picked. ``lambda_mult: 1`` is pure relevance; lower
  values push near-duplicates down. The vectors come from the collection's
  embedder: the candidates are embedded again (the text they were indexed
  with, so with the embedding cache on they are read back from the cache
  instead of recomputed), in one call for every candidate of every question.
- ``lost-in-the-middle``: language models use the start and the end of a
  long context best and the middle worst (Liu et al. 2023, "Lost in the
  Middle"), so the best hits go to both ends and the weakest to the middle:
  ranks 1, 3, 5, ... from the start, ranks 2, 4, ... back from the end.
  Scores are unchanged; each hit's new position is recorded under the
  stage's label. Place it last among the rerankers: it cuts to the final
  number of hits first (its ``top_k``, else the request's), because a cut
  after the reordering would drop the hits placed at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ragkit.config import indexed_text
from ragkit.errors import ConfigError
from ragkit.query.stages import RerankerStage
from ragkit.query.state import QueryState
from ragkit.registry import register
from ragkit.schema import Hit

if TYPE_CHECKING:
    from ragkit.protocols import Embedder


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float32 rows of length 1 (zero rows stay zero), so a dot product is a cosine."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1.0)


def embed_candidates(
    embedder: Embedder, questions: Sequence[str], hit_lists: Sequence[list[Hit]], batch_size: int | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unit vectors of each question and, per question, of each of its hits' indexed texts.

    A chunk that several questions share is embedded once. Without
    ``batch_size`` all texts go to the embedder in one call (it batches them
    itself); with it, in calls of at most that many.
    """
    texts: dict[str, str] = {}
    for hits in hit_lists:
        for hit in hits:
            texts.setdefault(hit.chunk.id, indexed_text(hit.chunk))
    ids = list(texts)
    question_vectors = unit_rows(_embed(embedder.embed_queries, list(questions), batch_size))
    doc_vectors = unit_rows(_embed(embedder.embed_documents, [texts[i] for i in ids], batch_size))
    row = {chunk_id: i for i, chunk_id in enumerate(ids)}
    per_question = [doc_vectors[[row[h.chunk.id] for h in hits]] for hits in hit_lists]
    return question_vectors, per_question


def _embed(method: Callable[[list[str]], np.ndarray], texts: list[str], batch_size: int | None) -> np.ndarray:
    step = batch_size or len(texts)
    return np.concatenate([np.asarray(method(texts[s : s + step])) for s in range(0, len(texts), step)])


def mmr_order(question: np.ndarray, documents: np.ndarray, lambda_mult: float, k: int) -> list[tuple[int, float]]:
    """The first ``k`` picks of maximal marginal relevance: ``(index, MMR score at selection)``, in order.

    ``question`` and ``documents`` are unit vectors; ties go to the earlier document.
    """
    n = len(documents)
    if n == 0 or k <= 0:
        return []
    relevance = documents @ question
    similarity = documents @ documents.T
    redundancy = np.full(n, -np.inf, dtype=np.float64)
    chosen = np.zeros(n, dtype=bool)
    picks: list[tuple[int, float]] = []
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        scores = lambda_mult * relevance - (1.0 - lambda_mult) * penalty
        scores = np.where(chosen, -np.inf, scores)
        best = int(np.argmax(scores))
        picks.append((best, float(scores[best])))
        chosen[best] = True
        redundancy = np.maximum(redundancy, similarity[best])
    return picks


@register("reranker", "mmr")
class MaximalMarginalRelevance(RerankerStage):
    """Maximal marginal relevance over the incoming hits; see the module docstring.

    Args:
        lambda_mult: Weight of relevance against diversity, in [0, 1] (1: relevance only).
        top_k: Keep this many hits (default: all, in MMR order).
        candidates: Consider only the first this many incoming hits.

    """

    def __init__(self, lambda_mult: float = 0.5, top_k: int | None = None, candidates: int | None = None) -> None:
        super().__init__(top_k=top_k, candidates=candidates)
        if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float)) or not 0 <= lambda_mult <= 1:
            raise ConfigError(f"reranker 'mmr': lambda_mult must lie in [0, 1], got {lambda_mult!r}")
        self.lambda_mult = float(lambda_mult)

    def rerank_many(self, states: Sequence[QueryState], hit_lists: Sequence[list[Hit]]) -> list[list[Hit]]:
        """Each list in MMR order, scored by its MMR value when picked; one embedding call per collection."""
        out: list[list[Hit]] = [[] for _ in states]
        groups: dict[int, list[int]] = {}
        for index, state in enumerate(states):
            if hit_lists[index]:
                groups.setdefault(id(state.collection), []).append(index)
        for members in groups.values():
            embedder = states[members[0]].collection.embedder
            questions, documents = embed_candidates(
                embedder, [states[i].question for i in members], [hit_lists[i] for i in members]
            )
            for position, index in enumerate(members):
                hits = hit_lists[index]
                picks = mmr_order(questions[position], documents[position], self.lambda_mult, self.top_k or len(hits))
                out[index] = [
                    hits[i].rescored(score, self.label, "reranked", rank) for rank, (i, score) in enumerate(picks, 1)
                ]
        return out


@register("reranker", "lost-in-the-middle")
class LostInTheMiddle(RerankerStage):
    """Best hits at both ends of the context, weakest in the middle; see the module docstring.

    Args:
        top_k: The number of hits to keep and reorder (default: the request's ``top_k``).

    """

    def __init__(self, top_k: int | None = None) -> None:
        super().__init__(top_k=top_k)

    def rerank_many(self, states: Sequence[QueryState], hit_lists: Sequence[list[Hit]]) -> list[list[Hit]]:
        """Each list cut to its final length, then reordered; scores kept, positions recorded as ranks."""
        out = []
        for state, hits in zip(states, hit_lists, strict=True):
            kept = hits[: self.top_k or state.top_k]
            order = middle_order(len(kept))
            reordered = []
            for position, incoming in enumerate(order, 1):
                hit = kept[incoming]
                reordered.append(
                    Hit(hit.chunk, hit.score, hit.origin, dict(hit.scores), {**hit.ranks, self.label: position})
                )
            out.append(reordered)
            state.current(self.label).notes.append(
                f"reordered {len(kept)} hits for a long context: the best at the start and the end, "
                "the weakest in the middle (scores unchanged; ranks are positions)"
            )
        return out


def middle_order(n: int) -> list[int]:
    """Incoming indexes (0 = best) in lost-in-the-middle order: 0, 2, 4, ..., 5, 3, 1."""
    front = list(range(0, n, 2))
    back = list(range(1, n, 2))
    return front + back[::-1]
