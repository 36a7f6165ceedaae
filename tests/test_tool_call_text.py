"""Tool calls written as text: ``<tool_call>`` blocks (Hermes, Qwen) and bare JSON read into OpenAI ``tool_calls``.

A local model's chat template, or a server started without its tool-call
parser, leaves calls in the text; these readers are shared by the local
generator (``ragkit-transformers``) and the agent's native protocol.
"""

from __future__ import annotations

import json

import pytest

from ragkit.generation.tool_calls import ToolCallScanner, calls_in_json, parse_tool_calls


def names_and_arguments(calls: list[dict]) -> list[tuple[str, str]]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in calls]


def test_hermes_blocks_become_openai_tool_calls_with_ids_and_indexes() -> None:
    text = (
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2 + 2"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "sql", "arguments": {"question": "How many artists?"}}\n</tool_call>'
    )
    calls, left = parse_tool_calls(text)
    assert names_and_arguments(calls) == [
        ("calculator", '{"expression": "2 + 2"}'),
        ("sql", '{"question": "How many artists?"}'),
    ]
    assert [c["index"] for c in calls] == [0, 1]
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert len({c["id"] for c in calls}) == 2
    assert left == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # cut off at max_tokens after the object: no closing tag
        ('<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}', '{"expression": "1+1"}'),
        # fenced inside the block
        (
            '<tool_call>\n```json\n{"name": "calculator", "arguments": {"expression": "3"}}\n```\n</tool_call>',
            '{"expression": "3"}',
        ),
        # arguments already a JSON string (OpenAI's own shape)
        (
            '<tool_call>{"name": "calculator", "arguments": "{\\"expression\\": \\"4\\"}"}</tool_call>',
            '{"expression": "4"}',
        ),
        # "parameters" instead of "arguments"
        ('<tool_call>{"name": "calculator", "parameters": {"expression": "5"}}</tool_call>', '{"expression": "5"}'),
    ],
)
def test_the_variants_small_models_write_are_read(text: str, expected: str) -> None:
    calls, _ = parse_tool_calls(text)
    assert names_and_arguments(calls) == [("calculator", expected)]


def test_broken_json_with_a_tool_name_is_still_a_call_whose_arguments_the_agent_will_refuse() -> None:
    calls, left = parse_tool_calls('<tool_call>{"name": "calculator", "arguments": {"expression": 2 +* 2}}</tool_call>')
    assert names_and_arguments(calls) == [("calculator", '{"expression": 2 +* 2}')]
    with pytest.raises(ValueError):
        json.loads(calls[0]["function"]["arguments"])
    assert left == ""


def test_a_block_without_a_tool_name_stays_text_and_prose_around_blocks_is_kept() -> None:
    calls, left = parse_tool_calls("Let me see. <tool_call>I will compute it</tool_call>")
    assert calls == []
    assert left == "Let me see. <tool_call>I will compute it</tool_call>"
    calls, left = parse_tool_calls('First: <tool_call>{"name": "calculator", "arguments": {}}</tool_call> done')
    assert names_and_arguments(calls) == [("calculator", "{}")]
    assert left == "First:  done"


def test_plain_json_calls_count_only_for_known_tools_with_arguments() -> None:
    text = 'To do this:\n```json\n{"name": "calculator", "arguments": {"expression": "6*7"}}\n```'
    assert names_and_arguments(calls_in_json(text, {"calculator"})) == [("calculator", '{"expression": "6*7"}')]
    assert calls_in_json(text, {"sql"}) == []  # not one of the tools: an answer that shows JSON
    assert calls_in_json('The record is {"name": "calculator"}.', {"calculator"}) == []  # no arguments
    assert calls_in_json("{{{ not json", {"calculator"}) == []
    # the OpenAI shape, and "function" naming the tool: both written by the Qwen2.5-Coder models
    openai_shape = '{"function": {"name": "calculator", "arguments": {"expression": "1"}}}'
    assert names_and_arguments(calls_in_json(openai_shape, {"calculator"})) == [("calculator", '{"expression": "1"}')]
    function_key = 'Call: {"function": "calculator", "arguments": {"expression": "2"}}'
    assert names_and_arguments(calls_in_json(function_key, {"calculator"})) == [("calculator", '{"expression": "2"}')]


@pytest.mark.parametrize("cut", range(1, 40))
def test_the_scanner_streams_text_before_a_call_and_holds_the_call_however_the_pieces_split(cut: int) -> None:
    text = 'Computing it <tool_call>{"name": "calculator", "arguments": {}}</tool_call>'
    scanner = ToolCallScanner()
    out = scanner.feed(text[:cut]) + scanner.feed(text[cut:]) + scanner.flush()
    assert out == "Computing it "
    assert scanner.calling
    assert scanner.held == text[len("Computing it ") :]


def test_the_scanner_lets_a_lone_angle_bracket_through_at_the_end() -> None:
    scanner = ToolCallScanner()
    assert scanner.feed("a <to") == "a "  # could be the start of a call: held
    assert scanner.feed("p") == "<top"  # it was not
    assert scanner.feed(" b <") == " b "
    assert scanner.flush() == "<"
    assert not scanner.calling
