"""LLM query transforms: new queries written by a model before retrieval.

- ``multi-query``: ``n`` other phrasings of the question, each retrieved
  with; followed by ``rrf`` this is RAG-fusion.
- ``hyde``: a hypothetical answer passage (Gao et al. 2022), retrieved with
  as a document (``Query(kind="passage")``), so a dense retriever compares
  answer to answer.
- ``step-back``: one more general question (Zheng et al. 2023) that finds
  the background a specific question needs.
- ``decompose``: at most ``n`` simpler sub-questions of a compound question.

Each asks the stage's generator (option ``generator``, else the pipeline's)
once per question, greedily, with a ``prompt`` template that can be replaced
(placeholders ``{question}`` and, where the stage has ``n``, ``{n}``;
checked when the stage is built). Answers are cached in the collection's
store home (see :mod:`ragkit.query.llm`). An answer with nothing usable in it
(empty, garbage, only the question again), a failed call or a timeout adds
no query: the question as asked is kept and the trace says what came back.
Rewrites are deduplicated (ignoring case, spacing and end punctuation), and
one equal to the question is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ragkit.errors import ConfigError
from ragkit.generation.base import Message
from ragkit.query.llm import DEFAULT_TIMEOUT, LLMCaller, check_template, clean_line, parse_json, parse_lines, truncate
from ragkit.query.stages import PipelineContext, QueryTransformStage
from ragkit.query.state import Query, QueryKind, QueryState
from ragkit.registry import register

_WORD = re.compile(r"[^\W\d_]{2,}")


def normalise(text: str) -> str:
    """``text`` for comparing rewrites: case-folded, spaces collapsed, end punctuation dropped."""
    return " ".join(text.casefold().split()).strip(" ?.!")


def usable(text: str, max_chars: int = 400) -> bool:
    """Whether a model-written query looks like language: two words or more, not overlong."""
    return len(_WORD.findall(text)) >= 2 and len(text) <= max_chars


class LLMQueryTransform(QueryTransformStage):
    """Base of the LLM query transforms: prompt, call, parse, deduplicate, trace.

    Subclasses set the default prompt and implement :meth:`parse`.
    """

    default_prompt: ClassVar[str] = ""
    fields: ClassVar[tuple[str, ...]] = ("question",)
    query_kind: ClassVar[QueryKind] = "question"

    def setup(
        self,
        generator: Mapping[str, Any] | None,
        n: int,
        max_tokens: int,
        timeout: float | None,
        prompt: str | None,
        cache: bool,
    ) -> None:
        """Check and keep the options every LLM transform shares."""
        owner = f"query transform {self.component_type!r}"
        for option, value in (("n", n), ("max_tokens", max_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{owner}: option {option!r} must be an integer of at least 1, got {value!r}")
        self.n = n
        self.max_tokens = max_tokens
        self.prompt = check_template(self.default_prompt if prompt is None else prompt, owner, self.fields)
        self.caller = LLMCaller(owner, generator, timeout, cache)

    def bind(self, context: PipelineContext) -> None:
        """Use the pipeline's generator unless this stage has its own."""
        self.caller.bind(context)

    def messages(self, question: str) -> list[Message]:
        """The prompt for ``question``."""
        values = {"question": question, "n": self.n}
        return [Message("user", self.prompt.format(**{f: values[f] for f in self.fields}))]

    def parse(self, question: str, text: str) -> tuple[list[str], list[str]]:
        """The new query texts in the model's answer, and notes on what was dropped."""
        raise NotImplementedError

    def transform_many(self, states: Sequence[QueryState]) -> list[list[Query]]:
        """One model call per question; a question whose answer has nothing usable gets no new query."""
        out: list[list[Query]] = []
        for state in states:
            entry = state.current(self.label)
            reply = self.caller.call(state, self.label, self.messages(state.question), self.max_tokens)
            if reply.text is None:
                entry.error = f"model call failed: {reply.error} (the question as asked was kept)"
                out.append([])
                continue
            texts, notes = self.parse(state.question, reply.text)
            entry.notes.extend(notes)
            if not texts:
                entry.notes.append(
                    f"no usable query in the model's answer {truncate(reply.text)!r}; the question as asked was kept"
                )
            out.append([Query(text, self.query_kind, self.label) for text in texts])
        return out

    def distinct(self, question: str, items: Sequence[str], limit: int) -> tuple[list[str], list[str]]:
        """Up to ``limit`` usable items, none equal to the question or to each other, with notes on the rest."""
        seen = {normalise(question)}
        kept: list[str] = []
        garbage = repeats = extra = 0
        for item in items:
            if not usable(item):
                garbage += 1
                continue
            key = normalise(item)
            if key in seen:
                repeats += 1
                continue
            if len(kept) == limit:
                extra += 1
                continue
            seen.add(key)
            kept.append(item)
        notes = []
        if repeats:
            notes.append(f"dropped {repeats} line(s) equal to the question or to an earlier one")
        if garbage:
            notes.append(f"dropped {garbage} line(s) that do not read as a query")
        if extra:
            notes.append(f"dropped {extra} line(s) beyond n={limit}")
        return kept, notes


