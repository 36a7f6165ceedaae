"""The answer cache: a re-run of a suite replays a RAG pipeline's answers instead of generating them again.

Off by default (suite option ``answer_cache: true``, or ``ragkit eval run
--answer-cache``). With the judge cache, it makes re-running an LLM-judged
suite cost retrieval and scoring only: the generator is not even loaded when
every answer is found.

An answer is replayed only when everything that decides it is unchanged. The
key is a hash of:

- the pipeline's whole configuration (prompt template, context budget,
  answer and citation settings, the generator's config);
- the generator's fingerprint (:func:`~ragkit.generation.fingerprint.generator_fingerprint`:
  class, model name, output options and, for the local model, the model
  file's size and modification time);
- the question;
- the retrieved hits, in order: each chunk's id, a hash of its text, its
  source, span, page and section (what the prompt's source blocks show);
- ragkit's version, since the code that assembles the prompt is part of the
  answer too.

The lookup happens after retrieval and before the prompt is assembled, so a
retrieval change is a miss. Only greedy pipelines (``answer.temperature``
0) are cached: a sampled answer is meant to differ between runs. Failed
questions are never cached, so a re-run asks them again. A sample answered
from the cache is marked ``answer_cached`` in the report and keeps the
latency, timings and token usage of the run that produced it.

What the key cannot see: a server generator (``openai``, ``tgi``) whose
model changed behind the same name and URL, and changes to ragkit's
generation code within one version. Turn the cache off, or delete
``<store>/answer-cache``, when those change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.kvstore import JsonStore
from ragkit.rag.answer import Citation
from ragkit.schema import Hit

if TYPE_CHECKING:
    from ragkit.evaluation.sample import EvalSample

CACHE_FILE = "answers.sqlite3"
"""The cache's file inside ``<store>/answer-cache/``."""
_SCHEMA_VERSION = 1


def _hit_identity(hit: Hit) -> list[Any]:
    chunk = hit.chunk
    meta = chunk.metadata
    text_hash = hashlib.sha256(chunk.text.encode("utf-8", "surrogatepass")).hexdigest()
    return [chunk.id, text_hash, chunk.source, chunk.start, chunk.end, meta.get("page"), meta.get("section")]


def answer_key(pipeline: dict[str, Any], fingerprint: str, question: str, hits: list[Hit]) -> str:
    """The cache key of one question's answer (a SHA-256 hex digest); see the module docstring."""
    from ragkit import __version__

    payload = json.dumps(
        {
            "v": _SCHEMA_VERSION,
            "ragkit": __version__,
            "pipeline": pipeline,
            "generator": fingerprint,
            "question": question,
            "hits": [_hit_identity(hit) for hit in hits],
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(slots=True)
class CachedAnswer:
    """What a pipeline produced for one question, as the cache keeps it."""

    text: str
    used: list[int]
    """Positions in the retrieved hits of the hits the prompt used (block ``n`` is ``used[n-1]``)."""
    citations: list[dict[str, Any]]
    usage: dict[str, int]
    timings: dict[str, float]
    latency: float

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return asdict(self)

    @classmethod
    def of(cls, sample: EvalSample, retrieved: Sequence[Any], prompt_hits: Sequence[Any]) -> CachedAnswer | None:
        """The entry for ``sample``, answered from ``prompt_hits`` taken out of ``retrieved``.

        ``None`` when a prompt hit is not one of the retrieved objects themselves (its position cannot be kept).
        """
        positions = {id(hit): i for i, hit in enumerate(retrieved)}
        used = [positions.get(id(hit)) for hit in prompt_hits]
        if None in used:
            return None
        return cls(
            sample.answer or "",
            [i for i in used if i is not None],
            sample.citations,
            sample.usage,
            sample.timings,
            sample.latency,
        )

    @classmethod
    def from_dict(cls, data: Any, hit_count: int) -> CachedAnswer | None:
        """The entry, or ``None`` when it is not a well-formed answer for ``hit_count`` hits."""
        try:
            used = [int(i) for i in data["used"]]
            entry = cls(
                text=str(data["text"]),
                used=used,
                citations=[Citation(**c).to_dict() for c in data["citations"]],  # older entries: today's shape
                usage={str(k): int(v) for k, v in data["usage"].items()},
                timings={str(k): float(v) for k, v in data["timings"].items()},
                latency=float(data["latency"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return entry if all(0 <= i < hit_count for i in used) else None


class AnswerCache:
    """Answers by key in ``<folder>/answers.sqlite3``; counts the hits and misses of this run."""

    def __init__(self, folder: Path | str) -> None:
        self._store = JsonStore(Path(folder) / CACHE_FILE, "answer cache", _SCHEMA_VERSION)
        self.path = self._store.path
        self.found = 0
        self.missed = 0

    @property
    def enabled(self) -> bool:
        """Whether the cache file is open."""
        return self._store.enabled

    def get(self, key: str, hit_count: int) -> CachedAnswer | None:
        """The answer stored under ``key`` for a question with ``hit_count`` retrieved hits, or ``None``."""
        entry = CachedAnswer.from_dict(self._store.get(key), hit_count)
        if entry is None:
            self.missed += 1
        else:
            self.found += 1
        return entry

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Remember ``answer`` under ``key`` (a failure to write is logged, never raised)."""
        self._store.put(key, answer.to_dict())

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        """Close the file."""
        self._store.close()
