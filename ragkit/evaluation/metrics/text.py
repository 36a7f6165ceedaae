"""SQuAD's answer scoring: normalisation, exact match and token F1 (as in the official v1.1 script).

Normalisation lower-cases, removes punctuation, removes the articles
``a``/``an``/``the`` and collapses whitespace. Exact match is 1 when the
normalised answer equals a normalised reference; F1 is the harmonic mean of
token precision and recall against a reference (tokens counted with
multiplicity). Both take the best over the references.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
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


def max_over_references(prediction: str, references: Sequence[str], f1: bool) -> tuple[float, str]:
    """The best score over ``references`` and the reference that gave it."""
    if not references:
        raise ValueError("no reference answers")
    scorer = token_f1 if f1 else exact_match
    return max(((scorer(prediction, ref), ref) for ref in references), key=lambda pair: pair[0])


@lru_cache(maxsize=16384)
def collapse(text: str) -> str:
    """Lower case with runs of whitespace made one space (answer-hit's normalised variant).

    Cached: the same chunks come back for many questions.
    """
    return _SPACES.sub(" ", text.lower()).strip()
