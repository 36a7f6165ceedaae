"""SQuAD's answer scoring: normalisation, exact match and token F1 (as in the official v1.1 script).

Normalisation lower-cases, removes punctuation, removes the articles
``a``/``an``/``the`` and collapses whitespace. Exact match is 1 when the
normalised answer equals a normalised reference; F1 is the harmonic mean of
token precision and recall against a reference (tokens counted with
multiplicity). Both take the best over the references. ``answer_contains`` (not in the
SQuAD script) is 1 when a normalised reference appears, as whole words,
inside the normalised answer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_SPACES = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def answer_contains(prediction: str, reference: str) -> float:
    """1.0 when the normalised reference appears in the normalised answer as whole words, else 0.0.

    Credits a sentence that states the answer ("... during the 1730s and
    1740s") where exact match gives 0 and F1 a fraction.
    """
    expected = normalize_answer(reference)
    if not expected:
        return 0.0
    return float(f" {expected} " in f" {normalize_answer(prediction)} ")


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall of the normalised strings."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    common = Counter(predicted) & Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def max_over_references(
    prediction: str, references: Sequence[str], f1: bool = False, scorer: Callable[[str, str], float] | None = None
) -> tuple[float, str]:
    """The best score over ``references`` and the reference that gave it (``scorer``, else F1 or exact match)."""
    if not references:
        raise ValueError("no reference answers")
    if scorer is None:
        scorer = token_f1 if f1 else exact_match
    return max(((scorer(prediction, ref), ref) for ref in references), key=lambda pair: pair[0])


@lru_cache(maxsize=16384)
def collapse(text: str) -> str:
    """Lower case with runs of whitespace made one space (answer-hit's normalised variant).

    Cached: the same chunks come back for many questions.
    """
    return _SPACES.sub(" ", text.lower()).strip()
