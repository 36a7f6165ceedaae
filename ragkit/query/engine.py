"""The query pipeline: a list of stages run over a batch of question states.

::

    from ragkit import Collection
    from ragkit.query import QueryPipeline

    docs = Collection.open("docs")
    hybrid = QueryPipeline.from_configs([{"type": "dense", "top_k": 20}, {"type": "lexical", "top_k": 20}, "rrf"])
    result = hybrid.search("How do I reset my password?", docs, top_k=5)
    for hit in result.hits:
        print(hit.score, hit.ranks, hit.chunk.source)
    print(result.trace[0].to_dict())       # what each stage did, and how long it took

The stages run in their kinds' order (transform → retrieve → fuse → rerank
→ shape). When several candidate lists remain and no fusion stage was
configured (two retrievers, or a multi-query transform), they are fused by
reciprocal rank fusion and the trace says so. After the last stage the hits
are cut to the request's ``top_k``.

The pipeline is written once, as async code (:meth:`QueryPipeline.asearch`);
the sync methods drive the same code without an event loop (see
:mod:`ragkit.query.driver`). In async mode the stages run in one worker
thread unless one of them does native async I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragkit import tracing
from ragkit.errors import ConfigError, InputError, RagkitError
from ragkit.filters import FilterLike
from ragkit.generation.base import Message
from ragkit.query.driver import run_now
from ragkit.query.retrievers import retriever_of
from ragkit.query.stages import (
    FuserStage,
    PipelineContext,
    QueryTransformStage,
    RetrieverStage,
    Stage,
    build_stage,
    check_order,
)
from ragkit.query.state import Query, QueryRequest, QueryState, StageTrace, hit_summary
from ragkit.schema import Hit, hit_dicts

if TYPE_CHECKING:
    from ragkit.collection import Collection


@dataclass(slots=True)
class SearchResult:
    """The hits a pipeline found for one question, with the queries it used and its trace."""

    question: str
    hits: list[Hit]
    queries: list[Query] = field(default_factory=list)
    trace: list[StageTrace] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "question": self.question,
            "hits": hit_dicts(self.hits),
            "queries": [q.to_dict() for q in self.queries],
            "trace": [t.to_dict() for t in self.trace],
            "timings": dict(self.timings),
        }


class QueryPipeline:
    """Stages from query transforms to context shaping; see the module docstring.

    Args:
        stages: The stages, in order (checked: see :func:`~ragkit.query.stages.check_order`).
        top_k: Hits handed on when a request names no ``top_k``.
        name: The name reported in traces and metrics.
        where: What errors call the stage list (``pipeline 'x': stages``).

    """

    def __init__(self, stages: Sequence[Stage], top_k: int = 5, name: str = "search", where: str = "stages") -> None:
        check_order(stages, where)
        if top_k < 1:
            raise ConfigError(f"pipeline {name!r}: top_k must be at least 1, got {top_k}")
        self.stages = list(stages)
        self.top_k = top_k
        self.name = name
        self._plans: dict[str | None, list[Stage]] = {None: self.stages}

    @classmethod
    def from_configs(
        cls,
        configs: Sequence[Mapping[str, Any] | str],
        top_k: int = 5,
        name: str = "search",
        context: PipelineContext | None = None,
        where: str = "stages",
    ) -> QueryPipeline:
        """Build every stage from its config (errors name ``where[i]``) and bind it to ``context``."""
        stages = [build_stage(config, f"{where}[{i}]") for i, config in enumerate(configs)]
        context = context or PipelineContext()
        for stage in stages:
            stage.bind(context)
        return cls(stages, top_k, name, where)

    def to_config(self) -> list[dict[str, Any]]:
        """The stage configs that rebuild this pipeline."""
        return [stage.to_config() for stage in self.stages]

    @property
    def native_async(self) -> bool:
        """Whether a stage does its own async I/O (else the whole run takes one worker thread)."""
        return any(stage.native_async for stage in self.stages)

    # -- planning -------------------------------------------------------------------------------

    def plan(self, mode: str | None) -> list[Stage]:
        """The stages for a request: ``mode`` (a retriever type) replaces the retrievers and the fuser.

        ``mode: lexical`` on a hybrid pipeline searches BM25 alone, with the
        pipeline's own ``lexical`` stage settings when it has one.
        """
        if mode in self._plans:
            return self._plans[mode]
        assert mode is not None
        own = [s for s in self.stages if isinstance(s, RetrieverStage) and s.component_type == mode]
        retriever = own[0] if own else retriever_of(mode)
        stages: list[Stage] = []
        for stage in self.stages:
            if isinstance(stage, FuserStage):
                continue
            if isinstance(stage, RetrieverStage):
                if retriever not in stages:
                    stages.append(retriever)
                continue
            stages.append(stage)
        self._plans[mode] = stages
        return stages

    # -- running --------------------------------------------------------------------------------

    def start(self, request: QueryRequest, collection: Collection) -> QueryState:
        """The state of one request, its ``top_k`` resolved."""
        if request.top_k is None:
            request.top_k = self.top_k
        elif request.top_k < 1:
            raise InputError(f"top_k must be at least 1, got {request.top_k}")
        return QueryState.start(request, collection)

    async def execute(self, states: list[QueryState], sync: bool = False) -> None:
        """Run every stage over ``states``; in sync mode no step waits for an event loop."""
        if not sync and not self.native_async:
            await asyncio.to_thread(run_now, self.execute(states, True))
            return
        modes = {s.request.options.get("mode") for s in states}
        if len(modes) > 1:
            raise InputError("a batch of questions must share one search mode")
        stages = self.plan(modes.pop())
        transforms = [s for s in stages if isinstance(s, QueryTransformStage)]
        retrievers = [s for s in stages if isinstance(s, RetrieverStage)]
        for transform in transforms:
            if not transform.adaptive:
                await self._step(transform, states, sync)
        for retriever in retrievers:
            await self._step(retriever, states, sync)
        for transform in transforms:
            if transform.adaptive:
                await self._adaptive(transform, retrievers, states, sync)
        fusers = [s for s in stages if isinstance(s, FuserStage)]
        if fusers:
            await self._step(fusers[0], states, sync)
        else:
            self._fuse_if_needed(states)
        for stage in stages:
            if stage.kind in ("rerank", "shape"):
                await self._step(stage, states, sync)
        for state in states:
            del state.hits[state.top_k :]

    async def _adaptive(
        self, stage: QueryTransformStage, retrievers: list[RetrieverStage], states: list[QueryState], sync: bool
    ) -> None:
        """Run ``stage`` only for the questions whose first retrieval looks weak, then retrieve again for them."""
        weak = []
        for state in states:
            reason = stage.weak_reason(state)
            if reason is None:
                state.trace.append(StageTrace(stage.label, stage.kind, skipped=True, notes=[stage.strong_note(state)]))
            else:
                weak.append(state)
                state.scratch[f"weak:{stage.label}"] = reason
        if not weak:
            return
        await self._step(stage, weak, sync)
        for state in weak:
            state.current(stage.label).notes.insert(0, state.scratch[f"weak:{stage.label}"])
        for retriever in retrievers:
            await self._step(retriever, weak, sync)

    async def _step(self, stage: Stage, states: list[QueryState], sync: bool) -> None:
        """Run one stage, timing it and recording its output (or its error) in each state's trace."""
        before = [(list(s.hits), len(s.queries), len(s.candidates)) for s in states]
        for state in states:
            state.trace.append(StageTrace(stage.label, stage.kind))
        started = time.perf_counter()
        error: str | None = None
        try:
            with tracing.stage(stage, states):
                if sync:
                    stage.run(states)
                else:
                    await stage.arun(states)
        except (ConfigError, InputError):
            raise
        except Exception as exc:
            if not stage.fail_open:
                if isinstance(exc, RagkitError):
                    raise
                raise RagkitError(f"stage {stage.label!r} failed: {type(exc).__name__}: {exc}") from exc
            error = f"{type(exc).__name__}: {exc}"
        share = (time.perf_counter() - started) / max(1, len(states))
        for state, (hits, queries, candidates) in zip(states, before, strict=True):
            entry = state.current(stage.label)
            entry.seconds = share
            if error is not None:
                entry.error = f"{error} (the stage's input was kept)"
                state.hits = hits
                del state.queries[queries:]
                del state.candidates[candidates:]
                continue
            if len(state.queries) > queries or stage.kind == "transform":
                entry.queries = [q.to_dict() for q in state.queries]
            if len(state.candidates) > candidates:
                entry.candidates = {c.label: hit_summary(c.hits) for c in state.candidates[candidates:]}
            if stage.kind in ("fuse", "rerank", "shape"):
                entry.hits = hit_summary(state.hits)

    def _fuse_if_needed(self, states: list[QueryState]) -> None:
        """Without a fusion stage: one list becomes the hits; several are fused by RRF (and the trace says so)."""
        from ragkit.query.fusion import ReciprocalRankFusion

        for state in states:
            lists = [c for c in state.candidates if c.hits] or state.candidates[:1]
            if len(lists) <= 1:
                state.hits = list(lists[0].hits) if lists else []
                continue
            fuser = ReciprocalRankFusion()
            fuser.label = "rrf"
            started = time.perf_counter()
            state.hits = fuser.fuse(lists)
            state.fused = True
            entry = StageTrace("rrf", "fuse", seconds=time.perf_counter() - started, hits=hit_summary(state.hits))
            entry.notes.append(
                f"{len(lists)} candidate lists and no fusion stage: fused by reciprocal rank fusion (k=60)"
            )
            state.trace.append(entry)

    # -- entry points ---------------------------------------------------------------------------

    def _states(
        self,
        questions: Sequence[str],
        collection: Collection,
        top_k: int | None,
        filters: FilterLike,
        mode: str | None,
        history: list[Message] | None = None,
    ) -> list[QueryState]:
        options = {"mode": mode} if mode else {}
        return [
            self.start(QueryRequest(q, top_k, filters, list(history or []), dict(options)), collection)
            for q in questions
        ]

    def search(
        self,
        question: str,
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        history: list[Message] | None = None,
    ) -> SearchResult:
        """The best ``top_k`` hits for ``question`` with the trace of every stage.

        ``history`` is the conversation so far, for a ``condense`` stage.
        """
        return self.search_many([question], collection, top_k, filters, mode, history)[0]

    def search_many(
        self,
        questions: Sequence[str],
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        history: list[Message] | None = None,
    ) -> list[SearchResult]:
        """Batch form of :meth:`search`: each stage handles all questions at once."""
        states = self._states(questions, collection, top_k, filters, mode, history)
        started = time.perf_counter()
        run_now(self.execute(states, sync=True))
        share = (time.perf_counter() - started) / max(1, len(states))
        return [result_of(s, share) for s in states]

    async def asearch(
        self,
        question: str,
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        history: list[Message] | None = None,
    ) -> SearchResult:
        """Async twin of :meth:`search`."""
        states = self._states([question], collection, top_k, filters, mode, history)
        started = time.perf_counter()
        await self.execute(states)
        return result_of(states[0], time.perf_counter() - started)


def result_of(state: QueryState, seconds: float) -> SearchResult:
    """The :class:`SearchResult` of a finished state; ``timings`` has each stage's seconds and ``search``."""
    timings = {f"stage:{entry.stage}": 0.0 for entry in state.trace}
    for entry in state.trace:
        timings[f"stage:{entry.stage}"] += entry.seconds
    timings["search"] = seconds
    return SearchResult(state.question, state.hits, list(state.queries), list(state.trace), timings)
