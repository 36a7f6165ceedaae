"""Model outputs seen in the wild (LangChain / LlamaIndex issues, small local models), for the ReAct tests.

Each entry: (reply, expected kind, expected tool or None, expected arguments or None) for a tool set of
``calculator(expression: str)`` and ``lookup(name: str, field: str = "all")``. ``kind`` is what
:func:`ragkit.agents.react.parse_react` plus :func:`parse_arguments` make of the reply: ``action`` (a
call with those arguments), ``final`` (an answer), ``repair`` (unreadable: the agent sends the one repair
prompt).
"""

from __future__ import annotations

from typing import Any

CALC = {"expression": "2 + 2"}
CORPUS: list[tuple[str, str, str | None, dict[str, Any] | None]] = [
    # the format as asked
    (
        'Thought: I need to add.\nAction: calculator\nAction Input: {"expression": "2 + 2"}',
        "action",
        "calculator",
        CALC,
    ),
    # bare string input for a one-parameter tool
    ("Thought: add\nAction: calculator\nAction Input: 2 + 2", "action", "calculator", CALC),
    # quoted bare string
    ('Action: calculator\nAction Input: "2 + 2"', "action", "calculator", CALC),
    # key=value
    ("Action: calculator\nAction Input: expression=2 + 2", "action", "calculator", CALC),
    # key: value with quotes
    ("Action: calculator\nAction Input: expression: '2 + 2'", "action", "calculator", CALC),
    # python dict literal with single quotes
    ("Action: calculator\nAction Input: {'expression': '2 + 2'}", "action", "calculator", CALC),
    # code fence around the whole thing
    ('```\nThought: add\nAction: calculator\nAction Input: {"expression": "2 + 2"}\n```', "action", "calculator", CALC),
    # code fence around the input only
    ('Action: calculator\nAction Input:\n```json\n{"expression": "2 + 2"}\n```', "action", "calculator", CALC),
    # markdown bold labels
    (
        '**Thought:** add\n**Action:** calculator\n**Action Input:** {"expression": "2 + 2"}',
        "action",
        "calculator",
        CALC,
    ),
    # numbered labels
    ('Thought 1: add\nAction 1: calculator\nAction Input 1: {"expression": "2 + 2"}', "action", "calculator", CALC),
    # trailing text after the JSON input
    ('Action: calculator\nAction Input: {"expression": "2 + 2"} and then I will answer.', "action", "calculator", CALC),
    # trailing lines after a bare input
    ("Action: calculator\nAction Input: 2 + 2\nI hope this helps!", "action", "calculator", CALC),
    # an invented observation (the stop sequence was ignored) and a made-up answer after it
    (
        'Action: calculator\nAction Input: {"expression": "2 + 2"}\nObservation: 5\nFinal Answer: 5',
        "action",
        "calculator",
        CALC,
    ),
    # tool name in backticks and with a trailing period
    ('Action: `calculator`.\nAction Input: {"expression": "2 + 2"}', "action", "calculator", CALC),
    # tool name with different case and a "tool" suffix
    ('Action: Calculator tool\nAction Input: {"expression": "2 + 2"}', "action", "calculator", CALC),
    # functions. prefix (OpenAI habit)
    ('Action: functions.calculator\nAction Input: {"expression": "2 + 2"}', "action", "calculator", CALC),
    # inline call with brackets
    ("Thought: add\nAction: calculator[2 + 2]", "action", "calculator", CALC),
    # inline call with keyword arguments
    ('Action: calculator(expression="2 + 2")', "action", "calculator", CALC),
    # LangChain structured-chat JSON blob
    ('```json\n{"action": "calculator", "action_input": {"expression": "2 + 2"}}\n```', "action", "calculator", CALC),
    # JSON blob with a bare string input
    ('{"action": "calculator", "action_input": "2 + 2"}', "action", "calculator", CALC),
    # JSON blob final answer
    ('{"action": "Final Answer", "action_input": "It is 4."}', "final", None, None),
    # Action: Final Answer (LlamaIndex habit)
    ("Thought: done\nFinal Answer: The result is 4.", "final", None, None),
    # lower case final answer with trailing protocol lines
    ("final answer: 4\nThought: I am done", "final", None, None),
    # final answer with a colon variant (full-width)
    ("Final Answer： 4", "final", None, None),
    # multi-argument tool, JSON
    (
        'Action: lookup\nAction Input: {"name": "Ada", "field": "born"}',
        "action",
        "lookup",
        {"name": "Ada", "field": "born"},
    ),
    # multi-argument tool, key=value pairs
    ('Action: lookup\nAction Input: name="Ada", field=born', "action", "lookup", {"name": "Ada", "field": "born"}),
    # multi-argument tool, one required argument given bare
    ("Action: lookup\nAction Input: Ada", "action", "lookup", {"name": "Ada"}),
    # Windows line endings
    ('Thought: add\r\nAction: calculator\r\nAction Input: {"expression": "2 + 2"}\r\n', "action", "calculator", CALC),
    # Tool / Tool Input labels instead of Action
    ('Tool: calculator\nTool Input: {"expression": "2 + 2"}', "action", "calculator", CALC),
    # Action Input spelled as Arguments
    ('Action: calculator\nArguments: {"expression": "2 + 2"}', "action", "calculator", CALC),
    # an unknown tool: parsed; the agent answers with the tool list (not a repair)
    ('Action: web_search\nAction Input: {"query": "x"}', "action", "web_search", None),
    # --- unreadable: one repair prompt -----------------------------------------------
    ("", "repair", None, None),
    ("   \n  ", "repair", None, None),
    ("I think the answer is probably 4.", "repair", None, None),
    ("Thought: I should use the calculator.", "repair", None, None),
    ("Action:\nAction Input: 2 + 2", "repair", None, None),
    ("Final Answer:", "repair", None, None),
    # a list where a string is expected, with trailing words: the list is the one required argument's text
    ("Action: lookup\nAction Input: [1, 2, 3] or something", "action", "lookup", {"name": "[1, 2, 3]"}),
    # truncated JSON (max_tokens hit)
    ('Action: lookup\nAction Input: {"name": "Ada", "fie', "repair", None, None),
    # missing Action Input for a tool that needs one
    ("Thought: add\nAction: calculator", "repair", None, None),
    # only an observation
    ("Observation: 4", "repair", None, None),
    # a JSON blob without an action name
    ('{"thought": "add", "input": "2 + 2"}', "repair", None, None),
    # gibberish and control characters
    ("\x00\x01}}{{]][[", "repair", None, None),
    # a very long ramble without the protocol
    ("The answer depends on many things. " * 200, "repair", None, None),
]


