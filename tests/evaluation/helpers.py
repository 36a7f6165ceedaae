"""Small builders shared by the evaluation tests (no models, no collection)."""

from __future__ import annotations

from ragkit.evaluation.sample import EvalQuestion, EvalSample, GoldSpan
from ragkit.schema import Chunk, Hit


def hit(source: str, start: int, end: int, text: str = "", score: float = 1.0) -> Hit:
    chunk = Chunk(
        id=f"{source}:{start}-{end}:{text}",
        document_id=source,
        source=source,
        text=text or "x" * (end - start),
        start=start,
        end=end,
    )
    return Hit(chunk, score)


def sample(
    hits: list[Hit],
    answers: list[str] | None = None,
    spans: list[tuple[str, int, int]] | None = None,
    documents: list[str] | None = None,
    answer: str | None = None,
    id: str = "q1",
    pipeline: str = "p",
) -> EvalSample:
    question = EvalQuestion(
        id=id,
        question=f"question {id}?",
        answers=answers or [],
        gold_spans=[GoldSpan(*s) for s in spans or []],
        gold_documents=documents or [],
    )
    return EvalSample(question, pipeline, hits=hits, answer=answer)
