"""The agent: a model that calls tools until it can answer, under caps, with its trace as data.

:class:`Agent` (role ``agent``, type ``agent``) is built from a generator
config, a list of tools and caps, in Python or from a recipe's ``agent:``
section (:meth:`Agent.load`). It talks to the model one of two ways:

* **native** tool calling (the ``openai`` connector: OpenAI, vLLM, TGI's
  Messages API ...; the local ``transformers`` generator for models whose
  chat template takes tools, such as the packaged Qwen2.5-Coder models):
  the tools go out as ``GenerationOptions.tools`` and the
  assistant's ``tool_calls`` are run, several at once when the model asks
  for several, their results sent back as ``role="tool"`` messages in order;
* the text **ReAct** protocol (:mod:`ragkit.agents.react`) for models
  without tool calling (SmolLM2): ``Thought / Action / Action
  Input``, stopped at ``Observation:``; a reply that cannot be read gets one
  repair prompt, and a second failure ends the run with a clean answer that
  says so (``status="failed"``), never the raw text.

``mode="auto"`` (default) picks native when the generator declares
``supports_tools`` and ReAct otherwise (and also when a generator refuses
the tools on the first call).

Tool errors, argument validation errors and unknown tool names go back to
the model as the observation; a tool that fails more than its
``max_retries`` times is disabled for the rest of the run. Caps: model
steps (``max_steps``, default 8), tool calls, tokens, seconds; when one is
reached, one last answer is generated without tools from the observations
gathered (``status="capped"``, ``cap`` names it). Citations found by
retrieval tools are numbered into one list for the run; the model sees
those numbers in the observations, and its ``[n]`` markers map to them.

A tool with ``requires_approval`` stops the run before it runs:
``status="needs_approval"``, the ``pending`` calls and a signed ``state``;
:meth:`Agent.resume` with a decision per call continues it, in any process
that shares the agent's secret (see :mod:`ragkit.agents.state`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Literal

from ragkit import tracing
from ragkit.agents import react
from ragkit.agents.events import AgentEvent
from ragkit.agents.ledger import PROCESS_LEDGER, ResumeLedger
from ragkit.agents.run import AgentRun, Decision
from ragkit.agents.state import SECRET_ENV, signing_key
from ragkit.agents.tools import Tool, build_tools
from ragkit.agents.trace import AgentResult
from ragkit.component import Component
from ragkit.errors import ConfigError
from ragkit.generation.base import (
    Generator,
    Message,
    iterate_in_thread,
)
from ragkit.registry import register

Mode = Literal["auto", "native", "react"]

NATIVE_INSTRUCTIONS = (
    "You are a helpful assistant. Use the tools to find what you need, then answer the question. "
    "Tool results number their sources like [1]; cite the sources you use with those numbers. "
    "If the tools cannot help, say so plainly."
)
REACT_INSTRUCTIONS = "You are a helpful assistant that answers the question by using tools step by step."


@register("agent", "agent")
class Agent(Component):
    """A tool-using model with caps, a trace, streaming and approvals; see the module docstring.

    Args:
        generator: The model: a generator config (``{"type": "openai", ...}``)
            or a built generator.
        tools: Tool names, tool configs (``{"type": "search", ...}``) or
            :class:`~ragkit.agents.tools.Tool` objects.
        mode: ``auto`` (native when the generator ``supports_tools``, else
            ReAct), ``native`` or ``react``.
        system_prompt: Instructions put first; default: a short
            instruction to use the tools and cite sources (ReAct adds the
            tool list and the format).
        max_steps: Most model calls that may use tools (repairs count).
        max_tool_calls: Most tool calls in one run.
        max_tokens: Most tokens (prompt plus completion, all calls) before
            the answer is forced; ``None``: no cap.
        max_seconds: Most seconds of work before the answer is forced
            (checked between steps; each tool has its own ``timeout_s``);
            ``None``: no cap.
        step_max_tokens: Longest reply of one model call.
        temperature: Sampling temperature of every call.
        max_observation_chars: Observations are cut to this many characters
            for the model (the trace keeps them whole).
        max_parallel: Most tool calls of one reply run at once.
        repeat_calls: Whether a call that already ran without error (the
            same tool, the same arguments) may run again in the same run.
            ``False`` (default): it does not run; the model is told it
            already has that result and should use it, try other arguments
            or answer (small models otherwise loop on one call until a cap).
            Set ``True`` for tools whose answer changes between calls.
        state_ttl_s: How long a paused run's state may be resumed.
        secret: The key that signs paused states; ``None``: the
            ``RAGKIT_AGENT_SECRET`` variable, else a random key per process.
            Never saved in :meth:`to_config`.

    A paused state resumes once: the attribute ``ledger``
    (:mod:`ragkit.agents.ledger`; by default this process's memory, a
    shared SQLite file in ``ragkit serve``) records each resumed state, and
    a second resume of the same state raises
    :class:`~ragkit.errors.ConflictError`.

    """

    def __init__(
        self,
        generator: Mapping[str, Any] | Generator | None = None,
        tools: Sequence[Mapping[str, Any] | str | Tool] = (),
        mode: Mode = "auto",
        system_prompt: str | None = None,
        max_steps: int = 8,
        max_tool_calls: int = 16,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        step_max_tokens: int = 512,
        temperature: float = 0.0,
        max_observation_chars: int = 2000,
        max_parallel: int = 8,
        repeat_calls: bool = False,
        state_ttl_s: float = 86400.0,
        secret: str | None = None,
    ) -> None:
        if mode not in ("auto", "native", "react"):
            raise ConfigError(f"agent option 'mode': expected auto, native or react, got {mode!r}")
        for option, value in (
            ("max_steps", max_steps),
            ("max_tool_calls", max_tool_calls),
            ("step_max_tokens", step_max_tokens),
            ("max_observation_chars", max_observation_chars),
            ("max_parallel", max_parallel),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"agent option {option!r}: expected a whole number of at least 1, got {value!r}")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise ConfigError(
                f"agent option 'max_tokens': expected a whole number of at least 1 or null, got {max_tokens!r}"
            )
        if max_seconds is not None and (not isinstance(max_seconds, (int, float)) or max_seconds <= 0):
            raise ConfigError(f"agent option 'max_seconds': expected a positive number or null, got {max_seconds!r}")
        if isinstance(generator, Mapping) or generator is None:
            from ragkit.generation.shared import shared_generator

            # one model per config per process, shared with the pipelines that use the same config
            self.generator: Generator = shared_generator(dict(generator or {"type": "transformers"}))
        else:
            self.generator = generator
        self.tools: list[Tool] = build_tools(list(tools))
        self._by_name = {t.name: t for t in self.tools}
        self.mode: Mode = mode
        self.system_prompt = system_prompt
        self.max_steps = max_steps
        self.max_tool_calls = max_tool_calls
        self.max_tokens = max_tokens
        self.max_seconds = None if max_seconds is None else float(max_seconds)
        self.step_max_tokens = step_max_tokens
        self.temperature = float(temperature)
        self.max_observation_chars = max_observation_chars
        self.max_parallel = max_parallel
        self.repeat_calls = bool(repeat_calls)
        self.state_ttl_s = float(state_ttl_s)
        self._key = signing_key(secret, SECRET_ENV)
        self.ledger: ResumeLedger = PROCESS_LEDGER

    # -- config -------------------------------------------------------------------------

    def to_config(self) -> dict[str, Any]:
        """The agent's config (the signing ``secret`` is never included)."""
        config = super().to_config()
        config.pop("secret", None)
        return config

    @classmethod
    def load(cls, name_or_path: str, **overrides: Any) -> Agent:
        """The agent of a recipe (``pipelines/agent.yaml`` by the name ``agent``) or YAML file: its ``agent:`` section.

        ``overrides`` replace options of the section (``None`` values are ignored).
        """
        return cls.from_config(load_agent_config(name_or_path, **overrides))

    @property
    def resolved_mode(self) -> Literal["native", "react"]:
        """The protocol a run uses: ``mode``, or for ``auto`` the generator's ``supports_tools``."""
        if self.mode != "auto":
            return self.mode
        return "native" if getattr(self.generator, "supports_tools", False) else "react"

    # -- running ------------------------------------------------------------------------

    def run(self, question: str, history: Sequence[Message] | None = None) -> AgentResult:
        """Answer ``question`` (after the chat ``history``, if any), using the tools; see :class:`AgentResult`."""
        result: AgentResult | None = None
        with tracing.agent(self.generator.model_name, question):
            for event in AgentRun.start(self, question, history).events(stream_tokens=False):
                if event.type == "done":
                    result = event.result
        assert result is not None
        return result

    def stream(self, question: str, history: Sequence[Message] | None = None) -> Iterator[AgentEvent]:
        """The run as :class:`~ragkit.agents.events.AgentEvent` objects, ending with ``done`` (the result)."""
        return AgentRun.start(self, question, history).events(stream_tokens=True)

    def resume(self, state: str, decisions: Mapping[str, Decision]) -> AgentResult:
        """Continue a run paused for approval: ``decisions`` maps each pending call id to a decision.

        A decision is ``"approve"`` (or ``True``), ``"deny"`` (or ``False``),
        or ``{"decision": "deny", "reason": "..."}``; a denied call's
        observation tells the model it was refused, and why. A forged,
        expired or foreign ``state``, or decisions that do not cover exactly
        the pending calls, raise :class:`~ragkit.errors.InputError`.
        """
        result: AgentResult | None = None
        for event in self.resume_stream(state, decisions):
            if event.type == "done":
                result = event.result
        assert result is not None
        return result

    def resume_stream(self, state: str, decisions: Mapping[str, Decision]) -> Iterator[AgentEvent]:
        """:meth:`resume` as a stream of events (the state is checked before the first event)."""
        run = AgentRun.restore(self, state, decisions)
        return run.events(stream_tokens=True)

    async def arun(self, question: str, history: Sequence[Message] | None = None) -> AgentResult:
        """Async twin of :meth:`run` (the run works in a worker thread; the event loop is never blocked)."""
        return await asyncio.to_thread(self.run, question, history)

    async def aresume(self, state: str, decisions: Mapping[str, Decision]) -> AgentResult:
        """Async twin of :meth:`resume`."""
        return await asyncio.to_thread(self.resume, state, decisions)

    async def astream(self, question: str, history: Sequence[Message] | None = None) -> AsyncIterator[AgentEvent]:
        """Async twin of :meth:`stream`; cancelling the consumer stops the run at its next event."""
        async for event in iterate_in_thread(lambda: self.stream(question, history)):
            yield event

    async def aresume_stream(self, state: str, decisions: Mapping[str, Decision]) -> AsyncIterator[AgentEvent]:
        """Async twin of :meth:`resume_stream`; a bad state raises before the first event."""
        run = AgentRun.restore(self, state, decisions)
        async for event in iterate_in_thread(lambda: run.events(stream_tokens=True)):
            yield event

    # -- helpers used by a run ----------------------------------------------------------

    def fingerprint(self) -> str:
        """A digest of what makes this agent this agent (model, mode, instructions, tool definitions), for states."""
        import hashlib

        identity = {
            "model": str(getattr(self.generator, "model_name", "")),
            "mode": self.mode,
            "system_prompt": self.system_prompt,
            "tools": [(t.spec(), t.requires_approval) for t in self.tools],
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def tool(self, name: str) -> Tool | None:
        """The tool called ``name``, or ``None``."""
        return self._by_name.get(name)

    def instructions(self, mode: str) -> str:
        """The system prompt of a run in ``mode``."""
        specs = [t.spec() for t in self.tools]
        if mode == "react":
            return react.system_prompt(specs, self.system_prompt or REACT_INSTRUCTIONS)
        return self.system_prompt or NATIVE_INSTRUCTIONS


def load_agent_config(name_or_path: str, **overrides: Any) -> dict[str, Any]:
    """The ``agent:`` section of a recipe name or YAML file, with ``overrides`` (``None`` ignored) applied."""
    from ragkit.recipes import find_recipe
    from ragkit.yaml_io import read_mapping

    path = find_recipe(name_or_path)
    data = read_mapping(path, "agent")
    section = data.get("agent")
    if not isinstance(section, dict):
        raise ConfigError(f"{path} has no 'agent:' section (is it an agent recipe?)")
    config = {key: value for key, value in section.items() if key != "type"}
    config.update({key: value for key, value in overrides.items() if value is not None})
    return config
