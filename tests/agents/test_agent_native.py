"""The agent with native tool calling, through the REAL openai generator against the FAKE OpenAI server.

The FakeOpenAIServer (a wire-protocol fake, no model behind it) answers from a
``script`` of replies: tool calls (several at once for parallel calls) or
text. Everything else is real: the ``openai`` client, HTTP, the tools, the
collection the ``search`` tool reads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragkit import registry
from ragkit.agents.agent import Agent
from ragkit.agents.events import sse
from ragkit.agents.scripted import ScriptedGenerator
from ragkit.agents.state import open_state
from ragkit.agents.tools import ToolError, tool
from ragkit.errors import InputError
from ragkit.generation.base import GenerationOptions, Message
from ragkit.testing.fake_openai import FakeOpenAIServer


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(model="fake-model") as fake:
        yield fake


@pytest.fixture()
def fake(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.reset()
    return server


def openai(fake: FakeOpenAIServer) -> dict[str, Any]:
    return {"type": "openai", "model": "fake-model", "base_url": fake.v1, "api_key": "x", "max_retries": 0}


def calls(*pairs: tuple[str, dict[str, Any]], ids: list[str] | None = None) -> dict[str, Any]:
    return {
        "tool_calls": [
            {"name": name, "arguments": arguments, **({"id": ids[i]} if ids else {})}
            for i, (name, arguments) in enumerate(pairs)
        ]
    }


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


def chat_bodies(fake: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.state.on("/v1/chat/completions")]


def test_auto_mode_picks_native_for_the_openai_generator_and_react_for_a_local_one(fake):
    assert Agent(generator=openai(fake), tools=[add]).resolved_mode == "native"
    assert Agent(generator=ScriptedGenerator(), tools=[add]).resolved_mode == "react"


def test_single_call_then_answer(fake):
    fake.state.script = [calls(("add", {"a": 2, "b": 3}), ids=["call_a"]), "2 + 3 is 5."]
    result = Agent(generator=openai(fake), tools=[add]).run("What is 2 + 3?")
    assert result.status == "completed" and result.answer == "2 + 3 is 5."
    assert result.mode == "native"
    [call] = result.tool_calls
    assert (call.tool, call.arguments, call.observation, call.status) == ("add", {"a": 2, "b": 3}, "5", "ok")
    first, second = chat_bodies(fake)
    assert first["tools"][0]["function"]["name"] == "add"
    assert first["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    assistant, tool_message = second["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "call_a"
    assert tool_message == {"role": "tool", "content": "5", "tool_call_id": "call_a"}
    assert result.usage.total_tokens > 0
    assert [s.kind for s in result.steps] == ["tools", "final"]
    assert set(result.timings) == {"total", "model", "tools", "agent"}
    json.dumps(result.to_dict())  # the whole trace is JSON


def test_parallel_calls_run_concurrently_and_answer_in_order(fake):
    both_running = threading.Barrier(2, timeout=10)
    order: list[str] = []

    @tool
    def slow_lookup(city: str) -> str:
        """Look up a city's population."""
        both_running.wait()  # passes only if the other call is running at the same time
        order.append(city)
        return f"{city}: {len(city)} million"

    fake.state.script = [
        calls(("slow_lookup", {"city": "Paris"}), ("slow_lookup", {"city": "Lagos"}), ids=["c1", "c2"]),
        "Both looked up.",
    ]
    result = Agent(generator=openai(fake), tools=[slow_lookup]).run("Compare Paris and Lagos.")
    assert result.status == "completed"
    assert [c.status for c in result.tool_calls] == ["ok", "ok"]
    tool_messages = [m for m in chat_bodies(fake)[1]["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [
        ("c1", "Paris: 5 million"),
        ("c2", "Lagos: 5 million"),
    ]


def test_validation_error_goes_back_and_the_corrected_retry_runs(fake):
    fake.state.script = [
        calls(("add", {"a": "two", "b": 3})),
        calls(("add", {"a": 2, "b": 3})),
        "It is 5.",
    ]
    result = Agent(generator=openai(fake), tools=[add]).run("What is 2 + 3?")
    bad, good = result.tool_calls
    assert bad.status == "error" and "a" in (bad.error or "") and bad.observation.startswith("Error: ")
    assert good.status == "ok" and good.observation == "5"
    sent_back = next(m for m in chat_bodies(fake)[1]["messages"] if m["role"] == "tool")["content"]
    assert "invalid arguments" in sent_back and "a" in sent_back
    assert result.status == "completed"


def test_arguments_that_are_not_json_go_back_to_the_model(fake):
    fake.state.script = [calls(("add", '{"a": 2, "b":')), "Sorry."]
    result = Agent(generator=openai(fake), tools=[add]).run("q")
    [call] = result.tool_calls
    assert call.status == "error" and "not valid JSON" in call.observation


def test_unknown_tool_is_answered_with_the_tool_list(fake):
    fake.state.script = [calls(("web_search", {"q": "x"})), "I cannot search the web."]
    result = Agent(generator=openai(fake), tools=[add]).run("q")
    [call] = result.tool_calls
    assert call.status == "error"
    assert "no tool named 'web_search'" in call.observation and "the tools are: add" in call.observation
    assert result.status == "completed"


def test_a_tool_failing_more_than_its_retries_is_disabled(fake):
    attempts: list[int] = []

    @tool(max_retries=1)
    def flaky(x: int) -> int:
        """Always fails."""
        attempts.append(x)
        raise ToolError("backend down")

    fake.state.script = [calls(("flaky", {"x": 1})), calls(("flaky", {"x": 2})), calls(("flaky", {"x": 3})), "Gave up."]
    result = Agent(generator=openai(fake), tools=[flaky, add]).run("q")
    first, second, third = result.tool_calls
    assert "backend down" in first.observation and "disabled" not in first.shown
    assert "now disabled" in second.shown
    assert third.status == "error" and "disabled" in third.observation
    assert attempts == [1, 2]  # the third call never reached the tool
    offered = [t["function"]["name"] for t in chat_bodies(fake)[2]["tools"]]
    assert offered == ["add"]


def test_a_looping_model_is_cut_by_the_step_cap_with_one_forced_answer(fake):
    fake.state.script = [calls(("add", {"a": i, "b": 1})) for i in range(3)] + ["From what I found: 3."]
    result = Agent(generator=openai(fake), tools=[add], max_steps=3).run("Keep adding.")
    assert result.status == "capped" and result.cap == "steps"
    assert result.answer == "From what I found: 3."
    assert [s.kind for s in result.steps] == ["tools", "tools", "tools", "forced"]
    last = chat_bodies(fake)[-1]
    assert "tools" not in last  # the forced answer offers no tools
    assert 'add({"a": 2, "b": 1}): 3' in last["messages"][-1]["content"]  # with the observations gathered


def test_token_cap_forces_the_answer(fake):
    fake.state.script = [calls(("add", {"a": 1, "b": 1})) for _ in range(2)] + ["Done at the token cap."]
    result = Agent(generator=openai(fake), tools=[add], max_tokens=50).run("q")
    assert result.status == "capped" and result.cap == "tokens"
    assert len(result.tool_calls) == 2  # 27 tokens per fake tool-call reply: the cap is reached after two
    assert result.answer == "Done at the token cap."


def test_tool_call_cap_skips_calls_past_it(fake):
    fake.state.script = [calls(("add", {"a": 1, "b": 1}), ("add", {"a": 2, "b": 2}), ("add", {"a": 3, "b": 3})), "ok"]
    result = Agent(generator=openai(fake), tools=[add], max_tool_calls=2).run("q")
    assert [c.status for c in result.tool_calls] == ["ok", "ok", "skipped"]
    assert result.status == "capped" and result.cap == "tool_calls"


def test_a_generator_that_refuses_tools_falls_back_to_react():
    class RefusesTools(ScriptedGenerator):
        def stream(self, messages: Any, options: GenerationOptions | None = None) -> Any:
            if options is not None and options.tools:
                raise InputError("generator x does not support tools")
            return super().stream(messages, options)

    generator = RefusesTools(['Action: add\nAction Input: {"a": 1, "b": 2}', "Final Answer: 3"], native=True)
    result = Agent(generator=generator, tools=[add]).run("1 + 2?")
    assert result.mode == "react" and result.answer == "3"


# -- approvals ------------------------------------------------------------------------------------------


def _approval_agent(fake: FakeOpenAIServer, deleted: list[str], secret: str = "k1") -> Agent:
    @tool(requires_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file."""
        deleted.append(path)
        return f"deleted {path}"

    return Agent(generator=openai(fake), tools=[delete_file, add], secret=secret)


def test_approval_stops_before_the_call_and_resume_runs_it(fake):
    deleted: list[str] = []
    agent = _approval_agent(fake, deleted)
    fake.state.script = [calls(("delete_file", {"path": "a.txt"}), ("add", {"a": 1, "b": 1}), ids=["d1", "s1"])]
    paused = agent.run("Delete a.txt")
    assert paused.status == "needs_approval" and deleted == []
    assert [p.to_dict() for p in paused.pending] == [
        {"id": "d1", "tool": "delete_file", "arguments": {"path": "a.txt"}}
    ]
    assert paused.state and paused.to_dict()["state"] == paused.state

    fake.state.script = ["Deleted a.txt."]
    resumed = agent.resume(paused.state, {"d1": "approve"})
    assert deleted == ["a.txt"]
    assert resumed.status == "completed" and resumed.answer == "Deleted a.txt."
    assert [c.status for c in resumed.tool_calls] == ["ok", "ok"]
    tool_messages = [m for m in chat_bodies(fake)[-1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["deleted a.txt", "2"]


def test_a_denied_call_tells_the_model_why(fake):
    deleted: list[str] = []
    agent = _approval_agent(fake, deleted)
    fake.state.script = [calls(("delete_file", {"path": "b.txt"}), ids=["d1"])]
    paused = agent.run("Delete b.txt")
    fake.state.script = ["I did not delete it."]
    resumed = agent.resume(paused.state or "", {"d1": {"decision": "deny", "reason": "keep backups"}})
    assert deleted == []
    [call] = resumed.tool_calls
    assert call.status == "denied" and "keep backups" in call.observation
    assert resumed.status == "completed"


def test_a_tampered_or_foreign_state_is_refused(fake):
    deleted: list[str] = []
    agent = _approval_agent(fake, deleted)
    fake.state.script = [calls(("delete_file", {"path": "c.txt"}), ids=["d1"])]
    state = agent.run("Delete c.txt").state or ""
    payload = open_state(state, b"k1")
    assert payload["pending"] == ["d1"]

    body, signature = state.split(".")
    forged = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB") + "." + signature
    with pytest.raises(InputError, match="signature does not match"):
        agent.resume(forged, {"d1": "approve"})
    with pytest.raises(InputError, match="signature does not match"):
        _approval_agent(fake, deleted, secret="another key").resume(state, {"d1": "approve"})
    with pytest.raises(InputError, match="not a state token"):
        agent.resume("garbage", {"d1": "approve"})
    with pytest.raises(InputError, match="no decision for d1"):
        agent.resume(state, {})
    with pytest.raises(InputError, match="must be 'approve' or 'deny'"):
        agent.resume(state, {"d1": "maybe"})
    assert deleted == []


# -- streaming ------------------------------------------------------------------------------------------


def test_stream_events_and_their_sse_form(fake):
    fake.state.script = [calls(("add", {"a": 2, "b": 2}), ids=["c1"]), "The answer is 4."]
    events = list(Agent(generator=openai(fake), tools=[add]).stream("2 + 2?"))
    types = [e.type for e in events]
    assert types[0] == "step" and types[-2:] == ["answer", "done"]
    assert types.index("tool_call") < types.index("observation") < types.index("token")
    tokens = "".join(e.data["text"] for e in events if e.type == "token")
    assert tokens == "The answer is 4."
    assert events[-1].result is not None and events[-1].result.answer == "The answer is 4."
    lines = sse(events[types.index("tool_call")])
    assert lines.startswith("event: tool_call\ndata: ") and lines.endswith("\n\n")
    assert json.loads(lines.split("data: ", 1)[1]) == {
        "id": "c1",
        "tool": "add",
        "arguments": {"a": 2, "b": 2},
        "step": 1,
    }


def test_async_twins(fake):
    import asyncio

    async def main() -> tuple[Any, list[str]]:
        fake.state.script = ["Plain answer."]
        agent = Agent(generator=openai(fake), tools=[add])
        result = await agent.arun("hi")
        fake.state.script = ["Streamed."]
        types = [e.type async for e in agent.astream("hi")]
        return result, types

    result, types = asyncio.run(main())
    assert result.answer == "Plain answer." and types[-1] == "done"


def test_history_goes_before_the_question(fake):
    fake.state.script = ["Yes."]
    history = [Message("user", "My name is Ada."), Message("assistant", "Hello Ada.")]
    Agent(generator=openai(fake), tools=[add]).run("Do you remember me?", history=history)
    roles = [(m["role"], m["content"]) for m in chat_bodies(fake)[0]["messages"]][1:]
    assert roles == [("user", "My name is Ada."), ("assistant", "Hello Ada."), ("user", "Do you remember me?")]


# -- citations --------------------------------------------------------------------------------------------


def test_citations_from_a_real_search_tool_are_renumbered_and_carried(fake, sample_store: Path):
    search = registry.build("tool", {"type": "search", "collection": "sample", "home": str(sample_store), "top_k": 2})
    fake.state.script = [
        calls(("search", {"query": "Amazon rainforest area", "top_k": 2})),
        calls(("search", {"query": "Black Death mortality", "top_k": 2})),
        "The rainforest covers most of the Amazon basin [1], and the plague killed millions [3].",
    ]
    result = Agent(generator=openai(fake), tools=[search]).run("Tell me about the Amazon and the Black Death.")
    first, second = result.tool_calls
    assert first.sources == [1, 2] and second.sources == [3, 4]
    assert second.shown.startswith("[3] ")  # the model read the second search's passages as [3] and [4]
    assert [s.number for s in result.sources] == [1, 2, 3, 4]
    cited = {c.number: c.source for c in result.citations}
    assert set(cited) == {1, 3}
    assert "amazon" in cited[1].lower() and "black" in cited[3].lower()
    assert result.citations[0].positions and not result.citations[0].inferred


def test_an_answer_without_markers_gets_inferred_citations(fake, sample_store: Path):
    search = registry.build("tool", {"type": "search", "collection": "sample", "home": str(sample_store), "top_k": 2})
    hit_text = search.call({"query": "Amazon rainforest basin", "top_k": 2}).hits[0].chunk.text
    sentence = " ".join(hit_text.split()[:25]) + "."
    fake.state.script = [calls(("search", {"query": "Amazon rainforest basin", "top_k": 2})), sentence]
    result = Agent(generator=openai(fake), tools=[search]).run("Describe the Amazon rainforest.")
    assert result.citations and all(c.inferred for c in result.citations)
    assert result.citations[0].number in (1, 2)


def test_tool_calls_a_server_left_in_the_text_are_run(fake):
    """vLLM or TGI started without a tool-call parser sends the model's <tool_call> text as content."""
    fake.state.script = [
        '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 2}}\n</tool_call>',
        '{"name": "add", "arguments": {"a": 3, "b": 3}}',
        'The sums are 4 and 6; as JSON: {"name": "sum", "arguments": 1}',
    ]
    result = Agent(generator=openai(fake), tools=[add]).run("Add 2+2 and 3+3.")
    assert [c.observation for c in result.tool_calls] == ["4", "6"]
    assert result.answer.startswith("The sums are 4 and 6")  # JSON naming no tool stays part of the answer


def test_several_json_calls_in_a_row_are_several_calls_not_the_answer(fake):
    """Small models write one call object after another in one reply; none of it may become the answer."""
    fake.state.script = [
        '```json\n{"name": "add", "arguments": {"a": 1, "b": 1}}\n{"name": "add", "arguments": {"a": 2, "b": 2}}\n```',
        "The sums are 2 and 4.",
    ]
    result = Agent(generator=openai(fake), tools=[add]).run("Add 1+1 and 2+2.")
    assert [c.observation for c in result.tool_calls] == ["2", "4"]
    assert result.answer == "The sums are 2 and 4."


def test_a_fenced_call_followed_by_prose_is_a_call_not_the_answer(fake):
    fake.state.script = [
        '```json\n{"name": "add", "arguments": {"a": 5, "b": 5}}\n```\nThis call adds the two numbers.',
        "The sum is 10.",
    ]
    result = Agent(generator=openai(fake), tools=[add]).run("Add 5+5.")
    assert [c.observation for c in result.tool_calls] == ["10"]
    assert result.answer == "The sum is 10."


def test_text_calls_in_openai_shape_or_with_broken_arguments_are_calls_the_model_can_repair(fake):
    """The same text reading as the local generator: OpenAI's shape counts, and a broken block is sent back."""
    fake.state.script = [
        '{"function": {"name": "add", "arguments": {"a": 1, "b": 2}}}',
        '<tool_call>{"name": "add", "arguments": {"a": 4, "b": }}</tool_call>',
        '<tool_call>{"name": "multiply", "arguments": {"a": 4, "b": 5}}</tool_call>',
        "The sum is 3.",
    ]
    result = Agent(generator=openai(fake), tools=[add]).run("Add 1+2.")
    first, broken, unknown = result.tool_calls
    assert (first.tool, first.observation) == ("add", "3")
    assert broken.tool == "add" and broken.status == "error" and "not valid JSON" in broken.observation
    assert unknown.status == "error" and "there is no tool named 'multiply'" in unknown.observation
    assert result.answer == "The sum is 3."
    # what the model was told reached it: both refusals are in the next requests' tool messages
    told = [m["content"] for body in chat_bodies(fake) for m in body["messages"] if m["role"] == "tool"]
    assert any("not valid JSON" in t for t in told) and any("no tool named 'multiply'" in t for t in told)
