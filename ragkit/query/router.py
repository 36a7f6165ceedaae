"""The router: send a question to the documents (a RAG pipeline), to a database (text-to-SQL), or to both.

::

    router = Router(vector=PipelineAnswerer(pipeline, docs), sql=engine, mode="model", generator=generator)
    answer = router.ask("How many orders did ACME place, and what does our policy say about refunds?")
    answer.route            # "both"
    answer.citations        # document citations [1]..[n], then SQL-row citations [n+1]..
    answer.trace            # the decision (by whom, why, the raw model output), then each side

The route is decided by the model (``mode: model``: a one-word
classification prompt, read leniently) or by keyword rules (``mode:
rules``); either way the decision and its reason are the first trace
entry. When the model's answer names no route, or the call fails, the
``default`` route is taken (``both`` unless configured) and the trace says
so. ``both`` asks each side and merges the two answers into one: the
document answer first, then the database answer, whose citation markers
and citations are renumbered after the document ones so no number clashes.

Both sides are :class:`~ragkit.query.answering.Answerer` objects (``ask(question)``
returning ``text`` and ``citations``), so the core never imports the SQL
connector: :meth:`Router.from_config` builds the engine through the registry
(``{"type": "sqlalchemy", "database": URL}`` under role ``sql_engine``).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragkit.errors import ConfigError, InputError, RagkitError, UpstreamTimeoutError
from ragkit.generation.base import GenerationOptions, Message, generate_within
from ragkit.query.answering import Answerer, AnswerLike, PipelineAnswerer
from ragkit.query.llm import check_template, truncate
from ragkit.query.state import ModelCall

if TYPE_CHECKING:
    from ragkit.generation.base import Generator

Route = Literal["vector", "sql", "both"]
ROUTES: tuple[Route, ...] = ("vector", "sql", "both")
DEFAULT_DESCRIPTIONS = {
    "vector": "documents: text such as manuals, policies, articles and notes",
    "sql": "database: tables of records, for counts, sums, averages, lists and lookups of values",
}
DEFAULT_PROMPT = (
    "Decide where the answer to the question is found.\n"
    "- {vector}\n- {sql}\n"
    "Answer with one word: documents, database, or both.\n\n"
    "Question: {question}\nAnswer:"
)
DEFAULT_RULES: dict[str, list[str]] = {
    "sql": ["how many", "count", "number of", "total", "sum", "average", "maximum", "minimum", "top", "list all"],
}
# what a model may write for each route, checked in this order (``both`` first: "both documents and database")
_WORDS: tuple[tuple[Route, re.Pattern[str]], ...] = (
    ("both", re.compile(r"\b(both|all of them)\b", re.I)),
    ("sql", re.compile(r"\b(database|sql|tables?|db)\b", re.I)),
    ("vector", re.compile(r"\b(documents?|docs|vector|text|passages?)\b", re.I)),
)
_MARKER = re.compile(r"\[(\d+)\]")


def parse_route(text: str) -> Route | None:
    """The route a model's answer names (``documents``, ``database``, ``both`` and near synonyms), else ``None``.

    ``both`` wins when written; otherwise the route whose word comes first.
    A label like ``Answer:`` or a fence around it does not matter.
    """
    if not text or not text.strip():
        return None
    if _WORDS[0][1].search(text):
        return "both"
    found = [(m.start(), route) for route, pattern in _WORDS[1:] if (m := pattern.search(text))]
    return min(found)[1] if found else None


@dataclass(slots=True)
class RouteDecision:
    """Where a question went and why: ``by`` is ``model``, ``rules`` or ``default`` (a fallback)."""

    route: Route
    by: Literal["model", "rules", "default", "config"]
    reason: str
    raw: str | None = None
    """The model's answer, verbatim (``mode: model``)."""
    calls: list[ModelCall] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the trace's ``route`` entry)."""
        data: dict[str, Any] = {"step": "route", "route": self.route, "by": self.by, "reason": self.reason}
        if self.raw is not None:
            data["raw"] = self.raw
        if self.calls:
            data["calls"] = [c.to_dict() for c in self.calls]
        return data


@dataclass(slots=True)
class RoutedAnswer:
    """The router's answer: text, citations of both kinds (numbered without clashes), the route and the trace.

    ``answers`` holds each side's own answer object (``vector``: a
    :class:`~ragkit.rag.answer.Answer`; ``sql``: the SQL engine's answer,
    with its ``sql`` and ``rows``), as they came back, before renumbering.
    """

    question: str
    text: str
    route: Route
    citations: list[Any] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    trace: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "question": self.question,
            "text": self.text,
            "route": self.route,
            "citations": [_citation_dict(c) for c in self.citations],
            "answers": {side: _answer_dict(a) for side, a in self.answers.items()},
            "trace": list(self.trace),
        }


