"""The judge: a ragkit generator made safe to score with.

:class:`Judge` wraps any ragkit :class:`~ragkit.generation.base.Generator`
and adds what an evaluation run needs from an LLM judge:

* **a disk cache** (:class:`~ragkit_ragas.cache.JudgeCache`): a call the
  judge answered before is answered from the cache, with no generator call;
* **a timeout** per call (``asyncio.wait_for`` around the generator's own);
* **bounded retries with exponential backoff**: a call that fails (an
  upstream error, a timeout) is tried again after ``backoff * 2**k`` seconds
  (capped); an answer that does not parse is sent back to the model with the
  parse error and a request for JSON only (as instructor's "reask" does),
  which is deterministic and therefore cacheable. Both count against
  ``retries``; when they run out, :class:`JudgeError` says why;
* **bounded concurrency**: at most ``concurrency`` generator calls in flight
  per event loop (an ``asyncio.Semaphore``).

Per-sample accounting (calls, cache hits, retries) goes to the
:class:`JudgeTally` of the current context, so concurrent samples each
count their own.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from ragkit.errors import ConfigError, InputError, RagkitError, UpstreamTimeoutError
from ragkit.generation.base import Generation, GenerationOptions, Generator, Message
from ragkit.generation.fingerprint import generator_fingerprint
from ragkit_ragas.cache import JudgeCache, cache_key
from ragkit_ragas.parse import UnparsableOutput, parse_structured

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

SYSTEM_PROMPT = (
    "You are an evaluation judge. Follow the instructions exactly and answer with one JSON object that "
    "matches the requested schema: no prose, no code fences, double quotes only."
)
"""The system message of every structured judge call."""

REASK_PROMPT = (
    "Your answer could not be used: {problem}. Answer again with only the JSON object that matches the schema "
    "given above, and nothing else."
)


class JudgeError(RagkitError):
    """A judge call failed for good (after the retries); ``kind`` says how."""

    http_status = 502
    exit_code = 7

    def __init__(self, message: str, kind: str = "error", attempts: int = 1) -> None:
        super().__init__(message)
        self.kind = kind
        """``error`` (the generator failed), ``timeout``, ``unparsable`` or ``input`` (not retried)."""
        self.attempts = attempts


@dataclass
class JudgeTally:
    """What the judge did for one sample (or any scope opened with :meth:`Judge.tally`)."""

    calls: int = 0
    """Generator calls made (cache misses), failed ones included."""
    cache_hits: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)
    """Reasons of the attempts that failed (the sample may still have been scored)."""
    occurrences: dict[str, int] = field(default_factory=dict)
    memo: dict[str, Generation] = field(default_factory=dict, repr=False)
    """Greedy answers already given in this scope, by cache key (a repeated prompt is asked once)."""

    def to_dict(self) -> dict[str, Any]:
        """The counts, for a score's ``details``."""
        return {
            "judge_calls": self.calls,
            "judge_cache_hits": self.cache_hits,
            "judge_retries": self.retries,
            "judge_failures": list(self.failures),
        }


_tally: contextvars.ContextVar[JudgeTally | None] = contextvars.ContextVar("ragkit_ragas_tally", default=None)


@dataclass
class JudgeStats:
    """Totals of one :class:`Judge` over its life."""

    calls: int = 0
    cache_hits: int = 0
    failures: int = 0


