"""What every LLM-backed query stage shares: one cached, time-limited model caller and robust output parsers.

:class:`LLMCaller` builds (or reuses) the stage's generator through
:func:`~ragkit.generation.shared.shared_generator`, calls it greedily
(``temperature=0``) with a ``max_tokens`` cap and an optional per-call
``timeout``, and caches each answer on disk in the collection's store home
(``<store>/cache/llm-stages.sqlite``, next to the embedding cache), keyed by
the generator's fingerprint, the messages and the options. Every call (cached
or not, failed or not) is recorded as a :class:`~ragkit.query.state.ModelCall`
in the stage's trace entry; a call that fails or times out comes back as a
:class:`Reply` with ``error`` set, never as an exception, so the stage keeps
its input for that question and the query goes on.

The parsers read what small local models actually write: numbered or
bulleted lists with a chatty preamble, JSON with or without a ```json fence,
``[2] > [1] > [3]`` rankings, ``Score: 7/10``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit import registry, tracing
from ragkit.errors import ConfigError, NotFoundError, UpstreamTimeoutError
from ragkit.generation.base import GenerationOptions, Message, generate_within
from ragkit.kvstore import JsonStore
from ragkit.query.state import ModelCall

if TYPE_CHECKING:
    from ragkit.generation.base import Generation, Generator
    from ragkit.query.stages import PipelineContext
    from ragkit.query.state import QueryState

logger = logging.getLogger(__name__)

CACHE_FILE = "llm-stages.sqlite"
CACHE_VERSION = 1
DEFAULT_TIMEOUT = 60.0
"""Seconds one model call of an LLM stage may take by default (loading the model is not counted)."""

_stores: dict[Path, JsonStore] = {}
_stores_lock = threading.Lock()


def cache_path(state: QueryState) -> Path | None:
    """Where the LLM stages of ``state``'s collection cache their answers (``None`` when it has no folder)."""
    folder = getattr(state.collection, "folder", None)
    if not isinstance(folder, Path):
        return None
    return folder.parent.parent / "cache" / CACHE_FILE


def cache_store(path: Path) -> JsonStore:
    """The one :class:`JsonStore` of ``path`` in this process (a broken file logs and behaves as empty)."""
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = JsonStore(path, "LLM stage cache", CACHE_VERSION)
        return store


def truncate(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis (for trace notes)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(slots=True)
class Reply:
    """What one model call gave: its text, or the error that stopped it."""

    text: str | None
    error: str | None = None
    cached: bool = False


def check_template(template: Any, owner: str, fields: Sequence[str], option: str = "prompt") -> str:
    """``template`` if it is a format string using only ``fields`` and naming the first one, else a ConfigError.

    Write a literal brace as ``{{`` or ``}}`` (Python's ``str.format`` rules).
    """
    where = f"{owner}: option {option!r}"
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"{where} must be a non-empty string")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"{where} is not a valid template ({exc}); write a literal brace as '{{{{' or '}}}}'"
        ) from None
    used = {name for _, name, _, _ in parsed if name is not None}
    unknown = sorted(name for name in used if name not in fields)
    if unknown:
        allowed = ", ".join("{" + f + "}" for f in fields)
        shown = ", ".join("{" + (name or "") + "}" for name in unknown)
        raise ConfigError(f"{where} uses unknown placeholder(s) {shown}; allowed: {allowed}")
    if fields[0] not in used:
        raise ConfigError(f"{where} must contain the {{{fields[0]}}} placeholder")
    return template


