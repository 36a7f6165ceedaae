"""Reading a suite's questions file (JSON lines) and drawing a deterministic sample.

The suite format (``format: ragkit``), one JSON object per line::

    {"id": "q1", "question": "Who won Super Bowl 50?",
     "answers": ["Denver Broncos"],
     "gold_spans": [{"source": "super-bowl-50.md", "start": 17, "end": 792}],
     "gold_documents": ["super-bowl-50.md"]}

``id`` is optional (default ``line-N``), ``answers`` lists reference answer
strings, ``gold_spans`` and ``gold_documents`` are optional; a ``source``
is a path relative to the documents folder (or absolute). ``metadata`` may
hold anything else.

``format: squad-dev`` reads the ``squad-dev`` data set's own rows (``answers``
as ``{text, start}`` objects, ``document`` relative to the questions file,
``paragraph_start``/``paragraph_end``) and turns them into the same thing:
the distinct answer texts as references and the gold paragraph as the gold span.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ragkit.config import format_validation_error
from ragkit.errors import ConfigError
from ragkit.evaluation.sample import EvalQuestion, GoldSpan


class _SpanRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    page: int | None = Field(default=None, ge=1)
    """The page the span is on, for paged documents (PDF offsets are relative to the page)."""

    @model_validator(mode="after")
    def _ordered(self) -> _SpanRow:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class _QuestionRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None
    question: str = Field(min_length=1)
    answers: list[str] = Field(default_factory=list)
    gold_spans: list[_SpanRow] = Field(default_factory=list)
    gold_documents: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class _Sources:
    """Resolves gold sources against a folder, checking each file exists (once)."""

    def __init__(self, documents_dir: Path) -> None:
        self.documents_dir = documents_dir
        self._seen: dict[str, str | None] = {}

    def resolve(self, source: str, relative_to: Path | None = None) -> str | None:
        """The file's source id as the ingest of the documents folder gives it (relative to it), else ``None``."""
        key = f"{relative_to}|{source}"
        if key not in self._seen:
            path = (relative_to or self.documents_dir) / Path(source).expanduser()
            self._seen[key] = source_id(path, self.documents_dir) if path.is_file() else None
        return self._seen[key]


def source_id(path: str | Path, documents_dir: str | Path) -> str:
    """The source id the ingest of ``documents_dir`` gives the file ``path``: its POSIX path relative to the folder.

    ``path`` may be absolute or relative to the current directory, symlinked or not (``Super_Bowl_50.md`` for
    ``<documents_dir>/Super_Bowl_50.md``). A file outside the folder keeps its absolute resolved path, which no
    chunk of that folder's ingest carries. Other frameworks' retrieved file paths become comparable with gold
    sources and ragkit's chunk sources this way.
    """
    path, documents_dir = Path(path), Path(documents_dir)
    folder = Path(os.path.abspath(documents_dir))
    for candidate, root in ((Path(os.path.abspath(path)), folder), (path.resolve(), folder.resolve())):
        if candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix()
    return path.resolve().as_posix()


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read questions file {path}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path} line {number}: not valid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def _ragkit_question(path: Path, number: int, row: dict[str, Any], sources: _Sources) -> EvalQuestion:
    try:
        parsed = _QuestionRow.model_validate(row)
    except ValidationError as exc:
        raise ConfigError(f"{path} line {number}: {format_validation_error(exc)}") from None
    spans = []
    for i, span in enumerate(parsed.gold_spans):
        source = sources.resolve(span.source)
        if source is None:
            raise ConfigError(
                f"{path} line {number}: gold_spans.{i}.source: no file {span.source!r} "
                f"in the documents folder {sources.documents_dir}"
            )
        spans.append(GoldSpan(source, span.start, span.end, span.page))
    documents = []
    for i, name in enumerate(parsed.gold_documents):
        source = sources.resolve(name)
        if source is None:
            raise ConfigError(
                f"{path} line {number}: gold_documents.{i}: no file {name!r} in the documents folder "
                f"{sources.documents_dir}"
            )
        documents.append(source)
    return EvalQuestion(
        id=str(parsed.id) if parsed.id is not None else f"line-{number}",
        question=parsed.question,
        answers=list(parsed.answers),
        gold_spans=spans,
        gold_documents=documents,
        metadata=dict(parsed.metadata),
    )


def _squad_question(path: Path, number: int, row: dict[str, Any], sources: _Sources) -> EvalQuestion:
    try:
        question = str(row["question"])
        texts = [str(a["text"]) if isinstance(a, dict) else str(a) for a in row.get("answers", [])]
        document = str(row["document"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path} line {number}: not a squad-dev row (missing {exc})") from None
    source = sources.resolve(document, relative_to=path.parent)
    if source is None:
        raise ConfigError(f"{path} line {number}: document {document!r} not found next to the questions file")
    spans = []
    if isinstance(row.get("paragraph_start"), int) and isinstance(row.get("paragraph_end"), int):
        spans.append(GoldSpan(source, row["paragraph_start"], row["paragraph_end"]))
    return EvalQuestion(
        id=str(row.get("id") or f"line-{number}"),
        question=question,
        answers=list(dict.fromkeys(t for t in texts if t.strip())),
        gold_spans=spans,
        gold_documents=[] if spans else [source],
        metadata={"document": document, "paragraph": row.get("paragraph")},
    )


def load_questions(path: Path, documents_dir: Path, format: str = "ragkit") -> list[EvalQuestion]:
    """Every question of ``path``; errors name the file, line and field."""
    reader = {"ragkit": _ragkit_question, "squad-dev": _squad_question}.get(format)
    if reader is None:
        raise ConfigError(f"unknown questions format {format!r}; known: ragkit, squad-dev")
    sources = _Sources(documents_dir)
    questions = [reader(path, number, row, sources) for number, row in _lines(path)]
    if not questions:
        raise ConfigError(f"questions file {path} holds no questions")
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise ConfigError(f"{path}: question id {question.id!r} appears twice")
        seen.add(question.id)
    return questions


def draw_sample(questions: list[EvalQuestion], size: int | None, seed: int) -> list[EvalQuestion]:
    """``size`` questions drawn at random with ``seed``, kept in file order (all when ``size`` is ``None``)."""
    if size is None or size >= len(questions):
        return list(questions)
    chosen = sorted(random.Random(seed).sample(range(len(questions)), size))
    return [questions[i] for i in chosen]
