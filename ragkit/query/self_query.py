"""Self-query: a model turns the question into search text plus a metadata filter.

"Papers by Smith after 2020 about retrieval" becomes the search text
``retrieval`` and the filter ``{"$and": [{"author": "Smith"}, {"year":
{"$gt": 2020}}]}``. The model sees the collection's filterable fields with
their kinds and a few example values (:func:`collection_fields`: what the
store keeps about its metadata), and the operators of ragkit's filter
dict language (:mod:`ragkit.filters`). It answers with JSON::

    {"query": "retrieval", "filters": {"author": "Smith", "year": {"$gt": 2020}}}

through a tool call when the generator supports tools (the OpenAI
connector does), else as text that is read leniently (a ```json fence,
a preamble). The answer is then checked (:func:`check_model_filter`):
it must parse in the filter language, name only fields the collection has
(and the stage exposes), and compare each field with values of the kind
it holds. A valid filter is ANDed with the caller's own filters and the
rewritten text replaces the question as the search query; anything
invalid falls back to the question as asked, unfiltered by the model, and
the stage's trace notes say why and quote the raw output.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ragkit.errors import ConfigError, FilterError, InputError, UpstreamTimeoutError
from ragkit.filters import And, Filter, FilterLike, check_fields, check_kinds, parse_filter
from ragkit.generation.base import GenerationOptions, Message
from ragkit.query.llm import DEFAULT_TIMEOUT, LLMCaller, Reply, cache_path, cache_store, check_template, parse_json
from ragkit.query.stages import PipelineContext, QueryTransformStage
from ragkit.query.state import ModelCall, Query, QueryState
from ragkit.registry import register

if TYPE_CHECKING:
    from ragkit.collection import Collection

StructuredMode = Literal["auto", "tool", "json"]
HIDDEN_FIELDS = (
    "document_id",
    "chunk_index",
    "chunk_header",
    "encoding",
    "item",
    "line",
    "record_id",
    "row",
    "uri",
)
"""Fields ragkit sets for its own bookkeeping; not shown to the model unless named in ``fields``."""
OPERATORS: dict[str, str] = {
    "$eq": 'equals (or write the value directly: {"field": value})',
    "$ne": "not equal",
    "$gt": "greater than",
    "$gte": "greater than or equal",
    "$lt": "less than",
    "$lte": "less than or equal",
    "$in": "one of a list of values",
    "$nin": "none of a list of values",
    "$prefix": "a string starting with the value",
}
"""The operators the model may use (ragkit's filter dict language), with what they mean."""
TOOL_NAME = "search_documents"
SAMPLE_CHUNKS = 2000
"""Chunks read for field kinds and examples from a store that keeps no summary of its metadata."""


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One filterable metadata field: its name, the kinds of value it holds, and a few of its values."""

    name: str
    kinds: tuple[str, ...]
    examples: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the model is shown)."""
        kind = self.kinds[0] if len(self.kinds) == 1 else " or ".join(self.kinds)
        return {"name": self.name, "type": kind, "examples": list(self.examples)}


def collection_fields(
    collection: Collection, examples: int = 5, fields: Sequence[str] | None = None
) -> dict[str, FieldInfo]:
    """The collection's filterable fields, from what its vector store keeps about its metadata.

    A store with a ``metadata_summary(examples)`` method (the FAISS store:
    its in-memory filter columns) answers exactly; another (Milvus) names
    its fields through ``metadata_fields()`` and the kinds and examples are
    read from its first :data:`SAMPLE_CHUNKS` chunks. ``fields`` limits the
    result to those names (default: every field but :data:`HIDDEN_FIELDS`,
    ragkit's bookkeeping: ``document_id``, ``chunk_index``, ``line``, ``row`` ...).
    Fields holding only lists or objects are left out: no filter compares them.
    """
    store: Any = collection.store
    summary: dict[str, tuple[set[str], list[Any]]]
    if callable(getattr(store, "metadata_summary", None)):
        summary = store.metadata_summary(examples)
    else:
        summary = _sampled_summary(store, examples)
    wanted = set(fields) if fields is not None else None
    out: dict[str, FieldInfo] = {}
    for name in sorted(summary):
        if (wanted is not None and name not in wanted) or (wanted is None and name in HIDDEN_FIELDS):
            continue
        kinds, values = summary[name]
        usable = tuple(sorted(k for k in kinds if k != "other"))
        if not usable:
            continue
        shown = tuple(v for v in values if not isinstance(v, (list, dict)) and v is not None)[:examples]
        out[name] = FieldInfo(name, usable, shown)
    return out


def _sampled_summary(store: Any, examples: int) -> dict[str, tuple[set[str], list[Any]]]:
    from ragkit.filters import value_kind

    known = set(store.metadata_fields())
    counts: dict[str, dict[str, int]] = {}
    kinds: dict[str, set[str]] = {}
    values: dict[str, dict[str, Any]] = {}
    seen = 0
    for batch in store.iter_chunks(500):
        for chunk in batch:
            row = {**chunk.metadata, "source": chunk.source, "document_id": chunk.document_id}
            for name, value in row.items():
                if name not in known:
                    continue
                kinds.setdefault(name, set()).add(value_kind(value))
                key = json.dumps(value, sort_keys=True, default=str)
                counts.setdefault(name, {})[key] = counts.get(name, {}).get(key, 0) + 1
                values.setdefault(name, {})[key] = value
        seen += len(batch)
        if seen >= SAMPLE_CHUNKS:
            break
    out: dict[str, tuple[set[str], list[Any]]] = {}
    for name, tally in counts.items():
        common = sorted(tally, key=lambda k: -tally[k])[:examples]
        out[name] = (kinds[name], [values[name][k] for k in common])
    return out


def field_kinds_of(fields: Mapping[str, FieldInfo]) -> dict[str, set[str]]:
    """``{name: kinds}``, the shape :func:`ragkit.filters.check_kinds` reads."""
    return {name: set(info.kinds) for name, info in fields.items()}


def schema_text(fields: Mapping[str, FieldInfo]) -> str:
    """The fields and operators as the prompt shows them (one JSON line per field)."""
    lines = [json.dumps(info.to_dict(), ensure_ascii=False, default=str) for info in fields.values()]
    ops = "\n".join(f"{op}: {meaning}" for op, meaning in OPERATORS.items())
    return (
        "Fields:\n"
        + ("\n".join(lines) or "(none)")
        + "\n\nOperators:\n"
        + ops
        + '\nCombine conditions with {"$and": [...]}, {"$or": [...]} or {"$not": {...}}.'
    )


def check_model_filter(value: Any, fields: Mapping[str, FieldInfo], where: str = "the collection") -> Filter | None:
    """The filter a model wrote, parsed and checked against ``fields``; a :class:`FilterError` says what is wrong.

    ``None``, ``{}`` and ``""`` mean no filter. A field not in ``fields``,
    an unknown operator, or a value of the wrong kind (``"2020"`` for a
    field of numbers) is refused.
    """
    if value is None or value == {} or value == "":
        return None
    if not isinstance(value, Mapping):
        raise FilterError(f"'filters' must be a JSON object in ragkit's filter language, got {_short(value)}")
    flt = parse_filter(value)
    check_fields(flt, set(fields), where)
    check_kinds(flt, field_kinds_of(fields), where)
    return flt


def read_answer(raw: str) -> tuple[str | None, Any]:
    """``(query, filters)`` from the model's JSON answer; a :class:`FilterError` when it is not such JSON."""
    data = parse_json(raw) if raw and raw.strip() else None
    if not isinstance(data, Mapping):
        raise FilterError("the model's answer is not a JSON object with 'query' and 'filters'")
    query = data.get("query")
    if query is not None and not isinstance(query, str):
        raise FilterError(f"'query' must be a string, got {_short(query)}")
    filters = data.get("filters", data.get("filter"))
    return query, filters


def combine(user: FilterLike, model: Filter | None) -> FilterLike:
    """The caller's filter AND the model's (the caller's alone when the model wrote none)."""
    if model is None:
        return user
    parsed = parse_filter(user)
    return model if parsed is None else And((parsed, model))


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _StructuredCaller(LLMCaller):
    """An :class:`LLMCaller` that may offer the model one tool and returns its arguments as the text."""

    def call_tool(
        self, state: QueryState, label: str, messages: Sequence[Message], max_tokens: int, tool: dict[str, Any] | None
    ) -> Reply:
        """Ask once; with ``tool`` the call is forced to it and its JSON arguments come back as the text."""
        generator = self.generator
        model = str(getattr(generator, "model_name", "") or self.config)
        options = GenerationOptions(max_tokens=max_tokens, temperature=0.0)
        if tool is not None:
            options.tools = [tool]
            options.tool_choice = {"type": "function", "function": {"name": TOOL_NAME}}
        entry = state.current(label)
        path = cache_path(state) if self.cache else None
        store = cache_store(path) if path is not None else None
        key = ""
        if store is not None:
            payload = {"key": self._key(messages, options), "tool": tool}
            key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
            found = store.get(key)
            if isinstance(found, dict) and isinstance(found.get("text"), str):
                entry.calls.append(ModelCall(model, cached=True))
                return Reply(found["text"], cached=True)
        self._load(generator)
        started = time.perf_counter()
        try:
            generation = self._generate(generator, messages, options)
        except InputError:
            raise
        except Exception as exc:
            error = str(exc) if isinstance(exc, UpstreamTimeoutError) else f"{type(exc).__name__}: {exc}"
            entry.calls.append(ModelCall(model, seconds=time.perf_counter() - started, error=error))
            return Reply(None, error)
        usage = generation.usage
        seconds = time.perf_counter() - started
        entry.calls.append(ModelCall(model, usage.prompt_tokens, usage.completion_tokens, seconds))
        text = generation.text or ""
        for call in generation.tool_calls or []:
            function = call.get("function") or {}
            if function.get("name") == TOOL_NAME or len(generation.tool_calls or []) == 1:
                arguments = function.get("arguments")
                text = arguments if isinstance(arguments, str) else json.dumps(arguments)
                break
        if store is not None:
            store.put(key, {"text": text, "model": model})
        return Reply(text)


@register("query_transform", "self-query")
class SelfQueryTransform(QueryTransformStage):
    """A model writes the search text and a metadata filter for each question (see the module docstring).

    Args:
        generator: The generator config (default: the pipeline's).
        structured: ``tool`` (a forced tool call), ``json`` (the prompt asks for JSON text), or ``auto``
            (a tool call, and JSON text for a generator that refuses tools).
        fields: The metadata fields the model may filter on (default: every field but the bookkeeping
            ones of :data:`HIDDEN_FIELDS`).
        examples: Example values shown per field.
        max_tokens: The answer's token cap.
        timeout: Seconds one call may take; ``None``: no limit.
        prompt: The prompt template, with ``{question}`` and ``{schema}``.
        cache: Cache answers in the collection's store home.
        keep_original: Also retrieve with the question as asked (default: the rewritten text replaces it).

    """

    default_prompt = (
        "You turn a question into a search of a document collection: the search text, and a filter on the "
        "documents' metadata fields. Use only the fields and operators listed; filter only on what the question "
        "asks for, with values of each field's type. Answer with JSON only, like "
        '{{"query": "search text", "filters": {{"year": {{"$gte": 2020}}}}}}; '
        'use "filters": {{}} when the question names no condition.\n\n'
        "{schema}\n\nQuestion: {question}"
    )

    def __init__(
        self,
        generator: dict[str, Any] | None = None,
        structured: StructuredMode = "auto",
        fields: list[str] | None = None,
        examples: int = 5,
        max_tokens: int = 200,
        timeout: float | None = DEFAULT_TIMEOUT,
        prompt: str | None = None,
        cache: bool = True,
        keep_original: bool = False,
    ) -> None:
        super().__init__(keep_original, None)
        owner = f"query transform {self.component_type!r}"
        if structured not in ("auto", "tool", "json"):
            raise ConfigError(f"{owner}: option 'structured' must be auto, tool or json, got {structured!r}")
        for option, value in (("examples", examples), ("max_tokens", max_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if option == "examples" else 1):
                raise ConfigError(f"{owner}: option {option!r} must be a positive integer, got {value!r}")
        if fields is not None and (isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields)):
            raise ConfigError(f"{owner}: option 'fields' must be a list of field names, got {fields!r}")
        self.structured: StructuredMode = structured
        self.fields = list(fields) if fields is not None else None
        self.examples = examples
        self.max_tokens = max_tokens
        self.prompt = check_template(self.default_prompt if prompt is None else prompt, owner, ("question", "schema"))
        self.caller = _StructuredCaller(owner, generator, timeout, cache)
        self._tools_refused = False

    def bind(self, context: PipelineContext) -> None:
        """Use the pipeline's generator unless this stage has its own."""
        self.caller.bind(context)

    def tool_spec(self) -> dict[str, Any]:
        """The OpenAI tool the model is asked to call: ``query`` (text) and ``filters`` (an object)."""
        return {
            "type": "function",
            "function": {
                "name": TOOL_NAME,
                "description": "Search the documents with a search text and a filter on their metadata fields.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "what to search for, without the conditions"},
                        "filters": {"type": "object", "description": "conditions in the filter language; {} for none"},
                    },
                    "required": ["query", "filters"],
                },
            },
        }

    def messages(self, question: str, fields: Mapping[str, FieldInfo]) -> list[Message]:
        """The prompt for ``question`` over ``fields``."""
        return [Message("user", self.prompt.format(question=question, schema=schema_text(fields)))]

    def _ask(self, state: QueryState, messages: list[Message]) -> Reply:
        use_tool = self.structured == "tool" or (self.structured == "auto" and not self._tools_refused)
        if not use_tool:
            return self.caller.call_tool(state, self.label, messages, self.max_tokens, None)
        try:
            return self.caller.call_tool(state, self.label, messages, self.max_tokens, self.tool_spec())
        except InputError as exc:
            if self.structured == "tool":
                return Reply(None, f"{type(exc).__name__}: {exc}")
            self._tools_refused = True
            state.current(self.label).notes.append(f"the generator refused tools ({exc}); asked for JSON text")
            return self.caller.call_tool(state, self.label, messages, self.max_tokens, None)

    def run(self, states: list[QueryState]) -> None:
        """For each question: ask, check, then narrow its filters and replace its query (or keep both and say why)."""
        schemas: dict[int, dict[str, FieldInfo]] = {}
        for state in states:
            fields = schemas.get(id(state.collection))
            if fields is None:
                fields = schemas[id(state.collection)] = collection_fields(state.collection, self.examples, self.fields)
            self._one(state, fields)

    def _one(self, state: QueryState, fields: dict[str, FieldInfo]) -> None:
        entry = state.current(self.label)
        where = f"collection {getattr(state.collection, 'name', '?')!r}"
        if not fields:
            entry.notes.append(f"{where} has no filterable metadata fields; searched the question as asked")
            return
        reply = self._ask(state, self.messages(state.question, fields))
        if reply.text is None:
            entry.error = f"model call failed: {reply.error} (searched the question as asked, without a model filter)"
            return
        try:
            query, raw_filters = read_answer(reply.text)
            flt = check_model_filter(raw_filters, fields, where)
        except FilterError as exc:
            entry.notes.append(f"rejected: {exc}")
            entry.notes.append(f"raw output: {_clip(reply.text)}")
            entry.notes.append("fallback: searched the question as asked, without a model filter")
            state.scratch[f"self-query:{self.label}"] = {"valid": False, "reason": str(exc), "raw": reply.text}
            return
        had_filters = parse_filter(state.request.filters) is not None
        state.request.filters = combine(state.request.filters, flt)
        shown = json.dumps(raw_filters, ensure_ascii=False, default=str) if flt is not None else "none"
        entry.notes.append(f"filter: {shown}")
        if flt is not None and had_filters:
            entry.notes.append("combined (AND) with the caller's filters")
        text = (query or "").strip()
        if text and text.casefold() != state.question.strip().casefold():
            if not self.keep_original:
                state.queries = [q for q in state.queries if q.origin != "original"]
            state.queries.append(Query(text, "question", self.label))
        else:
            entry.notes.append("no new search text; searched the question as asked")
        state.scratch[f"self-query:{self.label}"] = {"valid": True, "query": query, "filters": raw_filters}

    def transform_many(self, states: Sequence[QueryState]) -> list[list[Query]]:
        """Not used: :meth:`run` does the work, since this stage also narrows the filters."""
        raise NotImplementedError


def _clip(text: str, limit: int = 500) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")
