"""``ragkit agent``: the steps as they happen, the answer and its sources; ``--json``; overrides; approvals.

The agent's model is the FAKE OpenAI server (scripted tool calls) through the real ``openai`` connector; the
calculator and the search tool are the real built-ins, the collection a real one (the shared sample store).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.testing.fake_openai import FakeOpenAIServer


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(model="fake-model") as server:
        yield server


def recipe(tmp_path: Path, fake: FakeOpenAIServer, **section: Any) -> str:
    generator = {"type": "openai", "model": "fake-model", "base_url": fake.v1, "api_key": "x", "max_retries": 0}
    path = tmp_path / "my-agent.yaml"
    path.write_text(yaml.safe_dump({"agent": {"generator": generator, "tools": ["calculator"], **section}}))
    return str(path)


def calc(expression: str, call_id: str = "c1") -> dict[str, Any]:
    return {"tool_calls": [{"id": call_id, "name": "calculator", "arguments": {"expression": expression}}]}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["agent", *args])


def test_json_prints_the_whole_result(tmp_path, fake):
    fake.reset(script=[calc("6 * 7"), "6 times 7 is 42."])
    result = invoke("What is 6 times 7?", "--pipeline", recipe(tmp_path, fake), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"] == "6 times 7 is 42." and data["status"] == "completed"
    assert data["steps"][0]["calls"][0]["observation"] == "42"


def test_steps_are_printed_as_they_happen_then_the_answer(tmp_path, fake):
    fake.reset(script=[calc("6 * 7"), "It is 42."])
    result = invoke("What is 6 times 7?", "--pipeline", recipe(tmp_path, fake))
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("step 1") < out.index('→ calculator({"expression": "6 * 7"})') < out.index("← 42")
    assert out.index("← 42") < out.index("It is 42.") < out.index("completed; 2 steps, 1 tool calls")


def test_max_steps_and_tools_override_the_recipe(tmp_path, fake):
    fake.reset(script=[calc("1 + 1"), "Answer forced."])
    path = recipe(tmp_path, fake, tools=[{"type": "search", "collection": "nowhere"}])
    result = invoke("Loop", "--pipeline", path, "--tools", "calculator", "--max-steps", "1", "--json")
    data = json.loads(result.stdout)
    assert data["status"] == "capped" and data["cap"] == "steps" and data["answer"] == "Answer forced."
    assert [t["function"]["name"] for t in fake.state.bodies[0]["tools"]] == ["calculator"]


def test_search_needs_a_collection(tmp_path, fake):
    result = invoke("q", "--pipeline", recipe(tmp_path, fake), "--tools", "search")
    assert result.exit_code != 0
    assert "tool 'search' needs a collection: give --collection" in result.output


def test_search_over_a_real_collection_prints_sources(tmp_path, fake, sample_store: Path):
    fake.reset(script=[{"tool_calls": [{"name": "search", "arguments": {"query": "Amazon rainforest basin"}}]}])
    fake.state.script.append("The Amazon rainforest covers most of the Amazon basin [1].")
    args = ["--tools", "search,calculator", "--collection", "sample", "--store-dir", str(sample_store)]
    result = invoke("How big is the Amazon rainforest?", "--pipeline", recipe(tmp_path, fake), *args)
    assert result.exit_code == 0, result.output
    assert "Sources:\n  [1] amazon-rainforest.md" in result.output


def test_approval_without_a_terminal_prints_the_state_and_exits_3(tmp_path, fake):
    fake.reset(script=[calc("2 ** 10", "p1")])
    path = recipe(tmp_path, fake, tools=[{"type": "calculator", "requires_approval": True}])
    result = invoke("2 to the 10th?", "--pipeline", path)
    assert result.exit_code == 3
    assert 'needs approval: calculator({"expression": "2 ** 10"}) [call p1]' in result.output
    state = result.stdout.strip().splitlines()[-1]
    assert state.count(".") == 1  # the signed state, for Agent.resume or the REST route
