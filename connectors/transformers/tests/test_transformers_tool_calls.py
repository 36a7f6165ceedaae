"""Native tool calls of a local model: its chat template's ``<tool_call>`` blocks read into OpenAI ``tool_calls``.

The parsing and streaming tests run on text; the model tests load the real
packaged Qwen2.5-Coder-0.5B-Instruct (whose template takes tools) and
SmolLM2 (whose template does not).
"""

from __future__ import annotations

import json

import pytest
from ragkit_transformers import TransformersGenerator
from ragkit_transformers.generator import _conversation
from ragkit_transformers.packaged import QWEN_CODER_05B, installed
from ragkit_transformers.tool_calls import ToolCallScanner, calls_in_json, parse_tool_calls

from ragkit.agents import Agent
from ragkit.errors import InputError
from ragkit.generation import GenerationOptions, Message

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}


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


def test_the_conversation_carries_tool_calls_with_decoded_arguments_and_tool_results() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2"}'}}
    conversation = _conversation(
        [
            Message("user", "q"),
            Message("assistant", "", tool_calls=[call]),
            Message("tool", "2", tool_call_id="call_1", name="calculator"),
        ]
    )
    assert conversation[1]["tool_calls"][0]["function"]["arguments"] == {"expression": "2"}
    assert call["function"]["arguments"] == '{"expression": "2"}'  # the message itself is untouched
    assert conversation[2] == {"role": "tool", "content": "2", "tool_call_id": "call_1", "name": "calculator"}


def test_smollm2_has_no_tool_template_so_tools_are_refused_and_agents_speak_react() -> None:
    smollm2 = TransformersGenerator(max_new_tokens=8, threads=1)
    assert smollm2.supports_tools is False
    with pytest.raises(InputError, match="does not support tools"):
        smollm2.stream([Message("user", "hi")], GenerationOptions(tools=[CALCULATOR]))
    assert Agent(generator=smollm2, tools=["calculator"]).resolved_mode == "react"


needs_qwen = pytest.mark.skipif(not installed(QWEN_CODER_05B), reason="ragkit-transformers[qwen-0-5b] not installed")


@pytest.fixture(scope="module")
def qwen() -> TransformersGenerator:
    return TransformersGenerator(model="qwen2.5-coder-0.5b-instruct", max_new_tokens=96, threads=2)


@needs_qwen
def test_qwen_takes_tools_through_its_chat_template(qwen: TransformersGenerator) -> None:
    assert qwen.supports_tools is True
    assert Agent(generator=qwen, tools=["calculator"]).resolved_mode == "native"
    loaded = qwen.load()
    conversation = _conversation(
        [
            Message("user", "What is 6 times 7?"),
            Message(
                "assistant",
                "",
                tool_calls=[{"id": "c", "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'}}],
            ),
            Message("tool", "42", tool_call_id="c", name="calculator"),
        ]
    )
    prompt = loaded.tokenizer.decode(loaded.encode_messages(conversation, [CALCULATOR]))
    assert "<tools>" in prompt and '"name": "calculator"' in prompt
    # the earlier call is written back as the model wrote it, arguments as an object (not a JSON string in a string)
    assert '<tool_call>\n{"name": "calculator", "arguments": {"expression": "6*7"}}\n</tool_call>' in prompt
    assert "<tool_response>\n42\n</tool_response>" in prompt
    assert "<tools>" not in loaded.tokenizer.decode(loaded.encode_messages(conversation[:1]))


@needs_qwen
def test_qwen_answers_an_arithmetic_question_with_a_calculator_call(qwen: TransformersGenerator) -> None:
    question = [Message("user", "What is 1234 * 5678? Use the calculator.")]
    generation = qwen.generate(question, GenerationOptions(tools=[CALCULATOR], max_tokens=96))
    assert generation.finish_reason == "tool_calls"
    assert generation.tool_calls is not None and len(generation.tool_calls) >= 1
    call = generation.tool_calls[0]
    assert call["function"]["name"] == "calculator"
    expression = json.loads(call["function"]["arguments"])["expression"]
    assert "1234" in expression and "5678" in expression
    # tool_choice none: no tools in the prompt, and no call comes back
    plain = qwen.generate(question, GenerationOptions(tools=[CALCULATOR], tool_choice="none", max_tokens=24))
    assert plain.tool_calls is None and plain.finish_reason in ("stop", "length")
