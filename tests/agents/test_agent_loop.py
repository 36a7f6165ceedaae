"""The agent loop with a SCRIPTED in-process generator: config, ReAct approvals, time cap, streaming, citations."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ragkit import registry
from ragkit.agents.agent import Agent
from ragkit.agents.recipe import agent_config
from ragkit.agents.scripted import ScriptedGenerator
from ragkit.agents.tools import ToolOutput, tool
from ragkit.errors import ConfigError, InputError, NotFoundError
from ragkit.rag.answer import Citation
from ragkit.schema import Chunk, Hit


@tool
def echo(text: str) -> str:
    """Say the text back."""
    return text


def test_config_round_trips_without_the_secret():
    agent = registry.build(
        "agent",
        {
            "type": "agent",
            "generator": {"type": "transformers"},
            "tools": ["calculator"],
            "max_steps": 3,
            "secret": "s",
        },
    )
    config = agent.to_config()
    assert config["type"] == "agent" and config["max_steps"] == 3 and config["tools"] == ["calculator"]
    assert "secret" not in config
    assert Agent.from_config(config).to_config() == config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "fast"}, "expected auto, native or react"),
        ({"max_steps": 0}, "'max_steps'"),
        ({"max_tokens": -5}, "'max_tokens'"),
        ({"max_seconds": 0}, "'max_seconds'"),
        ({"tools": ["calculator", "calculator"]}, "a second tool named 'calculator'"),
    ],
)
def test_bad_config_is_refused_when_built(options, message):
    with pytest.raises(ConfigError, match=message):
        Agent(generator=ScriptedGenerator(), **options)


def test_an_unknown_tool_type_is_refused_when_built():
    with pytest.raises(NotFoundError, match="no tool named 'no-such-tool'"):
        Agent(generator=ScriptedGenerator(), tools=["no-such-tool"])


def test_the_shipped_recipe_builds_with_a_collection():
    config = agent_config("agent", home="/tmp/somewhere", collection="handbook", max_steps=2)
    assert config["max_steps"] == 2
    search = next(t for t in config["tools"] if t["type"] == "search")
    assert search["collection"] == "handbook" and search["home"] == "/tmp/somewhere"
    agent = Agent.from_config(config)
    assert [t.name for t in agent.tools] == ["search", "calculator"]
    assert agent.resolved_mode == "native"  # the packaged Qwen takes tools through its chat template


def test_empty_question_is_an_input_error():
    with pytest.raises(InputError, match="question is empty"):
        Agent(generator=ScriptedGenerator()).run("  ")


def test_react_approval_pause_and_resume():
    ran: list[str] = []

    @tool(requires_approval=True)
    def wipe(target: str) -> str:
        """Wipe a target."""
        ran.append(target)
        return "wiped"

    generator = ScriptedGenerator(['Thought: wipe it\nAction: wipe\nAction Input: "cache"'])
    agent = Agent(generator=generator, tools=[wipe], secret="k")
    paused = agent.run("Wipe the cache.")
    assert paused.status == "needs_approval" and paused.mode == "react" and ran == []
    [pending] = paused.pending
    assert (pending.tool, pending.arguments) == ("wipe", {"target": "cache"})
    generator.replies = ["Final Answer: The cache is wiped."]
    resumed = agent.resume(paused.state or "", {pending.id: True})
    assert ran == ["cache"] and resumed.answer == "The cache is wiped."
    last_prompt = generator.calls[-1][0][-1]
    assert (last_prompt.role, last_prompt.content) == ("user", "Observation: wiped")


def test_time_cap_forces_the_answer():
    @tool
    def slow(x: int) -> int:
        """Take a while."""
        time.sleep(0.3)
        return x

    generator = ScriptedGenerator(['Action: slow\nAction Input: {"x": 1}'], then="Out of time, x was 1.")
    result = Agent(generator=generator, tools=[slow], max_seconds=0.1).run("q")
    assert result.status == "capped" and result.cap == "time"
    assert result.answer == "Out of time, x was 1."
    assert generator.calls[-1][1] is not None and generator.calls[-1][1].stop is None  # no ReAct stop: plain answer


def test_react_stream_sends_only_the_final_answer_as_tokens():
    generator = ScriptedGenerator(["Thought: easy\nFinal Answer: Paris."])
    events = list(Agent(generator=generator, tools=[echo]).stream("Capital of France?"))
    tokens = "".join(e.data["text"] for e in events if e.type == "token")
    assert tokens.strip() == "Paris."
    assert [e.data["text"] for e in events if e.type == "thought"] == ["easy"]


def test_tool_citations_are_renumbered_and_the_answer_cites_the_run_list():
    def hit(i: int, text: str) -> Hit:
        chunk = Chunk(id=f"c{i}", document_id=f"d{i}", source=f"doc{i}.md", text=text, start=0, end=len(text))
        return Hit(chunk=chunk, score=1.0)

    outputs = {
        "a": [hit(1, "Alpha is the first letter."), hit(2, "Beta is the second letter.")],
        "b": [hit(2, "Beta is the second letter."), hit(3, "Gamma is the third letter.")],
    }

    @tool
    def lookup(key: str) -> ToolOutput:
        """Find passages."""
        hits = outputs[key]
        content = "\n".join(f"[{n}] {h.chunk.text}" for n, h in enumerate(hits, 1))
        return ToolOutput(
            content=content, citations=[Citation.from_hit(n, h) for n, h in enumerate(hits, 1)], hits=hits
        )

    generator = ScriptedGenerator(
        [
            'Action: lookup\nAction Input: {"key": "a"}',
            'Action: lookup\nAction Input: {"key": "b"}',
            "Final Answer: Gamma comes third [3], beta second [2], and [9] is nothing.",
        ]
    )
    result = Agent(generator=generator, tools=[lookup]).run("Letters?")
    first, second = result.tool_calls
    assert first.shown == "[1] Alpha is the first letter.\n[2] Beta is the second letter."
    assert second.shown == "[2] Beta is the second letter.\n[3] Gamma is the third letter."  # beta kept its number
    assert [c.source for c in result.sources] == ["doc1.md", "doc2.md", "doc3.md"]
    assert [(c.number, c.source) for c in result.citations] == [(3, "doc3.md"), (2, "doc2.md")]
    assert result.dropped_citations == [9]


def test_a_tool_bug_becomes_an_observation_not_a_crash():
    @tool
    def broken() -> str:
        """Raises."""
        raise RuntimeError("oops")

    generator = ScriptedGenerator(["Action: broken\nAction Input: {}", "Final Answer: It broke."])
    result = Agent(generator=generator, tools=[broken]).run("q")
    [call] = result.tool_calls
    assert call.status == "error" and "oops" in call.observation
    assert result.status == "completed"


def test_history_dicts_are_accepted():
    generator = ScriptedGenerator(["Final Answer: Hi again."])
    history: list[Any] = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]
    Agent(generator=generator, tools=[echo]).run("Me again", history=history)
    roles = [m.role for m in generator.calls[0][0]]
    assert roles == ["system", "user", "assistant", "user"]


def test_a_state_resumes_only_the_agent_that_made_it():
    @tool(requires_approval=True)
    def wipe(target: str) -> str:
        """Wipe a target."""
        return "wiped"

    paused = Agent(generator=ScriptedGenerator(['Action: wipe\nAction Input: "x"']), tools=[wipe], secret="k").run("q")
    other = Agent(generator=ScriptedGenerator(), tools=[wipe], secret="k", system_prompt="Be someone else.")
    with pytest.raises(InputError, match="made by another agent"):
        other.resume(paused.state or "", {paused.pending[0].id: "approve"})


def test_a_call_repeated_with_the_same_arguments_does_not_run_again_and_the_model_is_told():
    ran: list[str] = []

    @tool
    def lookup(city: str) -> str:
        """Population of a city."""
        ran.append(city)
        return "1,000"

    call = 'Thought: look it up\nAction: lookup\nAction Input: {"city": "Oslo"}'
    generator = ScriptedGenerator(
        [call, 'Thought: again\nAction: lookup\nAction Input: {  "city":"Oslo" }', "Final Answer: 1,000 people."]
    )
    result = Agent(generator=generator, tools=[lookup], mode="react").run("How many people live in Oslo?")
    assert ran == ["Oslo"]  # the repeat (same arguments, other spacing) never reached the tool
    first, repeat = result.tool_calls
    assert first.status == "ok"
    assert repeat.status == "error" and "already called with these arguments (step 1)" in repeat.observation
    assert "use that result" in generator.calls[2][0][-1].content  # what the model read before answering
    assert result.status == "completed" and result.answer == "1,000 people."


def test_repeat_calls_lets_a_tool_whose_answer_changes_run_again():
    ticks: list[int] = []

    @tool
    def clock() -> str:
        """The current tick."""
        ticks.append(len(ticks))
        return str(len(ticks))

    call = "Thought: read the clock\nAction: clock\nAction Input: {}"
    generator = ScriptedGenerator([call, call, "Final Answer: it moved."])
    agent = Agent(generator=generator, tools=[clock], mode="react", repeat_calls=True)
    assert agent.to_config()["repeat_calls"] is True
    result = agent.run("Does the clock move?")
    assert ticks == [0, 1] and [c.status for c in result.tool_calls] == ["ok", "ok"]
