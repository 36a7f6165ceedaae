"""The ``threshold`` stage: keep the hits that score well enough on the current stage's scale."""

from __future__ import annotations

from collections.abc import Sequence

from ragkit.errors import ConfigError
from ragkit.query.stages import RerankerStage
from ragkit.query.state import QueryState
from ragkit.registry import register
from ragkit.schema import Hit


@register("reranker", "threshold")
class ThresholdStage(RerankerStage):
    """Drops hits scoring below ``min_score``, or below ``relative`` times the best hit's score.

    Scores are those of the last stage that scored the hits (cosine after
    dense retrieval, a fusion score after fusion, a reranker's score after
    reranking), so place it right after the stage whose scale it is written
    for. ``min_hits`` keeps at least that many hits whatever their scores.
    """

    def __init__(
        self,
        min_score: float | None = None,
        relative: float | None = None,
        min_hits: int = 0,
        top_k: int | None = None,
    ) -> None:
        super().__init__(top_k=top_k)
        if min_score is None and relative is None:
            raise ConfigError("reranker 'threshold': give min_score, relative, or both")
        if relative is not None and not 0 < relative <= 1:
            raise ConfigError(f"reranker 'threshold': relative must lie in (0, 1], got {relative}")
        if min_hits < 0:
            raise ConfigError(f"reranker 'threshold': min_hits must be >= 0, got {min_hits}")
        self.cutoff = min_score
        self.relative = relative
        self.min_hits = min_hits

    def rerank_many(self, states: Sequence[QueryState], hit_lists: Sequence[list[Hit]]) -> list[list[Hit]]:
        """Each list without the hits under the threshold (order and scores unchanged)."""
        out = []
        for hits in hit_lists:
            floor = float("-inf") if self.cutoff is None else self.cutoff
            if self.relative is not None and hits:
                best = hits[0].score
                floor = max(floor, best * self.relative if best >= 0 else best / self.relative)
            kept = [h for h in hits if h.score >= floor]
            out.append(kept if len(kept) >= self.min_hits else hits[: self.min_hits])
        return out
