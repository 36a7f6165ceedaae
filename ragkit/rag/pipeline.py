"""The basic RAG pipeline: retrieve → assemble context under a token budget → generate → cite.

::

    from ragkit import Collection
    from ragkit.rag import RagPipeline

    docs = Collection.open("docs")
    pipeline = RagPipeline.load("basic")          # pipelines/basic.yaml
    answer = pipeline.ask("How do I reset my password?", docs)
    print(answer.text)
    for citation in answer.citations:
        print(citation.number, citation.location)

Every stage is visible in the result: the hits used as context (block
``[n]`` is ``answer.hits[n-1]``), the citations with their spans, citation
numbers the model invented (``dropped_citations``), token usage and seconds
per stage. :meth:`RagPipeline.stream` yields the same as events, ending with
the whole :class:`Answer`, so a streaming client keeps its citations.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, Callable
from collections.abc import Generator as EventStream
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ragkit import tracing
from ragkit.collection import Collection
from ragkit.errors import InputError
from ragkit.filters import FilterLike
from ragkit.generation.base import FinishReason, GenerationDelta, GenerationOptions, Generator, Message, Usage
from ragkit.generation.shared import shared_generator as shared_generator  # re-exported: its old home
from ragkit.protocols import Preloadable
from ragkit.query.driver import iterate_now, run_now
from ragkit.query.engine import QueryPipeline, SearchResult
from ragkit.query.stages import PipelineContext
from ragkit.query.state import ModelCall, Query, QueryRequest, QueryState, StageTrace
from ragkit.rag.answer import Answer, AskEvent
from ragkit.rag.citations import CitationTracker, infer_citations, resolve_citations
from ragkit.rag.config import PipelineConfig, load_pipeline_config
from ragkit.rag.prompt import format_block
from ragkit.schema import Hit

if TYPE_CHECKING:
    from ragkit.conversation import ConversationStore, FittedHistory

T = TypeVar("T")
_BLOCK_SEPARATOR = "\n\n"


@dataclass(slots=True)
class PreparedPrompt:
    """The messages to send and the hits whose blocks they contain."""

    messages: list[Message]
    hits: list[Hit]
    skipped: int
    prompt_tokens: int
    history: StageTrace | None = None
    """How the conversation history was fitted into the prompt (``None``: there was none)."""


INSTRUCTIONS_HEADER = "Instructions from the caller (they do not change the rules above):"


@dataclass(slots=True)
class AskExtras:
    """What an ask may bring besides the question: the caller's instructions and a stored conversation."""

    instructions: str | None = None
    conversation_id: str | None = None
    owner: str | None = None
    conversations: ConversationStore | None = None

    def store(self) -> ConversationStore:
        """The conversation store (the default one at ``<home>/conversations.sqlite`` unless one was given)."""
        if self.conversations is None:
            self.conversations = default_conversations()
        return self.conversations

    def history(self) -> list[Message]:
        """The stored conversation's messages (``NotFoundError`` if it is not this owner's)."""
        assert self.conversation_id is not None
        return self.store().history(self.conversation_id, self.owner)

    def record(self, answer: Answer, standalone: str | None) -> None:
        """Append this question and its answer to the stored conversation."""
        from ragkit.conversation import Turn

        assert self.conversation_id is not None
        turn = Turn(answer.question, answer.text, [c.to_dict() for c in answer.citations], standalone)
        self.store().append(self.conversation_id, self.owner, turn)
        answer.conversation_id = self.conversation_id


_default_stores: dict[str, ConversationStore] = {}
_default_stores_lock = threading.Lock()


def default_conversations() -> ConversationStore:
    """The conversation store of the current store home, opened once per process (not once per ask)."""
    from ragkit.collection.layout import HomeLayout
    from ragkit.conversation import ConversationStore

    path = HomeLayout.of(None).conversations
    with _default_stores_lock:
        store = _default_stores.get(str(path))
        if store is None:
            store = _default_stores[str(path)] = ConversationStore(path)
        return store


