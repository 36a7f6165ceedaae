"""One agent run: the loop of model steps, tool calls, approvals, caps and the final answer.

:class:`AgentRun` is the engine behind :class:`ragkit.agents.agent.Agent`
(``run``, ``stream``, ``resume``): it holds one run's messages, steps, tool
calls and numbered sources, speaks native tool calls or ReAct to the model
(see the agent module's docstring), and yields the run's events, the last
being ``done``. It is internal: use :class:`~ragkit.agents.agent.Agent`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import re
import time
from collections.abc import Generator as Coroutine
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from ragkit import tracing
from ragkit.agents import react
from ragkit.agents.events import AgentEvent
from ragkit.agents.native import NativeCall, assistant_tool_calls, calls_in_text, read_tool_calls
from ragkit.agents.state import open_state, sign_state
from ragkit.agents.tools import ToolError, ToolOutput
from ragkit.agents.trace import AgentResult, AgentStep, Cap, PendingCall, Status, ToolCallRecord
from ragkit.errors import ConflictError, InputError
from ragkit.generation.base import (
    Generation,
    GenerationOptions,
    Generator,
    Message,
    Usage,
    merge_tool_call_fragments,
)
from ragkit.rag.answer import Citation
from ragkit.rag.citations import MARKER, find_markers, infer_citations
from ragkit.schema import Hit

Decision = str | bool | Mapping[str, Any]
"""A decision on a pending call: ``"approve"``/``"deny"``, a bool, or ``{"decision": "deny", "reason": ...}``."""


if TYPE_CHECKING:
    from ragkit.agents.agent import Agent

FORCED_INSTRUCTIONS = (
    "Answer the user's question from the tool observations below; no more tools can be used. "
    "Cite numbered sources as [n]. If the observations are not enough, say what is missing."
)
_EMPTY_REPLY = "the reply was empty"
_UNREADABLE_CALL = (
    'its <tool_call> block could not be read; write <tool_call>{"name": <tool>, "arguments": {...}}</tool_call>'
)


@dataclasses.dataclass(slots=True)
class _Source:
    citation: Citation
    hit: Hit | None
    key: str


class AgentRun:
    """One run's state and loop. Events come from :meth:`events`; the last is ``done``."""

    def __init__(self, agent: Agent, question: str, mode: Literal["native", "react"]) -> None:
        self.agent = agent
        self.question = question
        self.mode: Literal["native", "react"] = mode
        self.messages: list[Message] = []
        self.steps: list[AgentStep] = []
        self.usage = Usage()
        self.model_steps = 0
        self.tool_calls = 0
        self.errors: dict[str, int] = {}
        self.disabled: set[str] = set()
        self.sources: list[_Source] = []
        self.source_keys: dict[str, int] = {}
        self.repairing = False
        self.elapsed = 0.0
        self.model_s = 0.0
        self.tool_s = 0.0
        self.started = time.perf_counter()
        self.resume_step: AgentStep | None = None
        self.approved: set[str] = set()
        self.denied: dict[str, str] = {}
        self.fell_back = False
        self.history: list[Message] = []
        self.paused: Iterator[AgentEvent] | None = None

    # -- starting -------------------------------------------------------------------------

    @classmethod
    def start(cls, agent: Agent, question: str, history: Sequence[Message] | None) -> AgentRun:
        """A new run of ``question`` (after ``history``, earlier turns of the conversation)."""
        if not isinstance(question, str) or not question.strip():
            raise InputError("agent: the question is empty")
        run = cls(agent, question.strip(), agent.resolved_mode)
        run.history = [m if isinstance(m, Message) else Message.from_dict(m) for m in history or []]
        run.messages = run.opening()
        return run

    def opening(self) -> list[Message]:
        """The system message with the agent's instructions for this run's protocol."""
        return [
            Message("system", self.agent.instructions(self.mode)),
            *self.history,
            Message("user", self.question),
        ]

    @classmethod
    def restore(cls, agent: Agent, token: str, decisions: Mapping[str, Decision]) -> AgentRun:
        """The run a signed approval ``token`` paused, with a decision for each of its pending calls."""
        payload = open_state(token, agent._key, agent.state_ttl_s)
        names = sorted(payload.get("tools") or [])
        if names != sorted(agent._by_name):
            raise InputError(f"agent state: made by an agent with other tools ({', '.join(names) or 'none'})")
        if payload.get("agent") != agent.fingerprint():
            raise InputError("agent state: made by another agent (its model, tools or instructions differ)")
        run = cls(agent, str(payload["question"]), payload["mode"])
        run.messages = [Message.from_dict(m) for m in payload["messages"]]
        run.steps = [AgentStep.from_dict(s) for s in payload["steps"]]
        counters = payload["counters"]
        run.usage = Usage(int(counters["prompt_tokens"]), int(counters["completion_tokens"]))
        run.model_steps = int(counters["model_steps"])
        run.tool_calls = int(counters["tool_calls"])
        run.elapsed = float(counters["seconds"])
        run.model_s = float(counters["model_seconds"])
        run.tool_s = float(counters["tool_seconds"])
        run.errors = {str(k): int(v) for k, v in (payload.get("errors") or {}).items()}
        run.disabled = set(payload.get("disabled") or [])
        for source in payload.get("sources") or []:
            hit = Hit.from_dict(source["hit"]) if source.get("hit") else None
            run._add_source(Citation(**source["citation"]), hit, source["key"])
        pending = [str(p) for p in payload.get("pending") or []]
        given = {str(k): v for k, v in decisions.items()}
        missing = [p for p in pending if p not in given]
        unknown = [k for k in given if k not in pending]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"no decision for {', '.join(missing)}")
            if unknown:
                parts.append(f"no pending call {', '.join(unknown)}")
            raise InputError(f"agent resume: {'; '.join(parts)} (pending: {', '.join(pending)})")
        for call_id, decision in given.items():
            approve, reason = _decision(call_id, decision)
            if approve:
                run.approved.add(call_id)
            else:
                run.denied[call_id] = reason
        # claimed last: a request refused above leaves the state usable; one that passes uses it up
        issued = float(payload.get("issued_at") or time.time())
        if not agent.ledger.claim(str(payload["nonce"]), issued + agent.state_ttl_s):
            raise ConflictError(
                "agent state: this paused run was resumed already (a state resumes once, so approved calls "
                "never run twice); resume from the state the later pause returned"
            )
        run.resume_step = run.steps[-1]
        return run

    # -- the loop -------------------------------------------------------------------------

    def events(self, stream_tokens: bool) -> Iterator[AgentEvent]:
        """The run's events until ``done`` (``token`` events too when ``stream_tokens``)."""
        self.started = time.perf_counter()
        if self.resume_step is not None:
            step = self.resume_step
            self.resume_step = None
            yield from self._finish_calls(step, step.calls, decided=True)
            if self.paused is not None:
                yield from self.paused
                return
        while True:
            cap = self._cap()
            if cap is not None:
                yield from self._forced(cap, stream_tokens)
                return
            number = len(self.steps) + 1
            yield AgentEvent("step", {"number": number})
            begun = time.perf_counter()
            generation = yield from self._generate(number, stream_tokens)
            if generation is None:  # an auto-mode generator refused tools: restarted in ReAct
                continue
            self.model_steps += 1
            if self.mode == "native":
                done = yield from self._native_step(number, generation, begun)
            else:
                done = yield from self._react_step(number, generation, begun)
            if self.paused is not None:
                yield from self.paused
                return
            if done is not None:
                yield from done
                return

    def _options(self, tools: bool) -> GenerationOptions:
        limit = self.agent.step_max_tokens
        if tools and self.agent.max_tokens is not None:  # the forced answer may spend its own step's tokens
            limit = max(1, min(limit, self.agent.max_tokens - self.usage.total_tokens))
        specs = [t.spec() for t in self.agent.tools if t.name not in self.disabled] if tools else None
        stop = react.STOP_SEQUENCES if tools and self.mode == "react" else None
        native_tools = specs if self.mode == "native" and specs else None
        return GenerationOptions(max_tokens=limit, temperature=self.agent.temperature, stop=stop, tools=native_tools)

    def _generate(
        self, number: int, stream_tokens: bool, messages: list[Message] | None = None, tools: bool = True
    ) -> Coroutine[AgentEvent, None, Generation | None]:
        """One model call (tokens streamed as events); returns the generation (``None`` after a fallback)."""
        generator = self.agent.generator
        prompt = self.messages if messages is None else messages
        options = self._options(tools)
        begun = time.perf_counter()
        chat = tracing.start_chat(generator.model_name, prompt, options)
        try:
            if stream_tokens:
                generation = yield from self._streamed(generator, prompt, options, number, final_only=tools)
            else:
                generation = generator.generate(prompt, options)
        except BaseException as exc:
            tracing.end_chat(chat, error=exc)
            if not isinstance(exc, InputError):
                raise
            if (
                self.agent.mode == "auto"
                and self.mode == "native"
                and not self.steps
                and not self.fell_back
                and "tool" in str(exc).lower()
            ):
                self.fell_back = True
                self.mode = "react"
                self.messages = self.opening()
                self.model_s += time.perf_counter() - begun
                return None
            raise
        self.model_s += time.perf_counter() - begun
        usage = generation.usage
        if not usage.total_tokens:
            usage = Usage(generator.count_message_tokens(prompt), generator.count_tokens(generation.text))
            generation.usage = usage
        tracing.end_chat(chat, generation)
        self.usage = Usage(
            self.usage.prompt_tokens + usage.prompt_tokens, self.usage.completion_tokens + usage.completion_tokens
        )
        return generation

    def _streamed(
        self, generator: Generator, prompt: list[Message], options: GenerationOptions, number: int, final_only: bool
    ) -> Coroutine[AgentEvent, None, Generation]:
        parts: list[str] = []
        finish: Any = "stop"
        usage = Usage()
        calls: list[dict[str, Any]] = []
        sent = 0
        watch_final = final_only and self.mode == "react"
        for delta in generator.stream(prompt, options):
            if delta.text:
                parts.append(delta.text)
                if watch_final:
                    text = "".join(parts)
                    if sent == 0:
                        match = react._FINAL.search(text)
                        if match is not None:
                            sent = match.end()
                    if sent:
                        piece = text[sent:]
                        if piece:
                            sent = len(text)
                            yield AgentEvent("token", {"text": piece, "step": number})
                else:
                    yield AgentEvent("token", {"text": delta.text, "step": number})
            if delta.finish_reason is not None:
                finish = delta.finish_reason
            if delta.usage is not None:
                usage = delta.usage
            if delta.tool_calls:
                merge_tool_call_fragments(calls, delta.tool_calls)
        return Generation("".join(parts), finish, usage, generator.model_name, calls or None)

    # -- native -----------------------------------------------------------------------

    def _native_step(
        self, number: int, generation: Generation, begun: float
    ) -> Coroutine[AgentEvent, None, Iterator[AgentEvent] | None]:
        calls = read_tool_calls(generation.tool_calls, number)
        if not calls and ("<tool_call>" in generation.text or generation.text.lstrip().startswith(("{", "```"))):
            calls = calls_in_text(generation.text, number, set(self.agent._by_name))
            if calls:  # the server did not parse its model's tool-call text: these are the calls, not a thought
                generation.text = ""
        thought = generation.text.strip()
        if not calls and "<tool_call>" in thought:  # a call the model began but nobody could read
            return (yield from self._repair(number, generation, _UNREADABLE_CALL, begun))
        if not calls:
            if thought:
                step = AgentStep(number, "final", text=generation.text, usage=generation.usage)
                return self._final(step, thought, "completed", None, begun)
            return (yield from self._repair(number, generation, _EMPTY_REPLY, begun))
        self.repairing = False
        if thought:
            yield AgentEvent("thought", {"text": thought, "step": number})
        self.messages.append(Message("assistant", generation.text, tool_calls=assistant_tool_calls(calls)))
        records = [self._native_record(call) for call in calls]
        step = AgentStep(number, "tools", thought=thought, text=generation.text, calls=records, usage=generation.usage)
        step.model_seconds = time.perf_counter() - begun
        self.steps.append(step)
        yield from self._finish_calls(step, records, decided=False)
        return None

    def _native_record(self, call: NativeCall) -> ToolCallRecord:
        record = ToolCallRecord(call.id, call.name, call.arguments, call.raw_arguments, status="pending")
        if call.error is not None:
            self._reject(record, f"{call.name or 'tool call'}: {call.error}")
        else:
            self._check_tool(record)
        return record

    # -- ReAct -------------------------------------------------------------------------

    def _react_step(
        self, number: int, generation: Generation, begun: float
    ) -> Coroutine[AgentEvent, None, Iterator[AgentEvent] | None]:
        parsed = react.parse_react(generation.text)
        if parsed.thought:
            yield AgentEvent("thought", {"text": parsed.thought, "step": number})
        if parsed.kind == "final":
            step = AgentStep(number, "final", thought=parsed.thought, text=generation.text, usage=generation.usage)
            return self._final(step, parsed.answer, "completed", None, begun)
        if parsed.kind == "error":
            return (yield from self._repair(number, generation, parsed.error, begun))
        names = [t.name for t in self.agent.tools]
        name = react.match_tool(parsed.tool, names) or parsed.tool
        tool = self.agent.tool(name)
        record = ToolCallRecord(f"call_{number}_0", name, None, parsed.tool_input or "", status="pending")
        if tool is not None and name not in self.disabled:
            if parsed.arguments is not None:
                record.arguments = parsed.arguments
            else:
                try:
                    record.arguments = react.parse_arguments(parsed.tool_input, tool.parameters)
                except ValueError as exc:
                    problem = str(exc)
                    if parsed.tool_input is None:
                        problem = f"there was no 'Action Input:' line for {name} ({exc})"
                    return (yield from self._repair(number, generation, problem, begun))
        self.repairing = False
        self._check_tool(record)
        self.messages.append(Message("assistant", parsed.text))
        step = AgentStep(number, "tools", thought=parsed.thought, text=generation.text, calls=[record])
        step.usage = generation.usage
        step.model_seconds = time.perf_counter() - begun
        self.steps.append(step)
        yield from self._finish_calls(step, [record], decided=False)
        return None

    def _repair(
        self, number: int, generation: Generation, error: str, begun: float
    ) -> Coroutine[AgentEvent, None, Iterator[AgentEvent] | None]:
        """The one repair prompt after an unreadable reply, or the clean failure when it was already tried."""
        if self.repairing:
            step = AgentStep(number, "failed", text=generation.text, error=error, usage=generation.usage)
            answer = (
                "I could not complete this: the model's replies did not follow the expected format, "
                f"even after one correction ({error})."
            )
            return self._final(step, answer, "failed", None, begun, error=f"unreadable model reply: {error}")
        self.repairing = True
        step = AgentStep(number, "repair", text=generation.text, error=error, usage=generation.usage)
        step.model_seconds = time.perf_counter() - begun
        step.seconds = step.model_seconds
        self.steps.append(step)
        specs = [t.spec() for t in self.agent.tools if t.name not in self.disabled]
        if self.mode == "react":
            prompt = react.repair_prompt(error, specs)
        else:
            prompt = f"Your last reply could not be used: {error}. Answer the question, or call one of the tools."
        self.messages.append(Message("assistant", generation.text or "(no reply)"))
        self.messages.append(Message("user", prompt))
        yield AgentEvent("thought", {"text": f"(reply could not be used: {error}; asking once more)", "step": number})
        return None

    # -- tools --------------------------------------------------------------------------

    def _check_tool(self, record: ToolCallRecord) -> None:
        """Mark calls that cannot run (unknown or disabled tool) as errors, with an observation for the model."""
        if record.status != "pending":
            return
        tool = self.agent.tool(record.tool)
        available = [t.name for t in self.agent.tools if t.name not in self.disabled]
        if tool is None:
            listed = ", ".join(available) or "none"
            self._count_error("(unknown)")
            self._reject(record, f"there is no tool named {record.tool!r}; the tools are: {listed}")
        elif record.tool in self.disabled:
            listed = ", ".join(available) or "none"
            message = f"{record.tool}: disabled after repeated errors; use another tool ({listed}) or answer"
            self._reject(record, message)
        elif not self.agent.repeat_calls and (earlier := self._earlier_run_of(record)) is not None:
            # not a tool error: the tool stays available, with other arguments
            self._reject(
                record,
                f"{record.tool} was already called with these arguments (step {earlier}) and its result is above; "
                "do not repeat it: use that result, call a tool with other arguments, or give your final answer",
            )

    def _earlier_run_of(self, record: ToolCallRecord) -> int | None:
        """The step in which the same tool already ran with the same arguments without error, if one did."""
        if record.arguments is None:
            return None
        key = _call_key(record.tool, record.arguments)
        for step in self.steps:
            for call in step.calls:
                if call.status == "ok" and call.arguments is not None and _call_key(call.tool, call.arguments) == key:
                    return step.number
        return None

    def _reject(self, record: ToolCallRecord, message: str) -> None:
        record.status = "error"
        record.error = message
        record.observation = record.shown = f"Error: {message}"

    def _count_error(self, name: str) -> int:
        self.errors[name] = self.errors.get(name, 0) + 1
        return self.errors[name]

    def _finish_calls(self, step: AgentStep, records: list[ToolCallRecord], decided: bool) -> Iterator[AgentEvent]:
        """Ask for approval, run what may run (in parallel), send the observations back."""
        for record in records:
            if not decided:
                data = {"id": record.id, "tool": record.tool, "arguments": record.arguments, "step": step.number}
                yield AgentEvent("tool_call", data)
        waiting = [r for r in records if r.status == "pending" and self._needs_approval(r)]
        if waiting and not decided:
            self.paused = self._pause(step, waiting)
            return
        runnable: list[ToolCallRecord] = []
        room = self.agent.max_tool_calls - self.tool_calls
        for record in records:
            if record.status != "pending":
                continue
            if record.id in self.denied:
                reason = self.denied[record.id]
                record.status = "denied"
                record.error = "denied by the user" + (f": {reason}" if reason else "")
                record.observation = record.shown = (
                    f"The user did not allow this call to {record.tool}" + (f": {reason}" if reason else "") + "."
                )
            elif room <= 0:
                record.status = "skipped"
                record.error = f"not run: the tool-call cap ({self.agent.max_tool_calls}) was reached"
                record.observation = record.shown = f"Not run: {record.error}."
            else:
                room -= 1
                runnable.append(record)
        begun = time.perf_counter()
        self._run_tools(runnable)
        step.tool_seconds += time.perf_counter() - begun
        self.tool_calls += len(runnable)
        for record in records:
            yield AgentEvent(
                "observation",
                {
                    "id": record.id,
                    "tool": record.tool,
                    "content": record.shown,
                    "status": record.status,
                    "error": record.error,
                    "sources": record.sources,
                    "step": step.number,
                },
            )
        if self.mode == "native":
            for record in records:
                self.messages.append(Message("tool", record.shown, tool_call_id=record.id))
        else:
            self.messages.append(Message("user", "Observation: " + "\n".join(r.shown for r in records)))
        step.seconds = step.model_seconds + step.tool_seconds

    def _needs_approval(self, record: ToolCallRecord) -> bool:
        tool = self.agent.tool(record.tool)
        return bool(tool is not None and tool.requires_approval)

    def _run_tools(self, records: list[ToolCallRecord]) -> None:
        if len(records) == 1:
            self._run_tool(records[0])
        elif records:
            contexts = [contextvars.copy_context() for _ in records]  # each call's span under this run's span
            with ThreadPoolExecutor(min(len(records), self.agent.max_parallel), "ragkit-agent-tool") as pool:
                list(pool.map(lambda context, record: context.run(self._run_tool, record), contexts, records))
        for record in records:  # counted in call order, so which call disables a tool does not depend on timing
            self.tool_s += record.seconds
            if record.status == "error":
                tool = self.agent.tool(record.tool)
                count = self._count_error(record.tool)
                if tool is not None and count > tool.max_retries and record.tool not in self.disabled:
                    self.disabled.add(record.tool)
                    record.shown += f" ({record.tool} failed {count} times and is now disabled for this run.)"
            elif record.status == "ok":
                self._number_sources(record)

    def _run_tool(self, record: ToolCallRecord) -> None:
        tool = self.agent.tool(record.tool)
        assert tool is not None
        with tracing.tool(record.tool, record.id, record.arguments) as span:
            begun = time.perf_counter()
            try:
                output = tool.call(record.arguments or {})
            except ToolError as exc:
                record.status = "error"
                record.error = str(exc)
                record.observation = record.shown = f"Error: {exc}"
            except Exception as exc:  # a tool bug must not end the run; the model reads it like any failure
                record.status = "error"
                record.error = f"{record.tool}: failed ({type(exc).__name__}: {exc})"
                record.observation = record.shown = f"Error: {record.error}"
            else:
                if not isinstance(output, ToolOutput):
                    output = ToolOutput(content=str(output))
                record.status = "ok"
                record.data = output
            record.seconds = time.perf_counter() - begun
            tracing.record_tool_result(span, record.status, record.error or getattr(record.data, "content", None))

    def _number_sources(self, record: ToolCallRecord) -> None:
        """Give the call's citations their numbers in the run's source list, and rewrite its markers to match."""
        output = record.data
        assert isinstance(output, ToolOutput)
        content = output.content
        mapping: dict[int, int] = {}
        hits_by_chunk = {hit.chunk.id: hit for hit in output.hits}
        citations = list(output.citations)
        if not citations and output.hits:
            citations = [Citation.from_hit(i, hit) for i, hit in enumerate(output.hits, 1)]
        for citation in citations:
            key = f"{citation.chunk_id}|{citation.source}|{citation.row}|{citation.start}"
            number = self.source_keys.get(key)
            if number is None:
                number = self._add_source(citation, hits_by_chunk.get(citation.chunk_id), key)
            mapping[citation.number] = number
            if number not in record.sources:
                record.sources.append(number)
        if mapping:
            content = _renumber(content, mapping)
            if not MARKER.search(content):
                listed = "; ".join(f"[{n}] {self.sources[n - 1].citation.source}" for n in record.sources)
                content += f"\nSources: {listed}"
        record.observation = content
        limit = self.agent.max_observation_chars
        record.shown = content if len(content) <= limit else content[:limit] + f" …[cut: {len(content)} characters]"
        record.data = _jsonable_output(output)

    def _add_source(self, citation: Citation, hit: Hit | None, key: str) -> int:
        number = len(self.sources) + 1
        numbered = dataclasses.replace(citation, number=number, positions=[], inferred=False)
        self.sources.append(_Source(numbered, hit, key))
        self.source_keys[key] = number
        return number

    # -- approvals ----------------------------------------------------------------------

    def _pause(self, step: AgentStep, waiting: list[ToolCallRecord]) -> Iterator[AgentEvent]:
        payload = {
            "agent": self.agent.fingerprint(),
            "question": self.question,
            "mode": self.mode,
            "tools": sorted(self.agent._by_name),
            "messages": [m.to_dict() for m in self.messages],
            "steps": [s.to_dict() for s in self.steps],
            "counters": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "model_steps": self.model_steps,
                "tool_calls": self.tool_calls,
                "seconds": self.elapsed + (time.perf_counter() - self.started),
                "model_seconds": self.model_s,
                "tool_seconds": self.tool_s,
            },
            "errors": self.errors,
            "disabled": sorted(self.disabled),
            "sources": [
                {"citation": s.citation.to_dict(), "hit": s.hit.to_dict() if s.hit else None, "key": s.key}
                for s in self.sources
            ],
            "pending": [r.id for r in waiting],
        }
        token = sign_state(payload, self.agent._key)
        pending = [PendingCall(r.id, r.tool, r.arguments) for r in waiting]
        listed = ", ".join(f"{p.tool}({json.dumps(p.arguments, ensure_ascii=False)})" for p in pending)
        result = self._result(f"Waiting for approval: {listed}", "needs_approval", None)
        result.pending = pending
        result.state = token
        yield AgentEvent("approval_required", {"pending": [p.to_dict() for p in pending], "state": token})
        yield AgentEvent("done", result.to_dict(), result)

    # -- ending -------------------------------------------------------------------------

    def _cap(self) -> Cap | None:
        agent = self.agent
        if self.model_steps >= agent.max_steps:
            return "steps"
        if self.tool_calls >= agent.max_tool_calls:
            return "tool_calls"
        if agent.max_tokens is not None and self.usage.total_tokens >= agent.max_tokens:
            return "tokens"
        if agent.max_seconds is not None and self.elapsed + time.perf_counter() - self.started >= agent.max_seconds:
            return "time"
        return None

    def _forced(self, cap: Cap, stream_tokens: bool) -> Iterator[AgentEvent]:
        """The one answer after a cap: no tools, the observations gathered so far in the prompt."""
        number = len(self.steps) + 1
        yield AgentEvent("step", {"number": number, "forced": cap})
        seen = []
        for call in (c for s in self.steps for c in s.calls):
            arguments = json.dumps(call.arguments, ensure_ascii=False) if call.arguments is not None else ""
            seen.append(f"- {call.tool}({arguments}): {call.shown}")
        observations = "\n".join(seen) or "(no tool was used)"
        budget = self.agent.max_observation_chars * 4
        if len(observations) > budget:
            observations = observations[-budget:]
        prompt = [
            Message("system", FORCED_INSTRUCTIONS),
            Message("user", f"Question: {self.question}\n\nObservations:\n{observations}\n\nAnswer:"),
        ]
        begun = time.perf_counter()
        generation = yield from self._generate(number, stream_tokens, messages=prompt, tools=False)
        assert generation is not None
        text = generation.text.strip()
        if self.mode == "react":  # a model that still writes the protocol: its answer, never an action as text
            parsed = react.parse_react(text)
            text = parsed.answer if parsed.kind == "final" else ("" if parsed.kind == "action" else parsed.text)
            text = re.sub(r"^\s*thought\s*:\s*", "", text.strip(), flags=re.IGNORECASE).strip()
        if not text:
            text = f"I could not complete the answer within the agent's limits (the {_CAP_NAMES[cap]} cap was reached)."
            last = next((c.shown for s in reversed(self.steps) for c in reversed(s.calls) if c.status == "ok"), "")
            if last:
                text += f" The last tool result was: {last[:300]}"
        step = AgentStep(number, "forced", text=generation.text, usage=generation.usage)
        yield from self._final(step, text, "capped", cap, begun)

    def _final(
        self,
        step: AgentStep,
        answer: str,
        status: Status,
        cap: Cap | None,
        begun: float,
        error: str | None = None,
    ) -> Iterator[AgentEvent]:
        step.model_seconds = time.perf_counter() - begun
        step.seconds = step.model_seconds
        self.steps.append(step)
        result = self._result(answer, status, cap, error)
        yield AgentEvent(
            "answer",
            {
                "text": result.answer,
                "citations": [c.to_dict() for c in result.citations],
                "status": status,
                "cap": cap,
            },
        )
        yield AgentEvent("done", result.to_dict(), result)

    def _result(self, answer: str, status: Status, cap: Cap | None, error: str | None = None) -> AgentResult:
        total = self.elapsed + (time.perf_counter() - self.started)
        citations, dropped = self._citations(answer) if status in ("completed", "capped") else ([], [])
        return AgentResult(
            question=self.question,
            answer=answer,
            status=status,
            mode=self.mode,
            citations=citations,
            sources=[s.citation for s in self.sources],
            steps=list(self.steps),
            usage=Usage(self.usage.prompt_tokens, self.usage.completion_tokens),
            timings={
                "total": total,
                "model": self.model_s,
                "tools": self.tool_s,
                "agent": max(0.0, total - self.model_s - self.tool_s),
            },
            cap=cap,
            error=error,
            dropped_citations=dropped,
            model=str(getattr(self.agent.generator, "model_name", "")),
        )

    def _citations(self, answer: str) -> tuple[list[Citation], list[int]]:
        """The sources ``answer`` cites by number; with no marker, those it draws on by word overlap."""
        cited: dict[int, Citation] = {}
        dropped: list[int] = []
        for marker in find_markers(answer):
            if 1 <= marker.number <= len(self.sources):
                citation = cited.get(marker.number)
                if citation is None:
                    base = self.sources[marker.number - 1].citation
                    citation = cited[marker.number] = dataclasses.replace(base, positions=[])
                citation.positions.append(marker.position)
            elif marker.number not in dropped:
                dropped.append(marker.number)
        if cited or not self.sources:
            return list(cited.values()), dropped
        with_hits = [s for s in self.sources if s.hit is not None]
        inferred = infer_citations(answer, [s.hit for s in with_hits if s.hit is not None])
        out = []
        for citation in inferred:
            base = with_hits[citation.number - 1].citation
            out.append(dataclasses.replace(base, positions=list(citation.positions), inferred=True))
        return out, dropped


