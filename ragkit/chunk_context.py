"""Contextual retrieval at ingest: a model writes one sentence that situates each chunk in its document.

The collection option ``chunk_headers: {context: {...}}`` (see
:class:`~ragkit.config.ChunkContext`) turns it on; :class:`ContextWriter` is
what :class:`~ragkit.ingest.IngestPipeline` uses. For each chunk it sends the
prompt with the document (whole when it fits in ``max_document_chars``, else
its beginning plus the stretch around the chunk) and the chunk's text, takes
the first usable line of the answer, strips labels, list markers and quotes,
and cuts it to ``max_chars``. An answer that is empty, a refusal, an echo of
the prompt's markup, a copy of the chunk or not prose is *garbage*: the
chunk keeps its plain header and the reason is reported.

Answers are cached in a :class:`~ragkit.kvstore.JsonStore` keyed by the
generator's fingerprint (:func:`~ragkit.generation.fingerprint.generator_fingerprint`),
the prompt, ``max_tokens``, and hashes of the document excerpt and the chunk,
so re-ingesting the same text (after a delete, into a second collection)
calls no model. Failed calls are not cached; garbage answers are (the same
greedy call would write them again).

Server generators are called ``concurrency`` at a time from a thread pool;
an in-process model (a generator with a ``load()`` method, such as the
``transformers`` one) is loaded once, before the first timed call, and
called one chunk at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.config import ChunkContext
from ragkit.errors import ConfigError, RagkitError, UpstreamTimeoutError
from ragkit.kvstore import JsonStore

if TYPE_CHECKING:
    from ragkit.generation.base import Generator
    from ragkit.protocols import VectorStore
    from ragkit.schema import Chunk

logger = logging.getLogger(__name__)

CACHE_FILE = "chunk-context.sqlite"
"""The cache's file name, in the store home's ``cache`` folder (beside ``embeddings.sqlite``)."""
CACHE_VERSION = 1

_GAP = "\n[…]\n"
_MARKER = re.compile(r"^\s*(?:(?:\d{1,2}|[a-zA-Z])[.):]|\(\d{1,2}\)|[-*•+>]|#{1,6})\s+")
_LABEL = re.compile(
    r"^\s*(?:here\s+is\s+(?:the|a|my)\s+)?(?:(?:short|succinct|brief|one-sentence)\s+)*"
    r"(?:context|situating\s+context|answer|sentence|summary|response)\s*[:\-–]\s*",
    re.I,
)
_PREAMBLE = re.compile(r"^\s*(?:sure|certainly|okay|ok|of course)\b[^:]{0,60}[:!.]\s*$", re.I)
_REFUSAL = re.compile(
    r"^\s*(?:i\s*(?:'m|am)\s+sorry|i\s+(?:cannot|can't|can\s+not)|as\s+an\s+ai|unfortunately,?\s+i)", re.I
)
_MARKUP = re.compile(r"</?\s*(?:document|chunk)\s*>|\{(?:document|chunk)\}", re.I)
_QUOTES = "\"'`“”‘’«»"


@dataclass(slots=True)
class ContextResult:
    """What one chunk got: its sentence, or why it has none."""

    sentence: str | None
    error: str | None = None
    called: bool = False
    """Whether the model was called (``False``: the answer came from the cache, or the call never started)."""


def clean_context(text: str | None, max_chars: int = 300, chunk: str | None = None) -> tuple[str | None, str | None]:
    """``(sentence, None)`` from a model's answer, or ``(None, reason)`` when it holds no usable sentence.

    The first line that is not a preamble (``Sure, here it is:``), a lone
    ``<chunk>``-style tag or a Markdown heading is kept; labels
    (``Context:``), list markers, bold markers and quotes are stripped; a
    sentence longer than ``max_chars`` is cut at a word boundary and ends with
    ``…``. A sentence copied from ``chunk`` (when given) adds nothing to what
    is indexed and is refused too.
    """
    if text is None or not text.strip():
        return None, "empty answer"
    line = ""
    for raw in text.replace("\r", "").split("\n"):
        candidate = raw.strip()
        if not candidate or candidate.startswith(("```", "#")) or _PREAMBLE.match(candidate):
            continue
        if _MARKUP.fullmatch(candidate):  # a lone <chunk> or </document> line
            continue
        if candidate.endswith(":") and len(candidate) < 80:  # "Here is the context:" and the like
            continue
        line = candidate
        break
    for _ in range(2):
        line = _MARKER.sub("", line)
        line = _LABEL.sub("", line)
        line = line.strip().strip("*_").strip().strip(_QUOTES).strip()
    line = " ".join(line.split())
    if not line:
        return None, "empty answer"
    if _REFUSAL.match(line):
        return None, f"a refusal: {_short(line)}"
    if _MARKUP.search(line):
        return None, f"echoes the prompt: {_short(line)}"
    words = re.findall(r"[^\W\d_]{2,}", line)
    letters = sum(ch.isalpha() for ch in line)
    if len(words) < 3 or letters < 0.6 * len(line.replace(" ", "")):
        return None, f"not a sentence: {_short(line)}"
    if chunk is not None and _plain(line).rstrip(".") in _plain(chunk):
        return None, f"repeats the chunk: {_short(line)}"
    if len(line) > max_chars:
        cut = line[: max_chars - 1]
        space = cut.rfind(" ")
        line = (cut[:space] if space > max_chars // 2 else cut).rstrip(" ,;:") + "…"
    return line, None


def document_excerpt(document: str, chunk: Chunk, max_chars: int) -> str:
    """``document`` when it fits in ``max_chars``; else its beginning, a gap mark, and the stretch around ``chunk``.

    The beginning says what the document is; the stretch around the chunk
    says where it sits. A chunk inside the first part gets the first
    ``max_chars`` characters.
    """
    if len(document) <= max_chars:
        return document
    head = max_chars // 2
    start = max(0, min(chunk.start, len(document)))
    if start + len(chunk.text) <= max_chars - len(_GAP):
        return document[:max_chars]
    room = max_chars - head - len(_GAP)
    lead = max(0, (room - len(chunk.text)) // 2)
    begin = max(head, start - lead)
    end = min(len(document), begin + room)
    begin = max(head, end - room)
    return document[:head] + _GAP + document[begin:end]


def default_cache_path(store: VectorStore) -> Path | None:
    """``<home>/cache/chunk-context.sqlite`` for a store in a collection folder (``<home>/collections/NAME/store``).

    ``None`` for a store whose ``path`` does not sit in that layout: the caller
    then gets no disk cache unless it passes a path.
    """
    path = getattr(store, "path", None)
    if not isinstance(path, Path) or path.name != "store" or path.parent.parent.name != "collections":
        return None
    return path.parent.parent.parent / "cache" / CACHE_FILE


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str) -> str:
    return " ".join(text.lower().split())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ContextWriter:
    """Writes the context sentences of chunks with the configured generator; see the module docstring.

    Args:
        options: The ``chunk_headers.context`` option.
        cache_path: The answer cache's file (``None``: no disk cache; ignored when ``options.cache`` is off).

    Building it builds the generator (cheap: no model is loaded), so an
    unknown generator type or a bad generator option fails here.

    """

    def __init__(self, options: ChunkContext, cache_path: Path | None = None) -> None:
        from ragkit.generation.fingerprint import generator_fingerprint
        from ragkit.generation.shared import shared_generator

        self.options = options
        try:
            self.generator: Generator = shared_generator(dict(options.generator))
        except RagkitError as exc:
            raise ConfigError(f"chunk_headers.context.generator: {exc}") from None
        self.fingerprint = generator_fingerprint(self.generator)
        self.local = callable(getattr(self.generator, "load", None))
        self.concurrency = 1 if self.local else options.concurrency
        self.cache_path = cache_path if options.cache else None
        self._cache: JsonStore | None = None
        self._loaded = False
        self._load_lock = threading.Lock()
        self._cache_lock = threading.Lock()

    def close(self) -> None:
        """Close the answer cache (the generator stays, shared with the process)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def _store(self) -> JsonStore | None:
        # the pool's threads all ask at once on the first chunks: one store, opened once
        with self._cache_lock:
            if self._cache is None and self.cache_path is not None:
                self._cache = JsonStore(self.cache_path, "chunk context cache", CACHE_VERSION)
            return self._cache

    def write(
        self,
        items: Sequence[tuple[Chunk, str]],
        on_done: Callable[[ContextResult], None] | None = None,
    ) -> list[ContextResult]:
        """One :class:`ContextResult` per ``(chunk, document text)``, in order; never raises for a model failure."""
        if not items:
            return []
        if self.concurrency == 1 or len(items) == 1:
            results = []
            for chunk, document in items:
                result = self.one(chunk, document)
                if on_done is not None:
                    on_done(result)
                results.append(result)
            return results
        lock = threading.Lock()

        def run(item: tuple[Chunk, str]) -> ContextResult:
            result = self.one(*item)
            if on_done is not None:
                with lock:
                    on_done(result)
            return result

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="ragkit-context") as pool:
            return list(pool.map(run, items))

    def one(self, chunk: Chunk, document: str) -> ContextResult:
        """The context sentence of ``chunk`` in ``document`` (from the cache, else one model call)."""
        from ragkit.generation.base import GenerationOptions, Message

        options = self.options
        excerpt = document_excerpt(document, chunk, options.max_document_chars)
        try:
            excerpt = self._fit(excerpt, chunk.text)
        except Exception as exc:  # counting tokens is a courtesy; the call itself will say what is wrong
            logger.debug("chunk context: cannot fit the prompt to the context window: %s", exc)
        key = self._key(excerpt, chunk.text)
        store = self._store()
        cached = store.get(key) if store is not None else None
        if isinstance(cached, dict) and isinstance(cached.get("text"), str):
            sentence, reason = clean_context(cached["text"], options.max_chars, chunk.text)
            return ContextResult(sentence, reason)
        messages = [Message("user", options.prompt.format(document=excerpt, chunk=chunk.text))]
        generation_options = GenerationOptions(max_tokens=options.max_tokens, temperature=0.0)
        try:
            self._load()
            generation = self._generate(messages, generation_options)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, UpstreamTimeoutError) else f"{type(exc).__name__}: {exc}"
            return ContextResult(None, f"model call failed: {_short(reason, 200)}", called=True)
        text = generation.text or ""
        if store is not None:
            store.put(key, {"text": text, "model": str(getattr(self.generator, "model_name", ""))})
        sentence, reason = clean_context(text, options.max_chars, chunk.text)
        return ContextResult(sentence, reason, called=True)

    def _key(self, excerpt: str, chunk_text: str) -> str:
        payload = {
            "generator": self.fingerprint,
            "prompt": self.options.prompt,
            "max_tokens": self.options.max_tokens,
            "document": _sha(excerpt),
            "chunk": _sha(chunk_text),
        }
        return _sha(json.dumps(payload, sort_keys=True))

    def _fit(self, excerpt: str, chunk_text: str) -> str:
        """Shorten the document excerpt until the prompt and the answer fit the generator's context window."""
        from ragkit.generation.base import Message

        if not self.local:  # a server's window is its own business; its token counts are estimates
            return excerpt
        self._load()
        window = int(self.generator.context_window) - self.options.max_tokens
        for _ in range(4):
            prompt = self.options.prompt.format(document=excerpt, chunk=chunk_text)
            used = self.generator.count_message_tokens([Message("user", prompt)])
            if used <= window or len(excerpt) < 200:
                return excerpt
            keep = int(len(excerpt) * window / used * 0.9)
            excerpt = excerpt[: max(keep, 0)]
        return excerpt

    def _load(self) -> None:
        """Load an in-process model once, before the first timed call, so the timeout measures generation only."""
        if self._loaded:
            return
        with self._load_lock:
            if not self._loaded:
                load = getattr(self.generator, "load", None)
                if callable(load):
                    load()
                self._loaded = True

    def _generate(self, messages: Sequence[Any], options: Any) -> Any:
        from ragkit.generation.base import generate_within

        return generate_within(self.generator, messages, options, self.options.timeout)


def context_items(chunks: Sequence[Chunk], documents: Mapping[str, str]) -> list[tuple[Chunk, str]]:
    """The ``(chunk, document text)`` pairs to write contexts for (a chunk whose document is unknown: its own text)."""
    return [(chunk, documents.get(chunk.document_id, chunk.text)) for chunk in chunks]


__all__ = [
    "CACHE_FILE",
    "ContextResult",
    "ContextWriter",
    "clean_context",
    "context_items",
    "default_cache_path",
    "document_excerpt",
]
