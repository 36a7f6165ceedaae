"""Seeded, disjoint splits of a suite's questions: a bootstrap pool, a train split and a held-out split."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ragkit.errors import ConfigError
from ragkit.evaluation.sample import EvalQuestion


@dataclass(frozen=True, slots=True)
class Splits:
    """Three disjoint lists of questions drawn with one seed.

    ``pool``: questions the base pipeline answers to find demonstrations (never scored);
    ``train``: the questions every candidate prompt is scored on; ``heldout``: the questions the
    winner and the base prompt are compared on at the end (no candidate is chosen by them).
    """

    pool: list[EvalQuestion]
    train: list[EvalQuestion]
    heldout: list[EvalQuestion]
    seed: int

    def to_dict(self) -> dict[str, object]:
        """The question ids of each split, JSON-ready."""
        return {
            "seed": self.seed,
            "pool": [q.id for q in self.pool],
            "train": [q.id for q in self.train],
            "heldout": [q.id for q in self.heldout],
        }


def split_questions(questions: Sequence[EvalQuestion], train: int, heldout: int, pool: int, seed: int) -> Splits:
    """Shuffle the questions that have reference answers with ``seed`` and cut three disjoint splits.

    The held-out split is cut first, so the same seed and ``--heldout`` give the same held-out questions
    whatever ``--train`` and the pool size are (runs with different budgets stay comparable).
    Raises :class:`ConfigError` when there are too few answerable questions.
    """
    usable = [q for q in questions if q.answers]
    needed = train + heldout + pool
    if train < 1 or heldout < 1:
        raise ConfigError(f"--train and --heldout must be at least 1 (got {train} and {heldout})")
    if needed > len(usable):
        raise ConfigError(
            f"the suite has {len(usable)} questions with reference answers; --train {train}, --heldout {heldout} "
            f"and a demonstration pool of {pool} need {needed}"
        )
    order = list(range(len(usable)))
    random.Random(seed).shuffle(order)
    held = [usable[i] for i in order[:heldout]]
    trained = [usable[i] for i in order[heldout : heldout + train]]
    pooled = [usable[i] for i in order[heldout + train : needed]]
    return Splits(pooled, trained, held, seed)