# --- the tests --------------------------------------------------------------------------------------------

import pytest  # noqa: E402

from ragkit.agents.agent import Agent  # noqa: E402
from ragkit.agents.react import match_tool, parse_arguments, parse_react  # noqa: E402
from ragkit.agents.scripted import ScriptedGenerator  # noqa: E402
from ragkit.agents.tools import tool  # noqa: E402


@tool
def calculator(expression: str) -> str:
    """Work out an arithmetic expression (this test's tool echoes what it was given)."""
    return f"computed {expression}"


@tool
def lookup(name: str, field: str = "all") -> str:
    """Look up a person's field."""
    return f"{name}.{field}"


TOOLS = {"calculator": calculator, "lookup": lookup}


def test_the_corpus_is_large_enough_and_covers_each_outcome():
    assert len(CORPUS) >= 30
    assert {kind for _, kind, _, _ in CORPUS} == {"action", "final", "repair"}
    assert sum(kind == "repair" for _, kind, _, _ in CORPUS) >= 10


@pytest.mark.parametrize(("reply", "kind", "tool_name", "arguments"), CORPUS, ids=range(len(CORPUS)))
def test_parser_reads_each_variant_or_says_what_is_wrong(reply, kind, tool_name, arguments):
    parsed = parse_react(reply)
    if kind == "final":
        assert parsed.kind == "final"
        assert parsed.answer and "Thought" not in parsed.answer
        return
    if kind == "repair" and parsed.kind == "error":
        assert parsed.error  # says what was wrong, for the repair prompt
        return
    assert parsed.kind == "action", parsed
    name = match_tool(parsed.tool, list(TOOLS))
    if kind == "action" and tool_name not in TOOLS:
        assert name is None and parsed.tool == tool_name  # unknown: the agent lists the tools
        return
    assert name is not None
    if kind == "repair":  # readable action, unreadable input
        with pytest.raises(ValueError, match="Action Input|JSON"):
            parse_arguments(parsed.tool_input, TOOLS[name].parameters)
        return
    assert name == tool_name
    got = (
        parsed.arguments if parsed.arguments is not None else parse_arguments(parsed.tool_input, TOOLS[name].parameters)
    )
    assert got == arguments


