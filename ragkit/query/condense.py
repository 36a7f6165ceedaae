"""The ``condense`` query transform: a follow-up question rewritten as a standalone one.

In a conversation, "when was it built?" finds nothing useful: "it" lives in
the history. When a request carries history, this stage asks a generator to
rewrite the follow-up as a question that stands on its own ("When was the
Eiffel Tower built?"), then searches with that instead of the follow-up::

    stages:
      - type: condense          # first, before the retrievers
        max_tokens: 64
        timeout: 30
      - type: dense

The standalone question replaces the original query and becomes the
request's question (so later stages and the answer prompt see it); the
user's own words stay in ``request.options["asked"]``. A request without
history is left alone (the trace says so). When the model's output cannot
be used (empty, garbled, an answer instead of a question, too long) or the
model fails or times out, the question is kept as asked and the trace
notes why: condensing never fails a question.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ragkit.conversation import fit_history, format_history, generate_within, model_call
from ragkit.errors import ConfigError
from ragkit.generation.base import GenerationOptions, Message
from ragkit.query.stages import PipelineContext, QueryTransformStage
from ragkit.query.state import Query, QueryState
from ragkit.registry import register

if TYPE_CHECKING:
    from ragkit.generation.base import Generator

DEFAULT_PROMPT = (
    "Rewrite the last question so it makes sense on its own, replacing 'it', 'he', 'she', 'they' with the name "
    "they refer to. Do not answer it. Reply with one question.\n\n"
    "Conversation:\n"
    "User: Who wrote Hamlet?\n"
    "Assistant: William Shakespeare wrote Hamlet.\n"
    "Question: when did he die?\n"
    "Rewritten: When did William Shakespeare die?\n\n"
    "Conversation:\n{history}\n"
    "Question: {question}\n"
    "Rewritten:"
)
"""The default instruction, with one worked example (small models copy the history without it)."""

QUESTION_WORDS = frozenset(
    {
        "what",
        "when",
        "where",
        "who",
        "whom",
        "whose",
        "which",
        "why",
        "how",
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "has",
        "have",
        "had",
        "am",
        "list",
        "name",
        "describe",
        "explain",
        "tell",
        "give",
        "compare",
        "find",
        "show",
        "summarise",
        "summarize",
        "define",
        "identify",
    }
)
"""First words of a question or request; text ending without ``?`` must start with one to count as a question."""
_PREFIX = re.compile(
    r"^\s*(?:(?:here is|here's)\s+(?:the|a)\s+(?:rewritten\s+|standalone\s+)*question\s*:?|"
    r"(?:the\s+)?(?:standalone|rewritten|reformulated|new)\s+(?:follow-up\s+)?question\s*(?:is)?\s*:|"
    r"(?:follow-up\s+)?question\s*:|(?:rewritten|answer|output|a)\s*:)\s*",
    re.I,
)
_QUOTES = "\"'`“”‘’«»*"


def check_prompt(prompt: Any, where: str) -> str:
    """``prompt`` when it is a template naming exactly ``{history}`` and ``{question}``, else a ConfigError."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{where}: prompt must be a non-empty template with {{history}} and {{question}}")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as exc:
        raise ConfigError(
            f"{where}: prompt is not a valid template ({exc}); write literal braces as {{{{ }}}}"
        ) from None
    missing = {"history", "question"} - fields
    if missing:
        raise ConfigError(f"{where}: prompt must contain {', '.join('{' + m + '}' for m in sorted(missing))}")
    unknown = fields - {"history", "question"}
    if unknown:
        raise ConfigError(
            f"{where}: prompt names unknown field(s) {', '.join('{' + u + '}' for u in sorted(unknown))}; "
            "only {history} and {question} are filled in (write literal braces as {{ }})"
        )
    return prompt


def clean_question(output: str, asked: str) -> tuple[str | None, str]:
    """The standalone question in a model's output, or ``None`` and why it cannot be used.

    Takes the first non-empty line, strips "Standalone question:"-style
    prefixes, quotes and markdown emphasis. Refuses empty or letterless
    text, text far longer than a question, and statements (an answer
    instead of a question): text that neither ends with ``?`` nor starts
    with a question or request word.
    """
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return None, "the model's output was empty"
    text = lines[0]
    for _ in range(3):
        stripped = _PREFIX.sub("", text).strip().strip(_QUOTES).strip()
        if stripped == text:
            break
        text = stripped
    if not text and len(lines) > 1:  # "Standalone question:" on a line of its own
        return clean_question("\n".join(lines[1:]), asked)
    if not re.search(r"[^\W\d_]{2,}", text):
        return None, f"the model's output is not a question: {output.strip()[:80]!r}"
    limit = max(300, 3 * len(asked) + 200)
    if len(text) > limit:
        return None, f"the model's output is {len(text)} characters long, too long for a question (limit {limit})"
    first = re.findall(r"[^\W\d_]+", text.lower())[:1]
    if not text.endswith("?") and not (first and first[0] in QUESTION_WORDS):
        return None, f"the model answered instead of rewriting the question: {text[:80]!r}"
    return text, ""


