"""The ReAct prompt written for small models, and the argument names they get wrong."""

from __future__ import annotations

from ragkit.agents import react
from ragkit.agents.agent import REACT_INSTRUCTIONS, Agent
from ragkit.agents.scripted import ScriptedGenerator
from ragkit.agents.tools import build_tools, tool


@tool
def lookup(question: str) -> str:
    """Look a figure up."""
    return "Springfield has 30,720 people." if "Springfield" in question else "no data"


def specs() -> list[dict]:
    return [lookup.spec(), *(t.spec() for t in build_tools(["calculator"]))]


def test_the_prompt_shows_a_worked_run_with_the_agents_own_tools_and_no_placeholder_answer():
    prompt = react.system_prompt(specs(), REACT_INSTRUCTIONS)
    assert 'Action: lookup\nAction Input: {"question": "What is the population of Springfield?"}' in prompt
    assert 'Action: calculator\nAction Input: {"expression": "30720 - 26145"}' in prompt
    assert "[User]\nObservation: 4575\n[Assistant]\nThought: I know the answer.\nFinal Answer: " in prompt
    assert "Final Answer: the answer" not in prompt and "one of [" not in prompt
    assert "made up" in prompt


def test_a_one_argument_tool_takes_its_value_under_another_name():
    calculator = build_tools(["calculator"])[0]
    assert react.parse_arguments('{"question": "2 + 2"}', calculator.parameters) == {"expression": "2 + 2"}
    # several values, or the right name, are left as given (the tool's validation answers them)
    assert react.parse_arguments('{"a": 1, "b": 2}', calculator.parameters) == {"a": 1, "b": 2}
    assert react.parse_arguments('{"expression": "1 + 1"}', calculator.parameters) == {"expression": "1 + 1"}


def test_a_call_under_the_wrong_argument_name_runs():
    model = ScriptedGenerator(
        [
            'Thought: compute.\nAction: calculator\nAction Input: {"question": "6 * 7"}',
            "Thought: I know the answer.\nFinal Answer: 42",
        ]
    )
    result = Agent(generator=model, tools=["calculator"]).run("What is 6 times 7?")
    assert result.status == "completed" and result.answer == "42"
    calls = [(c.arguments, c.status, c.observation) for c in result.tool_calls]
    assert calls == [({"expression": "6 * 7"}, "ok", "42")]