def _load_all(models: list[Preloadable]) -> None:
    for model in models:
        model.load()


async def _call(sync: bool, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``: directly in sync mode, in a worker thread otherwise."""
    if sync:
        return function(*args)
    return await asyncio.to_thread(function, *args)


@dataclass(slots=True)
class _Run:
    """State of one ask while it runs."""

    question: str
    started: float = field(default_factory=time.perf_counter)
    retrieve_from: float = 0.0
    """When retrieval started (after any model load); 0: at ``started``."""
    timings: dict[str, float] = field(default_factory=dict)
    trace: list[StageTrace] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    history: list[Message] = field(default_factory=list)
    instructions: str | None = None
    standalone: str | None = None
    """The question a ``condense`` stage made standalone (``None``: the question as asked)."""

    def mark(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = now - since
        return now

    def absorb(self, state: QueryState) -> None:
        """Take the finished query state's trace, queries and per-stage timings (and its standalone question)."""
        self.trace = list(state.trace)
        self.queries = list(state.queries)
        if state.question != self.question:
            self.standalone = state.question
        for entry in state.trace:
            key = f"stage:{entry.stage}"
            self.timings[key] = self.timings.get(key, 0.0) + entry.seconds


class RagPipeline:
    """Query stages, then context assembly, generation and citations: the RAG pipeline.

    The stages before generation (query transforms, retrievers, fusion,
    rerankers, context shapers) are the pipeline's :attr:`query`, a
    :class:`~ragkit.query.QueryPipeline` built from ``config.stages`` (or,
    without stages, the one retriever of ``config.retrieval``). Every answer
    carries the trace of each stage.

    Args:
        config: The pipeline's settings (default: the built-in defaults,
            which match ``pipelines/basic.yaml``).
        generator: A generator object to use instead of building the one
            named in ``config.generator``.
        name: The name reported in answers and metrics.

    """

    def __init__(
        self, config: PipelineConfig | None = None, generator: Generator | None = None, name: str = "basic"
    ) -> None:
        self.config = config or PipelineConfig()
        self.name = name
        self._generator = generator
        self.query = QueryPipeline.from_configs(
            self.config.stage_configs(),
            top_k=self.config.retrieval.top_k,
            name=name,
            context=PipelineContext(self.config.generator),
            where=f"pipeline {name!r}: stages",
        )
        self.default_mode = self.config.retrieval.mode if self.config.stages else None

    @classmethod
    def load(cls, name_or_path: str = "basic", generator: Generator | None = None) -> RagPipeline:
        """The pipeline saved as ``pipelines/<name>.yaml`` (or at a YAML path)."""
        name = name_or_path.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
        return cls(load_pipeline_config(name_or_path), generator=generator, name=name)

    @property
    def has_generator(self) -> bool:
        """Whether the generator is built (or was given) already."""
        return self._generator is not None

    @property
    def generator(self) -> Generator:
        """The generator (built from the config on first use, shared per process)."""
        if self._generator is None:
            self._generator = shared_generator(self.config.generator)
        return self._generator

    # -- stages --------------------------------------------------------------------------

    def check_question(self, question: str) -> str:
        """``question`` stripped, or an :class:`InputError` when it is empty or too long."""
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty")
        limit = self.config.answer.max_question_chars
        if len(question) > limit:
            raise InputError(
                f"the question is {len(question):,} characters long; the limit is {limit:,} "
                "(pipeline setting answer.max_question_chars)"
            )
        return question.strip()

    def request(
        self,
        question: str,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        history: list[Message] | None = None,
    ) -> QueryRequest:
        """The query request of one question (checked), with the pipeline's default mode."""
        chosen = mode or self.default_mode
        options = {"mode": chosen} if chosen else {}
        return QueryRequest(self.check_question(question), top_k, filters, list(history or []), options)

    def search(
        self,
        question: str,
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        history: list[Message] | None = None,
    ) -> SearchResult:
        """The stages before generation: the hits handed to the generator, with each stage's trace."""
        chosen = mode or self.default_mode
        return self.query.search(self.check_question(question), collection, top_k, filters, chosen, history)

    def search_many(
        self,
        questions: list[str],
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
    ) -> list[SearchResult]:
        """Batch form of :meth:`search`: each stage handles every question at once."""
        checked = [self.check_question(q) for q in questions]
        return self.query.search_many(checked, collection, top_k, filters, mode or self.default_mode)

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
        chosen = mode or self.default_mode
        return await self.query.asearch(self.check_question(question), collection, top_k, filters, chosen, history)

    def retrieve(
        self,
        question: str,
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
    ) -> list[Hit]:
        """The hits that clear the stages' thresholds, best first (:meth:`search` without the trace)."""
        return self.search(question, collection, top_k, filters, mode).hits

    def prepare(
        self,
        question: str,
        hits: list[Hit],
        history: list[Message] | None = None,
        instructions: str | None = None,
    ) -> PreparedPrompt:
        """Number the hits as blocks, keep those that fit the token budget, and build the messages.

        Blocks are taken best first; one that does not fit is skipped (a
        smaller one after it may still fit). If even the best block does not
        fit, it is shortened to the budget rather than dropped. ``history``
        (earlier turns) goes between the system message and the question,
        fitted to ``context.history_tokens``; ``instructions`` are appended to
        the system message.
        """
        generator = self.generator
        template = self.config.prompt
        suggested = getattr(generator, "suggested_user_prompt", None)
        if suggested and "user" not in template.model_fields_set:  # the config left the user message to the model
            template = template.model_copy(update={"user": suggested})
        answer_tokens = self.config.answer.max_tokens
        fitted = self._fit_history(history) if history else None

        def build(context: str) -> list[Message]:
            system, user = template.messages(question, context)
            if instructions:
                system = Message("system", f"{system.content}\n\n{INSTRUCTIONS_HEADER}\n{instructions.strip()}")
            return [system, *(fitted.messages if fitted else []), user]

        bare = generator.count_message_tokens(build(""))
        room = generator.context_window - answer_tokens - bare
        if room < 16:
            raise InputError(
                f"the question takes {bare:,} tokens of the prompt; with {answer_tokens} tokens kept for the "
                f"answer, the generator's {generator.context_window:,}-token context window leaves no room "
                "for sources"
            )
        budget = min(self.config.context.max_tokens, room)
        separator = generator.count_tokens(_BLOCK_SEPARATOR)
        blocks: list[str] = []
        used: list[Hit] = []
        spent = 0
        for hit in hits:
            block = format_block(len(used) + 1, hit, neutralise=template.neutralise_tags)
            cost = generator.count_tokens(block) + separator
            if spent + cost > budget:
                if used:
                    continue
                block = self._shorten(len(used) + 1, hit, budget - separator, template.neutralise_tags)
                cost = generator.count_tokens(block) + separator
            blocks.append(block)
            used.append(hit)
            spent += cost
        messages = build(_BLOCK_SEPARATOR.join(blocks))
        trace = None
        if fitted is not None:
            trace = StageTrace("history", "shape", calls=list(fitted.calls))
            trace.notes.append(
                f"{fitted.kept_turns} recent turn(s) in the prompt ({fitted.tokens} tokens)"
                + (f"; {fitted.dropped} earlier turn(s) summarised" if fitted.summary else "")
                + (f"; {fitted.dropped} earlier turn(s) left out ({fitted.note})" if fitted.note else "")
            )
        count = generator.count_message_tokens(messages)
        return PreparedPrompt(messages, used, len(hits) - len(used), count, trace)

    def _fit_history(self, history: list[Message]) -> FittedHistory:
        """The most recent turns within ``context.history_tokens``, older ones summarised by the generator."""
        from ragkit.conversation import HistorySummariser, fit_history

        budget = self.config.context.history_tokens
        summariser = HistorySummariser(self.generator) if self.config.context.summarise_history else None
        return fit_history(history, budget, self.generator.count_tokens, summariser)

    def _shorten(self, number: int, hit: Hit, budget: int, neutralise: bool = True) -> str:
        text = hit.chunk.text
        low, high = 0, len(text)
        while low < high:  # the longest prefix whose block fits
            middle = (low + high + 1) // 2
            if self.generator.count_tokens(format_block(number, hit, text[:middle], neutralise=neutralise)) <= budget:
                low = middle
            else:
                high = middle - 1
        return format_block(number, hit, text[:low], neutralise=neutralise)

    def _options(self, options: GenerationOptions | None) -> GenerationOptions:
        settings = self.config.answer
        defaults = GenerationOptions(max_tokens=settings.max_tokens, temperature=settings.temperature)
        return (options or GenerationOptions()).merged(defaults)

    def _answer(
        self,
        run: _Run,
        text: str,
        prepared: PreparedPrompt | None,
        usage: Usage | None,
        finish: FinishReason,
    ) -> Answer:
        hits = prepared.hits if prepared else []
        citations, dropped = resolve_citations(text, hits)
        settings = self.config.citations
        if not citations and hits and settings.infer_when_missing:
            citations = infer_citations(text, hits, settings.min_overlap)
        if prepared is not None and (usage is None or usage.prompt_tokens == 0):
            completion = usage.completion_tokens if usage else 0
            usage = Usage(prepared.prompt_tokens, completion or self.generator.count_tokens(text))
        run.timings["total"] = time.perf_counter() - run.started
        model = self.generator.model_name if prepared is not None else ""
        trace = list(run.trace)
        if prepared is not None:
            used = usage or Usage()
            call = ModelCall(model, used.prompt_tokens, used.completion_tokens, run.timings.get("generate", 0.0))
            trace.append(StageTrace("generate", "generate", run.timings.get("generate", 0.0), calls=[call]))
        return Answer(
            question=run.question,
            text=text,
            citations=citations,
            hits=hits,
            dropped_citations=dropped,
            grounded=bool(citations),  # a cited or inferred source: never with no citations
            usage=usage or Usage(),
            timings=dict(run.timings),
            model=model,
            pipeline=self.name,
            finish_reason=finish,
            skipped_hits=prepared.skipped if prepared else 0,
            trace=trace,
            queries=list(run.queries),
        )

    # -- the whole pipeline ------------------------------------------------------------------

    def ask(
        self,
        question: str,
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        options: GenerationOptions | None = None,
        history: list[Message] | None = None,
        *,
        instructions: str | None = None,
        conversation_id: str | None = None,
        owner: str | None = None,
        conversations: ConversationStore | None = None,
    ) -> Answer:
        """Answer ``question`` from ``collection``, with citations.

        ``history`` is the conversation so far (oldest first): a ``condense``
        stage makes a follow-up standalone from it, and its most recent turns
        (``context.history_tokens``; older ones summarised) go into the prompt.
        ``instructions`` are the caller's own (an OpenAI client's system
        message), added to the system prompt. ``conversation_id`` continues a
        stored conversation of ``owner`` (``None``: the local user) in
        ``conversations`` (default: ``<home>/conversations.sqlite``): its
        history is loaded and this turn appended.
        """
        extras = AskExtras(instructions, conversation_id, owner, conversations)
        events = self.stream(question, collection, top_k, filters, mode, options, history, extras=extras)
        with contextlib.closing(events):  # the stream's ragkit.ask span ends with the answer
            for event in events:
                if event.answer is not None:
                    return event.answer
        raise AssertionError("the stream ended without an answer")  # pragma: no cover

    def stream(
        self,
        question: str,
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        options: GenerationOptions | None = None,
        history: list[Message] | None = None,
        *,
        extras: AskExtras | None = None,
    ) -> EventStream[AskEvent, None, None]:
        """The answer as events: ``retrieval``, ``token``/``citation``…, then ``answer``.

        Closing the iterator early stops the generator. ``extras``: see :meth:`ask`.
        """
        request = self.request(question, top_k, filters, mode, history)
        events = iterate_now(self._events(request, collection, options, sync=True, extras=extras))
        yield from tracing.ask_events(self.name, request.question, collection.name, events)

    def ask_with_hits(self, question: str, hits: list[Hit], options: GenerationOptions | None = None) -> Answer:
        """Answer ``question`` from ``hits`` retrieved already (best first, e.g. by :meth:`retrieve`).

        The rest of :meth:`ask`: the blocks are assembled under the token
        budget, the generator answers and the citations are resolved; no
        hits gives the pipeline's no-answer text without a model call. The
        answer's ``timings`` have no ``retrieve`` entry.
        """
        request = QueryRequest(self.check_question(question))
        for event in iterate_now(self._events(request, None, options, sync=True, hits=hits)):
            if event.answer is not None:
                return event.answer
        raise AssertionError("the stream ended without an answer")  # pragma: no cover

    async def aask(
        self,
        question: str,
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        options: GenerationOptions | None = None,
        history: list[Message] | None = None,
        *,
        instructions: str | None = None,
        conversation_id: str | None = None,
        owner: str | None = None,
        conversations: ConversationStore | None = None,
    ) -> Answer:
        """Async twin of :meth:`ask`."""
        extras = AskExtras(instructions, conversation_id, owner, conversations)
        events = self.astream(question, collection, top_k, filters, mode, options, history, extras=extras)
        try:  # the stream's ragkit.ask span ends with the answer
            async for event in events:
                if event.answer is not None:
                    return event.answer
        finally:
            await events.aclose()
        raise AssertionError("the stream ended without an answer")  # pragma: no cover

    async def astream(
        self,
        question: str,
        collection: Collection,
        top_k: int | None = None,
        filters: FilterLike = None,
        mode: str | None = None,
        options: GenerationOptions | None = None,
        history: list[Message] | None = None,
        *,
        extras: AskExtras | None = None,
    ) -> AsyncGenerator[AskEvent, None]:
        """Async twin of :meth:`stream`: the stages run in a worker thread, generation streams.

        Cancelling the consumer (a client that disconnects) stops the generator.
        """
        request = self.request(question, top_k, filters, mode, history)
        events = self._events(request, collection, options, sync=False, extras=extras)
        traced = tracing.ask_events_async(self.name, request.question, collection.name, events)
        try:
            async for event in traced:
                yield event
        finally:
            await traced.aclose()

    # -- the one event loop, run directly (sync) or on an event loop (async) ---------------------

    async def _events(
        self,
        request: QueryRequest,
        collection: Collection | None,
        options: GenerationOptions | None,
        sync: bool,
        hits: list[Hit] | None = None,
        extras: AskExtras | None = None,
    ) -> AsyncGenerator[AskEvent, None]:
        """Every event of one answer. In sync mode nothing here waits for an event loop."""
        extras = extras or AskExtras()
        run = _Run(request.question, instructions=extras.instructions)
        if extras.conversation_id is not None:
            past = await _call(sync, extras.history)
            request.history = [*past, *request.history]
        run.history = list(request.history)
        pending = self.unloaded_models(collection)
        if pending:  # the first answer in a process: the load is its own timing, not part of retrieve
            await _call(sync, _load_all, pending)
            run.retrieve_from = run.mark("load", run.started)
        if hits is None:
            assert collection is not None
            state = self.query.start(request, collection)
            prepared, since = await self._search_and_prepare(run, state, sync)
        else:
            since = time.perf_counter()
            prepared = await _call(sync, self._prepare_run, run, run.question, hits) if hits else None
            since = run.mark("assemble", since)
        yield AskEvent("retrieval", hits=prepared.hits if prepared else [], trace=list(run.trace))
        if prepared is None:
            text = self.config.answer.no_answer
            yield AskEvent("token", text=text)
            answer = self._answer(run, text, None, None, "stop")
        else:
            tracker = CitationTracker(prepared.hits)
            final = GenerationDelta()
            async for delta in self._deltas(prepared.messages, self._options(options), sync):
                for event in self._on_delta(run, since, tracker, delta, final):
                    yield event
            run.mark("generate", since)
            answer = self._answer(run, tracker.text, prepared, final.usage, _finish(final))
        if extras.conversation_id is not None:
            await _call(sync, extras.record, answer, run.standalone)
        yield AskEvent("answer", answer=answer)

    def unloaded_models(self, collection: Collection | None) -> list[Preloadable]:
        """The collection's embedder and this pipeline's generator when their models are not loaded yet.

        What the first answer in a process waits for; ``ragkit ask`` says "loading…" on a terminal when
        this is not empty, and the answer's ``timings["load"]`` is the time it took.
        """
        candidates: list[object] = [self.generator]
        if collection is not None:
            candidates.insert(0, collection.embedder)
        return [c for c in candidates if isinstance(c, Preloadable) and not c.is_loaded]

    async def _search_and_prepare(
        self, run: _Run, state: QueryState, sync: bool
    ) -> tuple[PreparedPrompt | None, float]:
        """Run the stages and assemble the prompt (``None``: nothing relevant), timing both; one thread hop."""
        if not sync and not self.query.native_async:
            return await asyncio.to_thread(run_now, self._search_and_prepare(run, state, True))
        await self.query.execute([state], sync)
        run.absorb(state)
        since = run.mark("retrieve", run.retrieve_from or run.started)
        hits = state.hits
        prepared = await _call(sync, self._prepare_run, run, state.question, hits) if hits else None
        return prepared, run.mark("assemble", since)

    def _prepare_run(self, run: _Run, question: str, hits: list[Hit]) -> PreparedPrompt:
        """:meth:`prepare` with the run's history and instructions; the history's fitting goes in the trace."""
        prepared = self.prepare(question, hits, history=run.history, instructions=run.instructions)
        if prepared.history is not None:
            run.trace.append(prepared.history)
        return prepared

    async def _deltas(
        self, messages: list[Message], options: GenerationOptions, sync: bool
    ) -> AsyncGenerator[GenerationDelta, None]:
        """The generator's stream: its sync iterator in sync mode, its async one otherwise; closed on exit."""
        chat = tracing.start_chat(self.generator.model_name, messages, options)
        failed: BaseException | None = None
        try:
            if sync:
                deltas = self.generator.stream(messages, options)
                try:
                    for delta in deltas:
                        if chat is not None:
                            chat.feed(delta)
                        yield delta
                finally:
                    close = getattr(deltas, "close", None)
                    if close is not None:
                        close()
                return
            adeltas = self.generator.astream(messages, options)
            try:
                async for delta in adeltas:
                    if chat is not None:
                        chat.feed(delta)
                    yield delta
            finally:
                aclose = getattr(adeltas, "aclose", None)
                if aclose is not None:
                    await aclose()
        except BaseException as exc:
            failed = exc
            raise
        finally:
            if chat is not None:
                chat.end(error=failed)

    def _on_delta(
        self, run: _Run, since: float, tracker: CitationTracker, delta: GenerationDelta, final: GenerationDelta
    ) -> list[AskEvent]:
        events = []
        if delta.text:
            if "first_token" not in run.timings:
                run.mark("first_token", since)
            events.append(AskEvent("token", text=delta.text))
            events.extend(AskEvent("citation", citation=c) for c in tracker.feed(delta.text))
        if delta.finish_reason is not None:
            final.finish_reason = delta.finish_reason
        if delta.usage is not None:
            final.usage = delta.usage
        return events


def _finish(final: GenerationDelta) -> FinishReason:
    return final.finish_reason or "stop"
