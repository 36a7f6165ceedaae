"""Native tool calls of a local model: its chat template's ``<tool_call>`` blocks read into OpenAI ``tool_calls``.

The model tests load the real packaged Qwen2.5-Coder-0.5B-Instruct (whose
template takes tools) and SmolLM2 (whose template does not); reading the
text is tested in ``tests/test_tool_call_text.py``.
"""

from __future__ import annotations

import json

import pytest
from ragkit_transformers import TransformersGenerator
from ragkit_transformers.generator import _conversation
from ragkit_transformers.packaged import QWEN_CODER_05B, installed

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
