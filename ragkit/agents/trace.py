"""What an agent run returns: :class:`AgentResult`, with its trace of :class:`AgentStep` and :class:`ToolCallRecord`.

The trace is data: every step's thought, each tool call's name and
arguments, the observation (``shown`` is what the model read, cut to the
agent's ``max_observation_chars``; ``observation`` and ``data`` are whole),
errors, timings and tokens. ``to_dict()`` gives the JSON shape used by the
CLI's ``--json`` and the REST route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ragkit.generation.base import Usage
from ragkit.rag.answer import Citation

Status = Literal["completed", "capped", "needs_approval", "failed"]
Cap = Literal["steps", "tool_calls", "tokens", "time"]
CallStatus = Literal["ok", "error", "denied", "pending", "skipped"]
StepKind = Literal["tools", "final", "repair", "forced", "failed"]


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call: what the model asked for and what came back.

    ``status``: ``ok``; ``error`` (validation, tool failure, unknown tool:
    ``error`` says which, and it went back to the model as the observation);
    ``denied`` (a person refused it); ``pending`` (waiting for approval);
    ``skipped`` (not run: a cap was reached first). ``sources`` are the
    numbers, in the run's one source list, of the sources this call found.
    """

    id: str
    tool: str
    arguments: dict[str, Any] | None
    raw_arguments: str = ""
    observation: str = ""
    shown: str = ""
    data: Any = None
    error: str | None = None
    status: CallStatus = "ok"
    seconds: float = 0.0
    sources: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The call's JSON shape."""
        return {
            "id": self.id,
            "tool": self.tool,
            "arguments": self.arguments,
            "raw_arguments": self.raw_arguments,
            "observation": self.observation,
            "shown": self.shown,
            "data": _jsonable(self.data),
            "error": self.error,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "sources": list(self.sources),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCallRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=str(data["id"]),
            tool=str(data["tool"]),
            arguments=data.get("arguments"),
            raw_arguments=str(data.get("raw_arguments") or ""),
            observation=str(data.get("observation") or ""),
            shown=str(data.get("shown") or ""),
            data=data.get("data"),
            error=data.get("error"),
            status=data.get("status", "ok"),
            seconds=float(data.get("seconds") or 0.0),
            sources=[int(n) for n in data.get("sources") or []],
        )


@dataclass(slots=True)
class AgentStep:
    """One model call of the run and the tool calls it made.

    ``kind``: ``tools`` (it called tools), ``final`` (it answered),
    ``repair`` (its reply could not be read; ``error`` says why and one
    repair prompt followed), ``forced`` (the last answer after a cap, no
    tools offered), ``failed`` (the repair did not help either).
    """

    number: int
    kind: StepKind
    thought: str = ""
    text: str = ""
    calls: list[ToolCallRecord] = field(default_factory=list)
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    model_seconds: float = 0.0
    tool_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The step's JSON shape."""
        return {
            "number": self.number,
            "kind": self.kind,
            "thought": self.thought,
            "text": self.text,
            "calls": [c.to_dict() for c in self.calls],
            "error": self.error,
            "usage": self.usage.to_dict(),
            "model_seconds": round(self.model_seconds, 6),
            "tool_seconds": round(self.tool_seconds, 6),
            "seconds": round(self.seconds, 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentStep:
        """Inverse of :meth:`to_dict`."""
        usage = data.get("usage") or {}
        return cls(
            number=int(data["number"]),
            kind=data["kind"],
            thought=str(data.get("thought") or ""),
            text=str(data.get("text") or ""),
            calls=[ToolCallRecord.from_dict(c) for c in data.get("calls") or []],
            error=data.get("error"),
            usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
            model_seconds=float(data.get("model_seconds") or 0.0),
            tool_seconds=float(data.get("tool_seconds") or 0.0),
            seconds=float(data.get("seconds") or 0.0),
        )


@dataclass(slots=True)
class PendingCall:
    """A call waiting for a person's decision (its tool has ``requires_approval``)."""

    id: str
    tool: str
    arguments: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "tool", "arguments"}``."""
        return {"id": self.id, "tool": self.tool, "arguments": self.arguments}


@dataclass(slots=True)
class AgentResult:
    """What an agent run returns.

    ``answer`` is the final text (with ``[n]`` markers numbering
    ``sources``); ``citations`` are the sources it cites or, when it wrote
    no marker, the sources it was inferred to draw on (``inferred``).
    ``status`` is ``completed``, ``capped`` (``cap`` names the cap hit; the
    answer was forced without tools), ``needs_approval`` (``pending`` lists
    the calls, ``state`` resumes the run with :meth:`Agent.resume
    <ragkit.agents.agent.Agent.resume>`) or ``failed`` (``error`` says why;
    the answer says the run could not complete). ``timings`` holds seconds:
    ``total``, ``model``, ``tools`` and ``agent`` (the rest: the machinery).
    """

    question: str
    answer: str
    status: Status
    mode: Literal["native", "react"]
    citations: list[Citation] = field(default_factory=list)
    sources: list[Citation] = field(default_factory=list)
    steps: list[AgentStep] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    cap: Cap | None = None
    error: str | None = None
    pending: list[PendingCall] = field(default_factory=list)
    state: str | None = None
    dropped_citations: list[int] = field(default_factory=list)
    model: str = ""

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of the run, in order."""
        return [call for step in self.steps for call in step.calls]

    def to_dict(self) -> dict[str, Any]:
        """The result's JSON shape: answer, status, citations, sources, the whole trace, usage and timings."""
        return {
            "question": self.question,
            "answer": self.answer,
            "status": self.status,
            "cap": self.cap,
            "error": self.error,
            "mode": self.mode,
            "model": self.model,
            "citations": [c.to_dict() for c in self.citations],
            "dropped_citations": list(self.dropped_citations),
            "sources": [c.to_dict() for c in self.sources],
            "steps": [s.to_dict() for s in self.steps],
            "usage": self.usage.to_dict(),
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
            "pending": [p.to_dict() for p in self.pending],
            "state": self.state,
        }


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (objects with ``to_dict`` converted, others as their text)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict())
    return str(value)
