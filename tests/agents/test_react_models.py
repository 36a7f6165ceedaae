"""ReAct with models: the REAL local model (SmolLM2), and the openai connector in mode=react against the FAKE server."""

from __future__ import annotations

import json

from ragkit import registry
from ragkit.agents.agent import Agent
from ragkit.agents.tools import tool
from ragkit.testing.fake_openai import FakeOpenAIServer


def test_the_local_model_in_react_mode_ends_with_a_well_formed_result():
    """Not its correctness (a 135M model): no crash, a status, an answer, a JSON trace within the caps."""
    generator = registry.build("generator", {"type": "transformers"})
    assert not getattr(generator, "supports_tools", False)
    agent = Agent(generator=generator, tools=["calculator"], step_max_tokens=40, max_steps=3)
    assert agent.resolved_mode == "react"
    result = agent.run("What is 12 times 7? Use the calculator.")
    assert result.status in {"completed", "capped", "failed"}
    assert isinstance(result.answer, str) and result.answer.strip()
    assert "Action Input:" not in result.answer
    assert 1 <= len([s for s in result.steps if s.kind != "forced"]) <= 3
    assert result.usage.total_tokens > 0
    json.dumps(result.to_dict())
    if result.status == "capped":
        assert result.cap == "steps" and result.steps[-1].kind == "forced"


def test_react_over_the_openai_connector_with_text_replies():
    @tool
    def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    with FakeOpenAIServer(model="m") as fake:
        fake.state.script = [
            "Thought: double it\nAction: double\nAction Input: 21\nObservation: 42\nFinal Answer: 42",
            "Thought: I know\nFinal Answer: 42",
        ]
        generator = {"type": "openai", "model": "m", "base_url": fake.v1, "api_key": "x"}
        result = Agent(generator=generator, tools=[double], mode="react").run("Double 21.")
        first, second = [r["body"] for r in fake.state.on("/v1/chat/completions")]
    assert "tools" not in first and "Observation:" in first["stop"]
    assert result.tool_calls[0].observation == "42" and result.answer == "42"
    assert second["messages"][-1] == {"role": "user", "content": "Observation: 42"}
    assert "Observation" not in second["messages"][-2]["content"]  # the invented observation was cut