def _citation_dict(citation: Any) -> Any:
    to_dict = getattr(citation, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if dataclasses.is_dataclass(citation) and not isinstance(citation, type):
        return dataclasses.asdict(citation)
    return citation


def _answer_dict(answer: Any) -> Any:
    to_dict = getattr(answer, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return {"text": getattr(answer, "text", ""), "citations": [_citation_dict(c) for c in answer.citations]}


def renumber(citation: Any, number: int) -> Any:
    """A copy of ``citation`` with ``number`` (a dataclass, a mapping, or an object with a ``number``)."""
    if dataclasses.is_dataclass(citation) and not isinstance(citation, type):
        return dataclasses.replace(citation, number=number)  # type: ignore[type-var]
    if isinstance(citation, Mapping):
        return {**citation, "number": number}
    import copy

    clone = copy.copy(citation)
    clone.number = number
    return clone


def _number_of(citation: Any) -> int | None:
    value = citation.get("number") if isinstance(citation, Mapping) else getattr(citation, "number", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def merge_answers(first: AnswerLike, second: AnswerLike) -> tuple[str, list[Any], dict[int, int]]:
    """One text and one citation list from two answers: ``second``'s numbers move past ``first``'s.

    Returns the merged text (``first``'s, a blank line, ``second``'s with its
    ``[n]`` markers rewritten), the citations (``first``'s, then ``second``'s
    renumbered; ``positions`` recomputed in the merged text where citations
    have them), and the mapping old number -> new number of ``second``.
    """
    head = (first.text or "").strip()
    offset = max((n for c in first.citations if (n := _number_of(c)) is not None), default=0)
    mapping: dict[int, int] = {}
    for citation in second.citations:
        number = _number_of(citation)
        if number is not None and number not in mapping:
            mapping[number] = number + offset
    tail = _MARKER.sub(lambda m: f"[{mapping.get(int(m.group(1)), int(m.group(1)))}]", (second.text or "").strip())
    text = f"{head}\n\n{tail}" if head and tail else head or tail
    merged = list(first.citations) + [
        renumber(c, mapping[n]) if (n := _number_of(c)) is not None else c for c in second.citations
    ]
    out = []
    for citation in merged:
        number = _number_of(citation)
        if number is not None and hasattr(citation, "positions") and not isinstance(citation, Mapping):
            positions = [m.start() for m in re.finditer(rf"\[{number}\]", text)]
            if dataclasses.is_dataclass(citation) and not isinstance(citation, type):
                citation = dataclasses.replace(citation, positions=positions)  # type: ignore[type-var]
        out.append(citation)
    return text, out, mapping


class Router:
    """Routes a question to the documents, the database, or both; see the module docstring.

    Args:
        vector: What answers from documents (e.g. a :class:`PipelineAnswerer`); ``None``: no documents.
        sql: What answers from a database (a text-to-SQL engine); ``None``: no database.
        mode: ``model`` (the generator classifies), ``rules`` (keywords), or one route
            (``vector``, ``sql``, ``both``) to always take.
        generator: The classifying model, a :class:`~ragkit.generation.base.Generator` or a generator config
            (``mode: model`` only).
        rules: Keywords per route for ``mode: rules``, e.g. ``{sql: [how many, average]}``; matched case-blind
            as whole words; a question matching the keywords of both sides goes to both.
            Default: :data:`DEFAULT_RULES`.
        default: The route when the rules match nothing or the model's answer names no route.
        descriptions: What each side holds, shown to the model (``vector``, ``sql``).
        prompt: The classification prompt, with ``{question}``, ``{vector}`` and ``{sql}``.
        max_tokens: The classification answer's token cap.
        timeout: Seconds the classification call may take; ``None``: no limit.
        parallel: With ``both``, ask the two sides at the same time.

    """

    def __init__(
        self,
        vector: Answerer | None = None,
        sql: Answerer | None = None,
        mode: str = "model",
        generator: Generator | Mapping[str, Any] | None = None,
        rules: Mapping[str, Sequence[str]] | None = None,
        default: Route = "both",
        descriptions: Mapping[str, str] | None = None,
        prompt: str | None = None,
        max_tokens: int = 8,
        timeout: float | None = 60.0,
        parallel: bool = True,
    ) -> None:
        where = "router"
        if vector is None and sql is None:
            raise ConfigError(f"{where}: needs 'vector' (documents), 'sql' (a database), or both")
        for side, answerer in (("vector", vector), ("sql", sql)):
            if answerer is not None and not callable(getattr(answerer, "ask", None)):
                raise ConfigError(f"{where}: {side!r} must have an ask(question) method, got {type(answerer).__name__}")
        if mode not in ("model", "rules", *ROUTES):
            raise ConfigError(f"{where}: mode must be model, rules, vector, sql or both, got {mode!r}")
        if default not in ROUTES:
            raise ConfigError(f"{where}: default must be vector, sql or both, got {default!r}")
        if mode == "model" and generator is None:
            raise ConfigError(f"{where}: mode 'model' needs a generator (or use mode: rules)")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"{where}: max_tokens must be a positive integer, got {max_tokens!r}")
        self.rules = {route: [str(k).lower() for k in words] for route, words in (rules or DEFAULT_RULES).items()}
        unknown = sorted(set(self.rules) - {"vector", "sql", "both"})
        if unknown:
            raise ConfigError(f"{where}: rules name unknown route(s) {', '.join(unknown)}; routes: vector, sql, both")
        self.vector = vector
        self.sql = sql
        self.mode = mode
        self.default: Route = default
        self.descriptions = {**DEFAULT_DESCRIPTIONS, **dict(descriptions or {})}
        self.prompt = check_template(prompt or DEFAULT_PROMPT, where, ("question", "vector", "sql"))
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.parallel = parallel
        self._generator_config = dict(generator) if isinstance(generator, Mapping) else None
        self._generator: Generator | None = None if isinstance(generator, Mapping) else generator

    # -- building from config -----------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Mapping[str, Any], store_dir: str | Path | None = None) -> Router:
        """Build from a ``router:`` config (a recipe's section), opening collections in ``store_dir``.

        ``vector: {collection, pipeline?, top_k?, filters?}``, ``sql: {type:
        sqlalchemy, database: URL, ...}`` (built with ``registry.build("sql_engine",
        ...)``), and the options of :class:`Router` (``generator`` as a
        config; default: the vector pipeline's).
        """
        from ragkit import registry
        from ragkit.collection import Collection
        from ragkit.rag.pipeline import RagPipeline

        options = dict(config)
        vector_config = options.pop("vector", None)
        sql_config = options.pop("sql", None)
        vector: Answerer | None = None
        generator = options.pop("generator", None)
        if vector_config is not None:
            if not isinstance(vector_config, Mapping) or not isinstance(vector_config.get("collection"), str):
                raise ConfigError(f"router: 'vector' needs a 'collection' name, got {vector_config!r}")
            pipeline = RagPipeline.load(str(vector_config.get("pipeline", "basic")))
            collection = Collection.open(vector_config["collection"], store_dir)
            vector = PipelineAnswerer(pipeline, collection, vector_config.get("top_k"), vector_config.get("filters"))
            if generator is None:
                generator = dict(pipeline.config.generator)
        sql: Answerer | None = None
        if sql_config is not None:
            if not isinstance(sql_config, Mapping) or "type" not in sql_config:
                raise ConfigError(f"router: 'sql' needs a 'type' (e.g. sqlalchemy) and its options, got {sql_config!r}")
            sql = registry.build("sql_engine", sql_config)
        if generator is None and options.get("mode", "model") == "model":
            generator = {"type": "transformers"}
        return cls(vector, sql, generator=generator, **options)

    @property
    def generator(self) -> Generator:
        """The classifying model (built from its config on first use, shared per process)."""
        if self._generator is None:
            from ragkit.generation.shared import shared_generator

            self._generator = shared_generator(self._generator_config or {"type": "transformers"})
        return self._generator

    # -- deciding -------------------------------------------------------------------------------

    def decide(self, question: str) -> RouteDecision:
        """Where ``question`` goes, and why (never raises for a bad model answer: the default route is taken)."""
        if self.mode in ROUTES:
            decision = RouteDecision(self.mode, "config", f"mode {self.mode!r} always takes this route")  # type: ignore[arg-type]
        elif self.mode == "rules":
            decision = self._by_rules(question)
        else:
            decision = self._by_model(question)
        return self._available(decision)

    def _by_rules(self, question: str) -> RouteDecision:
        lowered = question.lower()
        matched: dict[str, list[str]] = {}
        for route, words in self.rules.items():
            hits = [w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", lowered)]
            if hits:
                matched[route] = hits
        shown = "; ".join(f"{route}: {', '.join(repr(w) for w in words)}" for route, words in matched.items())
        if "both" in matched or {"vector", "sql"} <= set(matched):
            return RouteDecision("both", "rules", f"keywords matched ({shown})")
        if len(matched) == 1:
            [route] = matched
            return RouteDecision(route, "rules", f"keywords matched ({shown})")  # type: ignore[arg-type]
        return RouteDecision(
            self.default, "default", f"no rule keyword in the question; the default route {self.default!r}"
        )

    def _by_model(self, question: str) -> RouteDecision:
        text = self.prompt.format(question=question, vector=self.descriptions["vector"], sql=self.descriptions["sql"])
        generator = self.generator
        model = str(getattr(generator, "model_name", "") or "generator")
        options = GenerationOptions(max_tokens=self.max_tokens, temperature=0.0)
        started = time.perf_counter()
        try:
            generation = generate_within(generator, [Message("user", text)], options, self.timeout)
        except (ConfigError, InputError):
            raise
        except Exception as exc:
            error = str(exc) if isinstance(exc, UpstreamTimeoutError) else f"{type(exc).__name__}: {exc}"
            call = ModelCall(model, seconds=time.perf_counter() - started, error=error)
            reason = f"the classification call failed ({error}); the default route {self.default!r}"
            return RouteDecision(self.default, "default", reason, None, [call])
        usage = generation.usage
        call = ModelCall(model, usage.prompt_tokens, usage.completion_tokens, time.perf_counter() - started)
        raw = generation.text or ""
        route = parse_route(raw)
        if route is None:
            reason = f"the model's answer {truncate(raw, 120)!r} names no route; the default route {self.default!r}"
            return RouteDecision(self.default, "default", reason, raw, [call])
        return RouteDecision(route, "model", f"the model answered {truncate(raw, 60)!r}", raw, [call])

    def _available(self, decision: RouteDecision) -> RouteDecision:
        """The decision, narrowed to the sides this router has (and the trace says so)."""
        missing = [side for side in ("vector", "sql") if getattr(self, side) is None]
        if not missing:
            return decision
        [absent] = missing
        have: Route = "sql" if absent == "vector" else "vector"
        if decision.route in (absent, "both"):
            decision.reason += f"; this router has no {absent!r} side, so {have!r}"
            decision.route = have
        return decision

    # -- answering ------------------------------------------------------------------------------

    def ask(self, question: str) -> RoutedAnswer:
        """Decide, ask the chosen side(s), and merge; the trace holds the decision and each side's work."""
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty")
        question = question.strip()
        decision = self.decide(question)
        trace: list[dict[str, Any]] = [decision.to_dict()]
        sides: list[str] = ["vector", "sql"] if decision.route == "both" else [decision.route]
        results = self._run_sides(question, sides)
        answers: dict[str, Any] = {}
        for side in sides:
            answer, entry = results[side]
            trace.append(entry)
            if answer is not None:
                answers[side] = answer
        if not answers:
            errors = "; ".join(f"{side}: {results[side][1].get('error')}" for side in sides)
            raise RagkitError(f"router: every route failed ({errors})")
        if len(answers) == 1:
            [(side, answer)] = answers.items()
            return RoutedAnswer(question, answer.text, decision.route, list(answer.citations), answers, trace)
        text, citations, mapping = merge_answers(answers["vector"], answers["sql"])
        trace.append({"step": "merge", "sql_citations_renumbered": {str(k): v for k, v in mapping.items()}})
        return RoutedAnswer(question, text, "both", citations, answers, trace)

    def _run_sides(self, question: str, sides: list[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
        if len(sides) > 1 and self.parallel:
            with ThreadPoolExecutor(max_workers=len(sides), thread_name_prefix="ragkit-router") as pool:
                futures = {side: pool.submit(self._run_side, side, question, len(sides) > 1) for side in sides}
                return {side: future.result() for side, future in futures.items()}
        return {side: self._run_side(side, question, len(sides) > 1) for side in sides}

    def _run_side(self, side: str, question: str, tolerate: bool) -> tuple[Any, dict[str, Any]]:
        """One side's answer and trace entry; a failure is kept in the entry when the other side may still answer."""
        answerer: Any = getattr(self, side)
        started = time.perf_counter()
        entry: dict[str, Any] = {"step": side}
        try:
            answer = answerer.ask(question)
        except Exception as exc:
            entry["seconds"] = round(time.perf_counter() - started, 6)
            entry["error"] = f"{type(exc).__name__}: {exc}"
            if not tolerate:
                raise
            return None, entry
        entry["seconds"] = round(time.perf_counter() - started, 6)
        failed = getattr(answer, "error", None)  # an answer that reports its own failure (the SQL engine's)
        if isinstance(failed, str) and failed:
            entry["error"] = failed
            if tolerate:
                return None, entry
        entry["citations"] = len(answer.citations)
        sql = getattr(answer, "sql", None)
        if isinstance(sql, str):
            entry["sql"] = sql
        rows = getattr(answer, "rows", None)
        if isinstance(rows, Sequence) and not isinstance(rows, str):
            entry["rows"] = len(rows)
        return answer, entry


def load_router(name_or_path: str, store_dir: str | Path | None = None) -> Router:
    """The router saved in a recipe's ``router:`` section (``pipelines/<name>.yaml`` or a YAML path)."""
    from ragkit.recipes import find_recipe
    from ragkit.yaml_io import read_mapping

    path = find_recipe(name_or_path)
    data = read_mapping(path, "router recipe")
    section = data.get("router")
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path} has no 'router:' section")
    try:
        return Router.from_config(section, store_dir)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
