"""Fusion stages: one ranked list from the lists of several retrievers and queries.

- ``rrf``: reciprocal rank fusion, ``sum(weight / (k + rank))`` (Cormack et
  al. 2009); uses ranks only, so retrievers on different score scales mix
  without calibration. ``k: 60`` is the usual constant.
- ``weighted``: each list's scores min-max normalised to [0, 1] within the
  list, then a weighted sum (LangChain's EnsembleRetriever weights, with scores).
- ``dbsf``: distribution-based score fusion (Qdrant's): each list's scores
  normalised by mean ± 3 standard deviations, clipped to [0, 1], then summed.

A chunk missing from a list contributes nothing from it. Each fused hit keeps
every list's score and rank (``hit.scores``, ``hit.ranks``), plus its fused
score under the fuser's label.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from ragkit.errors import ConfigError
from ragkit.query.stages import FuserStage, merge_hits
from ragkit.query.state import CandidateList
from ragkit.registry import register
from ragkit.schema import Hit


def _ranked(label: str, scores: dict[str, float], merged: dict[str, Hit]) -> list[Hit]:
    order = sorted(scores, key=lambda chunk_id: -scores[chunk_id])
    fused = []
    for rank, chunk_id in enumerate(order, 1):
        hit = merged[chunk_id]
        hit.score = scores[chunk_id]
        hit.scores[label] = hit.score
        hit.ranks[label] = rank
        fused.append(hit)
    return fused


@register("fuser", "rrf")
class ReciprocalRankFusion(FuserStage):
    """Reciprocal rank fusion: ``sum(weight / (k + rank))`` over the lists a chunk appears in."""

    def __init__(self, k: int = 60, top_k: int | None = None, weights: dict[str, float] | None = None) -> None:
        super().__init__(top_k, weights)
        if k < 0:
            raise ConfigError(f"fuser 'rrf': k must be >= 0, got {k}")
        self.k = k

    def fuse(self, lists: Sequence[CandidateList]) -> list[Hit]:
        """Fused by rank."""
        merged = merge_hits(lists)
        scores: dict[str, float] = dict.fromkeys(merged, 0.0)
        for candidates in lists:
            weight = self.weight(candidates)
            for rank, hit in enumerate(candidates.hits, 1):
                scores[hit.chunk.id] += weight / (self.k + rank)
        return _ranked(self.label, scores, merged)


def _min_max(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    if high == low:
        return [1.0 for _ in values]
    return [(v - low) / (high - low) for v in values]


def _three_sigma(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [1.0 for _ in values]
    mean = statistics.fmean(values)
    spread = statistics.pstdev(values)
    if spread == 0:
        return [1.0 for _ in values]
    low, high = mean - 3 * spread, mean + 3 * spread
    return [min(1.0, max(0.0, (v - low) / (high - low))) for v in values]


class _ScoreFusion(FuserStage):
    """Fusion by normalised scores: ``sum(weight * normalise(list scores))``."""

    @staticmethod
    def normalise(values: list[float]) -> list[float]:
        """Scores of one list mapped onto [0, 1]."""
        raise NotImplementedError

    def fuse(self, lists: Sequence[CandidateList]) -> list[Hit]:
        """Fused by normalised score."""
        merged = merge_hits(lists)
        scores: dict[str, float] = dict.fromkeys(merged, 0.0)
        for candidates in lists:
            if not candidates.hits:
                continue
            weight = self.weight(candidates)
            normalised = self.normalise([hit.score for hit in candidates.hits])
            for hit, value in zip(candidates.hits, normalised, strict=True):
                scores[hit.chunk.id] += weight * value
        return _ranked(self.label, scores, merged)


@register("fuser", "weighted")
class WeightedScoreFusion(_ScoreFusion):
    """Min-max normalised scores, summed with weights."""

    normalise = staticmethod(_min_max)


@register("fuser", "dbsf")
class DistributionBasedScoreFusion(_ScoreFusion):
    """Scores normalised by their list's mean ± 3 standard deviations, summed with weights."""

    normalise = staticmethod(_three_sigma)