@pytest.mark.parametrize(("reply", "kind", "tool_name", "arguments"), CORPUS, ids=range(len(CORPUS)))
def test_agent_never_crashes_and_ends_cleanly_on_each_reply(reply, kind, tool_name, arguments):
    """The reply twice in a row, then a proper answer: an action runs, a final answers, a repair then a failure."""
    generator = ScriptedGenerator([reply, reply], then="Final Answer: done")
    agent = Agent(generator=generator, tools=[calculator, lookup], mode="react", max_steps=4)
    result = agent.run("What is 2 + 2?")
    first = result.steps[0]
    assert result.status in {"completed", "failed"}
    assert result.answer.strip()
    if kind != "final" and len(reply.strip()) > 20:
        assert reply.strip()[:40] not in result.answer  # never the raw reply as the answer
    if kind == "final":
        assert first.kind == "final" and result.status == "completed"
    elif kind == "action":
        assert first.kind == "tools"
        call = first.calls[0]
        if tool_name in TOOLS:
            assert call.status == "ok" and call.arguments == arguments
        else:
            assert call.status == "error" and "calculator, lookup" in call.observation
        assert result.status == "completed"
    else:
        # one repair prompt that says what was wrong, then the same bad reply: a clean failure, not the raw text
        assert [s.kind for s in result.steps] == ["repair", "failed"]
        repair_prompt = generator.calls[1][0][-1].content
        assert repair_prompt.startswith("Your last reply could not be used: ")
        assert "Action Input:" in repair_prompt and "Final Answer:" in repair_prompt
        assert result.status == "failed" and result.error
        assert result.answer.startswith("I could not complete this")


def test_a_repaired_reply_continues_the_run():
    generator = ScriptedGenerator(
        [
            "I will use the calculator now.",
            'Action: calculator\nAction Input: {"expression": "2 + 2"}',
            "Final Answer: 4",
        ]
    )
    result = Agent(generator=generator, tools=[calculator], mode="react").run("What is 2 + 2?")
    assert [s.kind for s in result.steps] == ["repair", "tools", "final"]
    assert "neither an 'Action:' line nor a 'Final Answer:' line" in result.steps[0].error
    assert result.status == "completed" and result.answer == "4"


def test_generation_stops_at_observation():
    generator = ScriptedGenerator(['Action: calculator\nAction Input: "1+1"', "Final Answer: 2"])
    Agent(generator=generator, tools=[calculator], mode="react").run("q")
    options = generator.calls[0][1]
    assert options is not None and "Observation:" in (options.stop or [])
    assert options.tools is None  # the text protocol sends no tool definitions


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PIECES = st.sampled_from(
    [
        "Thought:",
        "Action:",
        "Action Input:",
        "Final Answer:",
        "Observation:",
        "```",
        "{",
        "}",
        '"',
        "'",
        "=",
        "\n",
        "calculator",
        "lookup",
        "[",
        "]",
        "(",
        ")",
        "**",
        "2 + 2",
        "expression",
        ":",
        ",",
        " ",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=30).map("".join))
def test_no_reply_crashes_the_parser(reply):
    parsed = parse_react(reply)
    assert parsed.kind in {"action", "final", "error"}
    if parsed.kind == "action":
        name = match_tool(parsed.tool, list(TOOLS))
        if name is not None and parsed.arguments is None:
            try:
                parse_arguments(parsed.tool_input, TOOLS[name].parameters)
            except ValueError as exc:
                assert str(exc)
    elif parsed.kind == "error":
        assert parsed.error