@register("query_transform", "condense")
class CondenseStage(QueryTransformStage):
    """Rewrites a follow-up question as a standalone question using the conversation history.

    Args:
        generator: The generator config (default: the pipeline's generator).
        max_tokens: Longest rewrite, in tokens.
        timeout: Seconds to wait for the model (loading a local model does not
            count); on a timeout the question is kept as asked.
        prompt: The instruction template, with ``{history}`` and ``{question}``.
        history_tokens: The most history tokens put in the prompt; older turns
            are left out (with a note in the prompt).

    """

    def __init__(
        self,
        generator: dict[str, Any] | None = None,
        max_tokens: int = 64,
        timeout: float | None = 60.0,
        prompt: str = DEFAULT_PROMPT,
        history_tokens: int = 1024,
    ) -> None:
        super().__init__(keep_original=False)
        where = "query transform 'condense'"
        if generator is not None:
            if not isinstance(generator, Mapping) or not isinstance(generator.get("type"), str):
                raise ConfigError(f"{where}: generator must be a mapping with a 'type', got {generator!r}")
            from ragkit import registry
            from ragkit.errors import NotFoundError

            try:
                registry.get("generator", generator["type"])
            except NotFoundError as exc:
                raise ConfigError(f"{where}: generator: {exc}") from None
        for option, value in (("max_tokens", max_tokens), ("history_tokens", history_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: {option} must be an integer of at least 1, got {value!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ConfigError(f"{where}: timeout must be a positive number of seconds (or null), got {timeout!r}")
        self.generator_config = dict(generator) if generator is not None else None
        self.max_tokens = max_tokens
        self.timeout = None if timeout is None else float(timeout)
        self.prompt = check_prompt(prompt, where)
        self.history_tokens = history_tokens
        self._generator: Generator | None = None

    def bind(self, context: PipelineContext) -> None:
        """Take the pipeline's generator config unless this stage was given its own."""
        if self.generator_config is None:
            self.generator_config = dict(context.generator)

    @property
    def generator(self) -> Generator:
        """The generator (built on first use, shared per process with every user of the same config)."""
        if self._generator is None:
            from ragkit.generation.shared import shared_generator

            self._generator = shared_generator(self.generator_config or PipelineContext().generator)
        return self._generator

    def render(self, history: Sequence[Message], question: str) -> str:
        """The prompt for one follow-up: the history (cut to ``history_tokens``) and the question."""
        fitted = fit_history(history, self.history_tokens, self.generator.count_tokens, summary_tokens=16)
        return self.prompt.format(history=format_history(fitted.messages), question=question)

    def transform_many(self, states: Sequence[QueryState]) -> list[list[Query]]:
        """The standalone query of each state with history (empty for the others); see :meth:`run`."""
        return [[q for q in s.queries if q.origin == self.component_type] for s in states]

    def run(self, states: list[QueryState]) -> None:
        """Condense every follow-up of the batch (one model call per distinct history and question)."""
        pending: dict[str, list[QueryState]] = {}
        for state in states:
            entry = state.current(self.label)
            if not state.request.history:
                entry.skipped = True
                entry.notes.append("skipped: no conversation history; the question is used as asked")
                continue
            try:
                prompt = self.render(state.request.history, state.request.question)
            except Exception as exc:  # a generator that cannot even count tokens
                entry.notes.append(f"the prompt could not be built ({type(exc).__name__}: {exc}); used as asked")
                continue
            pending.setdefault(prompt, []).append(state)
        options = GenerationOptions(max_tokens=self.max_tokens, temperature=0.0)
        for prompt, group in pending.items():
            generator = self.generator
            asked = group[0].request.question
            try:
                generation, seconds = generate_within(generator, [Message("user", prompt)], options, self.timeout)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                for state in group:
                    entry = state.current(self.label)
                    entry.calls.append(model_call(generator, None, 0.0, error))
                    entry.notes.append(f"the model failed ({error}); the question is used as asked")
                continue
            standalone, reason = clean_question(generation.text, asked)
            for position, state in enumerate(group):
                entry = state.current(self.label)
                call = model_call(generator, generation, seconds if position == 0 else 0.0)
                call.cached = position > 0
                entry.calls.append(call)
                if standalone is None:
                    entry.notes.append(f"{reason}; the question is used as asked")
                    continue
                self.apply(state, standalone)
                if standalone == asked:
                    entry.notes.append("the question already stands on its own")
                else:
                    entry.notes.append(f"condensed the follow-up {asked!r} into {standalone!r}")

    @staticmethod
    def apply(state: QueryState, standalone: str) -> None:
        """Make ``standalone`` the request's question and put it in place of the original query."""
        state.request.options.setdefault("asked", state.request.question)
        state.request.question = standalone
        condensed = Query(standalone, "question", "condense")
        queries = [condensed if q.origin == "original" else q for q in state.queries]
        if condensed not in queries:
            queries.insert(0, condensed)
        state.queries = queries