class LLMCaller:
    """Calls a stage's generator: lazily built, greedy, time-limited, cached on disk, traced.

    Args:
        owner: The stage, as named in errors and logs (``query transform 'hyde'``).
        generator: The stage's own generator config; ``None`` takes the pipeline's at :meth:`bind`.
        timeout: Seconds one call may take (loading the model is not counted); ``None``: no limit.
        cache: Whether answers are cached in the collection's store home.

    """

    def __init__(
        self, owner: str, generator: Mapping[str, Any] | None, timeout: float | None, cache: bool = True
    ) -> None:
        if generator is not None and (not isinstance(generator, Mapping) or not isinstance(generator.get("type"), str)):
            raise ConfigError(f"{owner}: option 'generator' must be a mapping with a 'type', got {generator!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ConfigError(f"{owner}: option 'timeout' must be a positive number of seconds, got {timeout!r}")
        self.owner = owner
        self.config: dict[str, Any] | None = dict(generator) if generator is not None else None
        self.timeout = None if timeout is None else float(timeout)
        self.cache = bool(cache)
        self._generator: Generator | None = None
        self._fingerprint = ""
        self._loaded = False
        self._lock = threading.Lock()

    def bind(self, context: PipelineContext) -> None:
        """Take the pipeline's generator unless the stage has its own; an unknown generator type fails here."""
        if self.config is None:
            self.config = dict(context.generator)
        try:
            registry.get("generator", str(self.config.get("type")))
        except NotFoundError as exc:
            raise ConfigError(f"{self.owner}: option 'generator': {exc}") from None

    @property
    def generator(self) -> Generator:
        """The generator (built on first use, shared with every stage and pipeline of the same config)."""
        with self._lock:
            if self._generator is None:
                from ragkit.generation.fingerprint import generator_fingerprint
                from ragkit.generation.shared import shared_generator

                self._generator = shared_generator(self.config or {"type": "transformers"})
                self._fingerprint = generator_fingerprint(self._generator)
            return self._generator

    def _key(self, messages: Sequence[Message], options: GenerationOptions) -> str:
        payload = {
            "generator": self._fingerprint,
            "messages": [m.to_dict() for m in messages],
            "options": {"max_tokens": options.max_tokens, "temperature": options.temperature},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()

    def call(self, state: QueryState, trace_label: str, messages: Sequence[Message], max_tokens: int) -> Reply:
        """Ask the model once for ``state``; record the call in ``state``'s trace entry ``trace_label``."""
        generator = self.generator
        model = str(getattr(generator, "model_name", "") or self.config)
        options = GenerationOptions(max_tokens=max_tokens, temperature=0.0)
        entry = state.current(trace_label)
        store = None
        path = cache_path(state) if self.cache else None
        key = ""
        if path is not None:
            store = cache_store(path)
            key = self._key(messages, options)
            started = time.perf_counter()
            found = store.get(key)
            if isinstance(found, dict) and isinstance(found.get("text"), str):
                entry.calls.append(ModelCall(model, seconds=time.perf_counter() - started, cached=True))
                return Reply(found["text"], cached=True)
        self._load(generator)
        started = time.perf_counter()
        try:
            generation = self._generate(generator, messages, options)
        except Exception as exc:
            error = str(exc) if isinstance(exc, UpstreamTimeoutError) else f"{type(exc).__name__}: {exc}"
            entry.calls.append(ModelCall(model, seconds=time.perf_counter() - started, error=error))
            return Reply(None, error)
        seconds = time.perf_counter() - started
        usage = generation.usage
        entry.calls.append(ModelCall(model, usage.prompt_tokens, usage.completion_tokens, seconds))
        text = generation.text or ""
        if store is not None:
            store.put(key, {"text": text, "model": model})
        return Reply(text)

    def _load(self, generator: Generator) -> None:
        """Load a local model before the first timed call, so the timeout measures generation only."""
        if self._loaded:
            return
        load = getattr(generator, "load", None)
        if callable(load):
            load()
        self._loaded = True

    def _generate(self, generator: Generator, messages: Sequence[Message], options: GenerationOptions) -> Generation:
        chat = tracing.start_chat(generator.model_name, messages, options)
        try:
            generation = generate_within(generator, messages, options, self.timeout)
        except BaseException as exc:
            tracing.end_chat(chat, error=exc)
            raise
        tracing.end_chat(chat, generation)
        return generation


# -- parsers ------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_MARKER = re.compile(r"^\s*(?:(?:\d{1,2}|[a-zA-Z])[.):]|\(\d{1,2}\)|[-*•+]|#{1,6})\s+")
_LABEL = re.compile(
    r"^\s*(?:(?:alternative|rewritten|rephrased|new|sub)[- ]?)?"
    r"(?:query|question|phrasing|rewrite|version|sub-?question)\s*\d*\s*[:.)-]\s*",
    re.I,
)
_QUOTES = "\"'`“”‘’«»"


def parse_json(text: str) -> Any | None:
    """The JSON value in ``text``: inside a ```json fence, the whole text, or its first ``[...]``/``{...}``."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        candidate = candidate.strip()
        if not candidate:
            continue
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        for opening, closing in (("[", "]"), ("{", "}")):
            start, end = candidate.find(opening), candidate.rfind(closing)
            if 0 <= start < end:
                try:
                    return json.loads(candidate[start : end + 1])
                except ValueError:
                    continue
    return None


def _strings_in(value: Any) -> list[str] | None:
    """A list of strings held by a parsed JSON value (a list, or the first list inside an object)."""
    if isinstance(value, list):
        items = [v for v in value if isinstance(v, str)]
        if not items:  # e.g. [{"query": "..."}]
            items = [s for v in value if isinstance(v, dict) for s in v.values() if isinstance(s, str)][: len(value)]
        return items or None
    if isinstance(value, dict):
        for inner in value.values():
            found = _strings_in(inner)
            if found:
                return found
    return None


def clean_line(line: str) -> str:
    """One list item without its marker (``1.``, ``-``, ``Query 2:``), quotes and surrounding space."""
    line = line.strip()
    for _ in range(2):
        line = _MARKER.sub("", line)
        line = _LABEL.sub("", line)
    line = line.strip().strip(_QUOTES).strip()
    if line.startswith("**") and line.endswith("**"):
        line = line.strip("*").strip()
    return line


def parse_lines(text: str) -> list[str]:
    """The items of a list a model wrote: a JSON list (fenced or not), else numbered/bulleted lines, else lines.

    A preamble (``Here are three questions:``) is dropped: when some lines
    carry a list marker only those are kept, and a line ending in ``:`` is
    never an item. Empty items are dropped; order is kept.
    """
    if not text or not text.strip():
        return []
    if "[" in text or "{" in text:
        found = _strings_in(parse_json(text))
        if found:
            return [item for item in (clean_line(s) for s in found) if item]
    lines = [line for line in text.replace("\r", "").split("\n") if line.strip() and not line.strip().startswith("```")]
    marked = [line for line in lines if _MARKER.match(line)]
    chosen = marked or lines
    items = []
    for line in chosen:
        if line.rstrip().endswith(":"):
            continue
        item = clean_line(line)
        if item:
            items.append(item)
    return items


_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)")
_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")


def parse_int_list(text: str) -> list[int]:
    """The integers of a ranking in the order written: ``[2] > [1] > [3]``, ``2, 1, 3``, ``[2, 1, 3]``.

    Bracketed numbers are preferred when the text has any (the model may
    quote passage text with other numbers in it); else every integer counts.
    Duplicates and out-of-range numbers are left for the caller to judge.
    """
    if not text:
        return []
    value = parse_json(text) if "[" in text else None
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    bracketed = _BRACKETED.findall(text)
    if bracketed:
        return [int(n) for n in bracketed]
    return [int(n) for n in re.findall(r"(?<![\d.])\d+(?![\d.]\d)", text)]


def parse_rating(text: str, low: float = 0.0, high: float = 10.0) -> float | None:
    """The first number between ``low`` and ``high`` in ``text`` (``Score: 7/10`` → 7.0), or ``None``."""
    if not text:
        return None
    value = parse_json(text) if "{" in text else None
    if isinstance(value, dict):
        for inner in value.values():
            if isinstance(inner, int | float) and not isinstance(inner, bool) and low <= inner <= high:
                return float(inner)
    for match in _NUMBER.finditer(text):
        number = float(match.group(1))
        if low <= number <= high:
            return number
    return None


_SCORE_LINE = re.compile(r"^\W*(?:passage\s*)?\[?(\d{1,3})\]?\s*(?:[:=)\-–.]|->)\s*\D{0,20}?(\d+(?:\.\d+)?)", re.I)


def parse_scores(text: str, count: int, low: float = 0.0, high: float = 10.0) -> dict[int, float]:
    """Ratings of numbered passages, one per line (``[2]: 7``, ``2 - 7``, or a JSON object ``{"2": 7}``).

    Keys are the 1-based passage numbers; numbers outside ``1..count``,
    ratings outside ``low..high`` and repeats (the first one counts) are left out.
    """
    scores: dict[int, float] = {}
    value = parse_json(text) if "{" in text else None
    if isinstance(value, dict):
        for key, inner in value.items():
            digits = re.sub(r"\D", "", str(key))
            if digits and isinstance(inner, int | float) and not isinstance(inner, bool):
                number = int(digits)
                if 1 <= number <= count and low <= inner <= high and number not in scores:
                    scores[number] = float(inner)
        if scores:
            return scores
    for line in (text or "").splitlines():
        match = _SCORE_LINE.match(line)
        if not match:
            continue
        number, rating = int(match.group(1)), float(match.group(2))
        if 1 <= number <= count and low <= rating <= high and number not in scores:
            scores[number] = rating
    return scores
