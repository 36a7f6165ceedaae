"""Ranking measures over a :class:`~ragkit.evaluation.sample.Relevance`, in plain Python and through ranx.

Definitions (``k`` counts ranked hits; a *gold item* is one gold span or one
gold document; a hit *covers* a gold item when it overlaps the span or lies
in the document):

- ``recall@k``: gold items covered by the top ``k`` hits / gold items;
- ``precision@k``: relevant hits among the top ``k`` / ``k``;
- ``mrr``: 1 / rank of the first relevant hit (0 when none is);
- ``ndcg@k``: binary gain 1 at each rank that covers a gold item not covered
  higher up, discounted by ``log2(rank + 1)``, divided by the best possible
  (``min(gold items, k)`` gains at the top ranks).

Several chunks overlapping one gold paragraph count once for recall and
nDCG (the paragraph was found), but each counts for precision (each is a
relevant chunk).

:func:`ranx_scores` computes the same numbers with `ranx
<https://github.com/AmenRa/ranx>`_ (Numba-compiled, checked against
trec_eval) by writing each question as a qrels/run pair: the "documents" are
gold items (recall, nDCG, MRR) or hits (precision). The tests check that both
give identical values. The plain versions are the default: the relevance of
each hit is already known, so each metric is a few additions per question,
while ranx spends about half a second per metric and 10,000 questions turning
dicts into Numba lists, plus seconds to import — more than the retrieval
itself costs in a keyword-search suite. ranx is optional (``pip install ranx``).
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Sequence

from ragkit.errors import MissingDependencyError
from ragkit.evaluation.sample import Relevance


def recall_at_k(relevance: Relevance, k: int) -> float:
    """Share of gold items covered by the top ``k`` hits."""
    if relevance.gold_count == 0:
        raise ValueError("no gold spans or documents")
    found = sum(1 for item in relevance.first_cover[:k] if item is not None)
    return found / relevance.gold_count


def precision_at_k(relevance: Relevance, k: int) -> float:
    """Share of the top ``k`` ranks that hold a relevant hit (missing ranks count as not relevant)."""
    return sum(relevance.relevant[:k]) / k


def reciprocal_rank(relevance: Relevance) -> float:
    """1 / rank of the first relevant hit, 0 when none is relevant."""
    for rank, is_relevant in enumerate(relevance.relevant, 1):
        if is_relevant:
            return 1.0 / rank
    return 0.0


def first_relevant_rank(relevance: Relevance) -> int | None:
    """The 1-based rank of the first relevant hit, or ``None``."""
    return next((rank for rank, r in enumerate(relevance.relevant, 1) if r), None)


def ndcg_at_k(relevance: Relevance, k: int) -> float:
    """Normalised discounted cumulative gain at ``k`` with binary, de-duplicated gains."""
    if relevance.gold_count == 0:
        raise ValueError("no gold spans or documents")
    dcg = sum(1.0 / math.log2(rank + 1) for rank, item in enumerate(relevance.first_cover[:k], 1) if item is not None)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(relevance.gold_count, k) + 1))
    return dcg / ideal


# -- ranx ---------------------------------------------------------------------------------


def ranx_available() -> bool:
    """Whether the ``ranx`` package can be imported."""
    return importlib.util.find_spec("ranx") is not None


def _item_view(relevance: Relevance) -> tuple[dict[str, int], dict[str, float]]:
    """Qrels and run of one question whose documents are the gold items (recall, nDCG, MRR)."""
    qrels = {f"g{i}": 1 for i in range(relevance.gold_count)}
    size = len(relevance.first_cover)
    run = {
        (f"g{item}" if item is not None else f"h{rank}"): float(size - rank)
        for rank, item in enumerate(relevance.first_cover)
    }
    return qrels, run or {"none": 0.0}


def _hit_view(relevance: Relevance) -> tuple[dict[str, int], dict[str, float]]:
    """Qrels and run of one question whose documents are the hits (precision)."""
    size = len(relevance.relevant)
    qrels = {f"h{rank}": 1 for rank, r in enumerate(relevance.relevant) if r}
    qrels["unretrieved"] = 1  # never in the run: keeps the qrels non-empty, changes no precision
    run = {f"h{rank}": float(size - rank) for rank in range(size)}
    return qrels, run or {"none": 0.0}


def ranx_scores(metric: str, relevances: Sequence[Relevance]) -> list[float]:
    """Per-question values of a ranx metric (``recall@5``, ``precision@5``, ``ndcg@5``, ``mrr``).

    Run scores are ``size - rank``, so ranx keeps ragkit's order even where
    retrieval scores tie.
    """
    if not relevances:
        return []
    try:
        from ranx import Qrels, Run, evaluate
    except ImportError:
        raise MissingDependencyError("ranking metrics with backend 'ranx'", "ranx") from None
    view = _hit_view if metric.startswith("precision") else _item_view
    qrels_dict: dict[str, dict[str, int]] = {}
    run_dict: dict[str, dict[str, float]] = {}
    ids = [f"q{i:09d}" for i in range(len(relevances))]
    for qid, relevance in zip(ids, relevances, strict=True):
        qrels_dict[qid], run_dict[qid] = view(relevance)
    with warnings.catch_warnings():  # numba's type-safety notes about ranx's own casts
        warnings.simplefilter("ignore")
        qrels = Qrels(qrels_dict)
        run = Run(run_dict)
        evaluate(qrels, run, metric, return_mean=False)
    per_query = run.scores[metric]
    return [float(per_query[qid]) for qid in ids]