@register("query_transform", "multi-query")
class MultiQueryTransform(LLMQueryTransform):
    """``n`` other phrasings of the question (with ``rrf``: RAG-fusion).

    Args:
        n: Phrasings to ask for (more that come back are dropped).
        generator: The generator config (default: the pipeline's).
        max_tokens: The answer's token cap.
        timeout: Seconds one call may take; ``None``: no limit.
        prompt: The prompt template, with ``{question}`` and optionally ``{n}``.
        cache: Cache answers in the collection's store home.
        keep_original: Also retrieve with the question as asked.
        adaptive: Only rewrite questions whose first retrieval looks weak (``{min_score: 0.5}``).

    """

    default_prompt = (
        "Write {n} different versions of the question below, to search a document collection with. "
        "Use other words than the question does. Write one question per line, numbered, and nothing else.\n\n"
        "Question: {question}"
    )
    fields = ("question", "n")

    def __init__(
        self,
        n: int = 3,
        generator: dict[str, Any] | None = None,
        max_tokens: int = 160,
        timeout: float | None = DEFAULT_TIMEOUT,
        prompt: str | None = None,
        cache: bool = True,
        keep_original: bool = True,
        adaptive: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(keep_original, adaptive)
        self.setup(generator, n, max_tokens, timeout, prompt, cache)

    def parse(self, question: str, text: str) -> tuple[list[str], list[str]]:
        """The phrasings, one per list item."""
        return self.distinct(question, parse_lines(text), self.n)


@register("query_transform", "decompose")
class DecomposeTransform(MultiQueryTransform):
    """At most ``n`` sub-questions of a compound question, each retrieved with.

    Takes the options of ``multi-query``. A simple question comes back
    unchanged from a good model, which adds no query.
    """

    default_prompt = (
        "Split the question below into at most {n} simpler sub-questions that can each be answered on its own. "
        "Write one sub-question per line, numbered, and nothing else. "
        "If the question is already simple, write it unchanged.\n\n"
        "Question: {question}"
    )


@register("query_transform", "step-back")
class StepBackTransform(LLMQueryTransform):
    """One more general question behind the question, for the background it needs.

    Args:
        generator: The generator config (default: the pipeline's).
        max_tokens: The answer's token cap.
        timeout: Seconds one call may take; ``None``: no limit.
        prompt: The prompt template, with ``{question}``.
        cache: Cache answers in the collection's store home.
        keep_original: Also retrieve with the question as asked.
        adaptive: Only rewrite questions whose first retrieval looks weak.

    """

    default_prompt = (
        "Write one more general question behind the question below: a question about the background "
        "knowledge needed to answer it. Write only that question.\n\n"
        "Question: {question}"
    )

    def __init__(
        self,
        generator: dict[str, Any] | None = None,
        max_tokens: int = 64,
        timeout: float | None = DEFAULT_TIMEOUT,
        prompt: str | None = None,
        cache: bool = True,
        keep_original: bool = True,
        adaptive: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(keep_original, adaptive)
        self.setup(generator, 1, max_tokens, timeout, prompt, cache)

    def parse(self, question: str, text: str) -> tuple[list[str], list[str]]:
        """The first usable line that differs from the question (a line ending in ``?`` preferred)."""
        items = parse_lines(text)
        asked = [item for item in items if item.endswith("?")]
        return self.distinct(question, asked + [i for i in items if i not in asked], 1)[0], []


_PASSAGE_LABEL = re.compile(r"^\s*(?:\*\*)?(?:hypothetical\s+)?(?:passage|answer|document)\s*(?:\*\*)?\s*:\s*", re.I)


@register("query_transform", "hyde")
class HydeTransform(LLMQueryTransform):
    """A hypothetical answer passage, retrieved with as a document (HyDE).

    The passage may be wrong in its facts; what matters is that it reads
    like the chunks that hold the real answer.

    Args:
        generator: The generator config (default: the pipeline's).
        max_tokens: The passage's token cap.
        timeout: Seconds one call may take; ``None``: no limit.
        prompt: The prompt template, with ``{question}``.
        cache: Cache answers in the collection's store home.
        keep_original: Also retrieve with the question as asked.
        adaptive: Only write a passage for questions whose first retrieval looks weak.

    """

    default_prompt = (
        "Write a short passage of two to four sentences that answers the question below, "
        "as an encyclopedia would. Write only the passage.\n\n"
        "Question: {question}"
    )
    query_kind = "passage"

    def __init__(
        self,
        generator: dict[str, Any] | None = None,
        max_tokens: int = 160,
        timeout: float | None = DEFAULT_TIMEOUT,
        prompt: str | None = None,
        cache: bool = True,
        keep_original: bool = True,
        adaptive: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(keep_original, adaptive)
        self.setup(generator, 1, max_tokens, timeout, prompt, cache)

    def parse(self, question: str, text: str) -> tuple[list[str], list[str]]:
        """The passage: the answer without fences or a ``Passage:`` label; at least three words."""
        value = parse_json(text) if text.lstrip().startswith(("```", "{", "[")) else None
        if isinstance(value, dict):
            text = next((v for v in value.values() if isinstance(v, str)), text)
        elif isinstance(value, str):
            text = value
        lines = [line for line in text.replace("\r", "").split("\n") if not line.strip().startswith("```")]
        passage = _PASSAGE_LABEL.sub("", "\n".join(lines)).strip()
        passage = clean_line(passage) if "\n" not in passage else passage
        if len(_WORD.findall(passage)) < 3 or normalise(passage) == normalise(question):
            return [], []
        return [passage], []