class Judge:
    """A ragkit generator with a cache, a timeout, retries and a concurrency bound.

    Args:
        generator: The ragkit generator that writes the judgements.
        cache: Where answers are cached (``None``: no cache).
        retries: Extra attempts per call after a failure, a timeout or an
            unparsable answer (``0``: one attempt).
        timeout: Seconds one generator call may take (``None``: no limit
            beyond the generator's own).
        concurrency: Generator calls in flight at once, per event loop.
        max_tokens: Length limit of each judgement.
        temperature: Sampling temperature (``0``: greedy, the default:
            judgements are then reproducible and repeated prompts are asked
            once).
        backoff: Seconds before the first retry of a failed call; doubles
            each time, capped at ``max_backoff``.
        max_backoff: The longest wait between retries.

    """

    def __init__(
        self,
        generator: Generator,
        *,
        cache: JudgeCache | None = None,
        retries: int = 2,
        timeout: float | None = 120.0,
        concurrency: int = 4,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"judge option 'retries': expected an integer of at least 0, got {retries!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ConfigError(f"judge option 'timeout': expected seconds (> 0) or null, got {timeout!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"judge option 'concurrency': expected an integer of at least 1, got {concurrency!r}")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"judge option 'max_tokens': expected an integer of at least 1, got {max_tokens!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or temperature < 0:
            raise ConfigError(f"judge option 'temperature': expected a number of at least 0, got {temperature!r}")
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
            raise ConfigError(f"judge option 'backoff': expected seconds (>= 0), got {backoff!r}")
        self.generator = generator
        self.cache = cache
        self.retries = retries
        self.timeout = None if timeout is None else float(timeout)
        self.concurrency = concurrency
        self.options = GenerationOptions(max_tokens=max_tokens, temperature=float(temperature), seed=seed)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.stats = JudgeStats()
        self.fingerprint = generator_fingerprint(generator)
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def model_name(self) -> str:
        """The judge model's name."""
        return str(getattr(self.generator, "model_name", "") or type(self.generator).__name__)

    # -- accounting ------------------------------------------------------------------------------

    @staticmethod
    @contextmanager
    def tally() -> Iterator[JudgeTally]:
        """Count the judge's work in this context (one sample) into a fresh :class:`JudgeTally`."""
        tally = JudgeTally()
        token = _tally.set(tally)
        try:
            yield tally
        finally:
            _tally.reset(token)

    @staticmethod
    def _current() -> JudgeTally:
        tally = _tally.get()
        if tally is None:
            tally = JudgeTally()
            _tally.set(tally)
        return tally

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = asyncio.Semaphore(self.concurrency)
            self._semaphores[loop] = semaphore
        return semaphore

    # -- calls -----------------------------------------------------------------------------------

    async def structured(self, prompt: str, response_model: type[M]) -> M:
        """Ask the judge ``prompt`` and read its answer as ``response_model``.

        Failed calls are retried after a backoff; unparsable answers are
        sent back with the parse error. Raises :class:`JudgeError` when the
        ``retries`` are spent.
        """
        messages = [Message("system", SYSTEM_PROMPT), Message("user", prompt)]
        occurrence = self._occurrence(prompt, response_model)
        attempts = 0
        last_problem = ""
        while True:
            attempts += 1
            try:
                generation = await self.complete(messages, occurrence)
            except JudgeError as exc:
                if exc.kind == "input" or attempts > self.retries:
                    raise JudgeError(self._final_message(exc, attempts), exc.kind, attempts) from None
                self._current().retries += 1
                await asyncio.sleep(self._backoff_delay(attempts))
                continue
            try:
                return parse_structured(generation.text, response_model)
            except UnparsableOutput as exc:
                last_problem = str(exc)
                if generation.finish_reason == "length":
                    last_problem += f" (the answer was cut off at max_tokens={self.options.max_tokens})"
                self._current().failures.append(f"unparsable: {last_problem}")
                if attempts > self.retries:
                    self.stats.failures += 1
                    raise JudgeError(
                        f"the judge ({self.model_name}) gave no usable {response_model.__name__} after "
                        f"{_attempts(attempts)}: {last_problem}; last answer: {_excerpt(generation.text)}",
                        "unparsable",
                        attempts,
                    ) from None
                self._current().retries += 1
                messages = [
                    *messages,
                    Message("assistant", generation.text),
                    Message("user", REASK_PROMPT.format(problem=last_problem)),
                ]

    async def ask(self, messages: list[Message]) -> Generation:
        """The judge's free-text answer to ``messages``: :meth:`complete` with the retries and backoff."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self.complete(messages)
            except JudgeError as exc:
                if exc.kind == "input" or attempts > self.retries:
                    raise JudgeError(self._final_message(exc, attempts), exc.kind, attempts) from None
                self._current().retries += 1
                await asyncio.sleep(self._backoff_delay(attempts))

    async def complete(self, messages: list[Message], occurrence: int = 0) -> Generation:
        """One judge call: from the cache, else from the generator (one attempt, with the timeout).

        Raises :class:`JudgeError` (``kind`` ``error``, ``timeout`` or
        ``input``) when the generator fails; the failure is not cached.
        """
        tally = self._current()
        options = self._options_dict()
        key = cache_key(self.fingerprint, [m.to_dict() for m in messages], options, occurrence)
        remembered = tally.memo.get(key)
        if remembered is not None:
            tally.cache_hits += 1
            self.stats.cache_hits += 1
            return remembered
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                tally.cache_hits += 1
                self.stats.cache_hits += 1
                text, finish = cached
                return Generation(text=text, finish_reason=finish, model=self.model_name)  # type: ignore[arg-type]
        async with self._semaphore():
            tally.calls += 1
            self.stats.calls += 1
            try:
                if self.timeout is None:
                    generation = await self.generator.agenerate(messages, self.options)
                else:
                    generation = await asyncio.wait_for(self.generator.agenerate(messages, self.options), self.timeout)
            except (TimeoutError, UpstreamTimeoutError) as exc:
                reason = (
                    f"timeout: the judge ({self.model_name}) did not answer within {self.timeout:g} s"
                    if isinstance(exc, TimeoutError) and self.timeout is not None
                    else f"timeout: {exc}"
                )
                tally.failures.append(reason)
                raise JudgeError(reason, "timeout") from None
            except InputError as exc:
                reason = f"the judge ({self.model_name}) refused the request: {exc}"
                tally.failures.append(reason)
                raise JudgeError(reason, "input") from None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"the judge ({self.model_name}) failed: {_describe(exc)}"
                tally.failures.append(reason)
                raise JudgeError(reason, "error") from None
        if self.cache is not None:
            self.cache.put(key, self.model_name, generation.text, str(generation.finish_reason))
        if not self.options.temperature:
            tally.memo[key] = generation
        return generation

    # -- helpers ---------------------------------------------------------------------------------

    def _options_dict(self) -> dict[str, Any]:
        return {
            "max_tokens": self.options.max_tokens,
            "temperature": self.options.temperature,
            "seed": self.options.seed,
        }

    def _occurrence(self, prompt: str, response_model: type[BaseModel]) -> int:
        """Which repetition of this prompt within the sample this is (only matters when sampling).

        With ``temperature > 0`` a metric that asks the same prompt several
        times (answer relevancy's ``strictness``) wants different answers:
        each repetition gets its own cache entry. Greedy judges answer a
        repeated prompt identically, so it is asked once.
        """
        if not self.options.temperature:
            return 0
        tally = self._current()
        name = f"{response_model.__module__}.{response_model.__qualname__}\x00{prompt}"
        count = tally.occurrences.get(name, 0)
        tally.occurrences[name] = count + 1
        return count

    def _backoff_delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * math.pow(2, attempt - 1)))

    def _final_message(self, exc: JudgeError, attempts: int) -> str:
        self.stats.failures += 1
        if exc.kind == "input" or attempts <= 1:
            return str(exc)
        return f"{exc} (after {_attempts(attempts)})"


def build_judge_generator(config: Mapping[str, Any] | Generator) -> Generator:
    """A generator from a ragkit generator config (``{"type": ...}``), or the generator given."""
    if not isinstance(config, Mapping):
        if not callable(getattr(config, "agenerate", None)):
            raise ConfigError(f"judge: expected a generator config like {{'type': 'transformers'}}, got {config!r}")
        return config
    from ragkit.registry import build

    return build("generator", dict(config))  # type: ignore[no-any-return]


DEFAULT_JUDGE: dict[str, Any] = {"type": "transformers"}
"""The judge when none is configured: the packaged local SmolLM2 (offline, but too small to judge well)."""


class JudgeSetup:
    """A metric's judge as configured: checked when the metric is built, built on first use, closed with it.

    The ragas and DeepEval metrics hold one each, so a bad ``judge``,
    ``cache_dir`` or number fails when the suite is read, not on the first
    sample, and no generator or cache file is opened before a sample is
    scored.

    Args:
        metric: The metric's name, for error messages.
        judge: A generator config (``{"type": ...}``) or a built generator;
            ``None``: :data:`DEFAULT_JUDGE`.
        cache_dir: The folder of the judge's SQLite cache (``None``: none).
        options: :class:`Judge`'s keyword arguments (``retries``,
            ``timeout``, ``concurrency`` ...), checked here.

    """

    def __init__(self, metric: str, judge: Mapping[str, Any] | Any | None, cache_dir: Any, **options: Any) -> None:
        if judge is not None and not isinstance(judge, Mapping) and not callable(getattr(judge, "agenerate", None)):
            raise ConfigError(f"metric {metric!r}: 'judge' must be a generator config like {{'type': 'transformers'}}")
        if cache_dir is not None and not isinstance(cache_dir, str | bytes) and not hasattr(cache_dir, "__fspath__"):
            raise ConfigError(f"metric {metric!r}: 'cache_dir' must be a folder path, got {cache_dir!r}")
        self.config: Mapping[str, Any] | Any = judge if judge is not None else dict(DEFAULT_JUDGE)
        self.cache_dir = cache_dir
        self.options = options
        Judge(_UnusedGenerator(), **options)  # type: ignore[arg-type]  # checks the numbers now
        self._judge: Judge | None = None
        self._lock = threading.Lock()

    def judge(self) -> Judge:
        """The :class:`Judge` (its generator and cache opened on the first call)."""
        with self._lock:
            if self._judge is None:
                generator = build_judge_generator(self.config)
                cache = JudgeCache(self.cache_dir) if self.cache_dir is not None else None
                self._judge = Judge(generator, cache=cache, **self.options)
            return self._judge

    def close(self) -> None:
        """Release the judge's cache file (the generator stays, shared with the process)."""
        judge = self._judge
        if judge is not None and judge.cache is not None:
            judge.cache.close()


class _UnusedGenerator:
    """Stands in for the generator while the judge's options are checked."""

    model_name = "none"

    async def agenerate(self, messages: Any, options: Any = None) -> Any:
        raise NotImplementedError


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RagkitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
