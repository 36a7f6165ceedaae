"""The records a metric reads and writes: :class:`RagasSample` in, :class:`MetricScore` out.

These mirror the shapes of ragkit's evaluation core (``ragkit.evaluation``):
a sample is any dict-like record (or object with attributes) holding
``question``, ``answers`` (reference answers), ``response`` (the pipeline's
answer, absent for retrieval-only runs), ``contexts`` (retrieved chunk
texts), ``context_ids`` and ``reference_contexts`` (gold passages). A
:class:`MetricScore` has the same fields as the core's ``MetricResult``
(``value``, ``error``, ``details``), so either can stand for the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ProgressCallback = Callable[..., None]
"""Called after each sample is scored (or failed): ``progress(1)``, the evaluation core's convention
(samples just finished), or ``progress(done, total, errors)`` for a callable taking three arguments."""

_FIELDS = (
    "id",
    "question",
    "answers",
    "response",
    "contexts",
    "context_ids",
    "reference_contexts",
    "reference_context_ids",
)


@dataclass(slots=True)
class RagasSample:
    """One evaluation record, as the ragas metrics read it.

    ``extra`` keeps any other fields of the record; a ragas metric whose
    ``ascore`` takes an input not mapped below (``rubrics``,
    ``multi_responses`` ...) finds it there by name.
    """

    question: str = ""
    answers: list[str] = field(default_factory=list)
    """Reference answers (the first is ragas' ``reference``)."""
    response: str | None = None
    """The pipeline's answer; ``None`` for a retrieval-only run."""
    contexts: list[str] = field(default_factory=list)
    """Texts of the retrieved chunks, best first (ragas' ``retrieved_contexts``)."""
    context_ids: list[str] = field(default_factory=list)
    """Ids of the retrieved chunks (ragas' ``retrieved_context_ids``)."""
    reference_contexts: list[str] | None = None
    """Gold passages, when the dataset has them."""
    reference_context_ids: list[str] | None = None
    """Ids of the gold chunks, when known."""
    id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, record: Any) -> RagasSample:
        """A :class:`RagasSample` from a mapping, an evaluation sample object, or a sample.

        Accepted: this class; a mapping with the field names above (a
        ``response`` missing but an ``answer`` string present is taken as
        the response); and objects such as ragkit's ``EvalSample``, whose
        ``question`` is a question object (``.question``, ``.answers``,
        ``.id``, ``.metadata``), whose ``answer`` is the response and whose
        ``hits`` give the context ids. ``reference_contexts`` may also come
        from the question's metadata.
        """
        if isinstance(record, RagasSample):
            return record
        data = dict(record) if isinstance(record, Mapping) else _object_fields(record)
        if data.get("response") is None and isinstance(data.get("answer"), str):
            data["response"] = data["answer"]
        extra = {key: value for key, value in data.items() if key not in _FIELDS and key != "answer"}
        nested = extra.pop("extra", None)
        if isinstance(nested, Mapping):
            extra.update({k: v for k, v in nested.items() if k not in extra})
        metadata = extra.get("metadata")
        reference_contexts = data.get("reference_contexts")
        if reference_contexts is None and isinstance(metadata, Mapping):
            reference_contexts = metadata.get("reference_contexts")
        sample_id = data.get("id")
        response = data.get("response")
        return cls(
            question=str(data.get("question") or ""),
            answers=_strings(data.get("answers")),
            response=response if isinstance(response, str) else None,
            contexts=_strings(data.get("contexts")),
            context_ids=[str(x) for x in (data.get("context_ids") or [])],
            reference_contexts=_optional_strings(reference_contexts),
            reference_context_ids=(
                None if data.get("reference_context_ids") is None else [str(x) for x in data["reference_context_ids"]]
            ),
            id=None if sample_id is None else str(sample_id),
            extra=extra,
        )


def _object_fields(record: Any) -> dict[str, Any]:
    """The sample fields of an object (ragkit's ``EvalSample`` or anything with like-named attributes)."""
    data: dict[str, Any] = {}
    question = getattr(record, "question", None)
    if question is not None and not isinstance(question, str) and hasattr(question, "question"):
        data["question"] = question.question  # an EvalQuestion
        data["answers"] = list(getattr(question, "answers", None) or [])
        data["id"] = getattr(question, "id", None)
        metadata = getattr(question, "metadata", None)
        if isinstance(metadata, Mapping):
            data["metadata"] = dict(metadata)
    elif isinstance(question, str):
        data["question"] = question
    for name in (
        "id",
        "answers",
        "response",
        "answer",
        "contexts",
        "context_ids",
        "reference_contexts",
        "reference_context_ids",
    ):
        if name not in data and hasattr(record, name):
            data[name] = getattr(record, name)
    if "answers" not in data and hasattr(record, "references"):
        data["answers"] = list(record.references)
    hits = getattr(record, "hits", None)
    if hits:
        chunks = [getattr(hit, "chunk", hit) for hit in hits]
        if not data.get("contexts"):
            data["contexts"] = [getattr(c, "text", "") for c in chunks]
        if not data.get("context_ids"):
            data["context_ids"] = [getattr(c, "id", "") for c in chunks]
    extra = getattr(record, "extra", None)
    if isinstance(extra, Mapping):
        data["extra"] = dict(extra)
    return data


@dataclass(slots=True)
class MetricScore:
    """The score of one sample under one metric, or why there is none.

    Exactly one of ``value`` and ``error`` is set: a sample the judge could
    not score (failed, timed out, unparsable after the retries, or a NaN
    from ragas) has ``value=None`` and the reason in ``error``; it is never
    a silent NaN. ``details`` holds what helps to read the score (the
    judge's call counts, ragas' reason, which reference matched ...).
    """

    value: float | None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.value is not None:
            value = float(self.value)
            if not math.isfinite(value):
                self.value = None
                self.error = self.error or f"the metric gave a non-finite value ({value!r})"
            else:
                self.value = value
        elif self.error is None:
            self.error = "no score"

    @property
    def ok(self) -> bool:
        """Whether the sample was scored."""
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"value": self.value, "error": self.error, "details": dict(self.details)}


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) or hasattr(value, "__iter__"):
        return [str(item) for item in value if item is not None]
    return [str(value)]


def _optional_strings(value: Any) -> list[str] | None:
    return None if value is None else _strings(value)