def _call_key(tool: str, arguments: Mapping[str, Any]) -> str:
    """A call's identity for spotting repeats: the tool and its arguments, key order and spacing ignored."""
    return tool + "\0" + json.dumps(arguments, sort_keys=True, default=str, ensure_ascii=False)


_CAP_NAMES = {"steps": "step", "tool_calls": "tool-call", "tokens": "token", "time": "time"}


def _decision(call_id: str, decision: Decision) -> tuple[bool, str]:
    """``(approved, reason)`` from one decision; an :class:`InputError` for anything else."""
    if isinstance(decision, bool):
        return decision, ""
    if isinstance(decision, str):
        word, reason = decision, ""
    elif isinstance(decision, Mapping):
        word, reason = str(decision.get("decision", "")), str(decision.get("reason") or "")
    else:
        word, reason = "", ""
    word = word.strip().lower()
    if word in ("approve", "approved", "allow", "yes"):
        return True, ""
    if word in ("deny", "denied", "reject", "no"):
        return False, reason
    raise InputError(
        f"agent resume: decision for {call_id} must be 'approve' or 'deny' (or {{'decision': 'deny', 'reason': ...}}), "
        f"got {decision!r}"
    )


def _renumber(content: str, mapping: dict[int, int]) -> str:
    """``[n]`` markers (and JSON ``"number": n`` fields) of a tool's content renumbered into the run's list."""

    def marker(match: re.Match[str]) -> str:
        parts = [p.strip() for p in re.split(r"[,;]", match.group(1))]
        return "[" + ", ".join(str(mapping.get(int(p), int(p))) for p in parts) + "]"

    content = MARKER.sub(marker, content)
    return re.sub(
        r'("number"\s*:\s*)(\d+)', lambda m: m.group(1) + str(mapping.get(int(m.group(2)), int(m.group(2)))), content
    )


def _jsonable_output(output: ToolOutput) -> dict[str, Any]:
    """A tool's output for the trace: content, data, citations and hits as plain JSON."""
    return {
        "content": output.content,
        "data": output.data,
        "citations": [c.to_dict() for c in output.citations],
        "hits": [h.to_dict(i) for i, h in enumerate(output.hits, 1)],
    }
