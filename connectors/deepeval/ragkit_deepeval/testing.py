"""``FakeDeepEvalJudgeServer``: the project's fake OpenAI judge, answering DeepEval's prompts.

A test double, not a model: :class:`ragkit_ragas.testing.FakeOpenAIJudgeServer`
(a real HTTP server on 127.0.0.1 speaking the OpenAI chat protocol) whose
answers follow the JSON Schema that :class:`ragkit_deepeval._library.RagkitDeepEvalLLM`
appends to each DeepEval prompt. Its answers are fixed so that DeepEval's
own scoring gives known values: two items per list; verdicts alternate
``"yes"``, ``"no"`` along a list (answer relevancy, faithfulness,
contextual recall and hallucination come out at 0.5, contextual precision
at 1.0); a number (G-Eval's ``score`` out of 10) is ``7`` (0.7); integers alternate
``1``, ``0`` as the ragas fake's do, so ragas prompts get the ragas fake's answers.
A prompt without a schema (a pipeline's question) gets :data:`PLAIN_ANSWER`.
The knobs of the ragas fake apply: ``fail_every``, ``delay``, ``garbage``
(text that is not JSON), ``array_items``.
"""

from __future__ import annotations

import json
from typing import Any

from ragkit_ragas.testing import GARBAGE_ANSWER, FakeOpenAIJudgeServer, extract_schema

GEVAL_SCORE = 7
"""What the fake gives G-Eval's ``score`` (out of 10)."""
PLAIN_ANSWER = "Landmark answers are in the sources [1]."
"""What the fake answers a prompt that states no JSON Schema (a pipeline's question, in a suite test)."""

__all__ = ["GEVAL_SCORE", "PLAIN_ANSWER", "FakeDeepEvalJudgeServer", "answer_for_prompt"]


class FakeDeepEvalJudgeServer(FakeOpenAIJudgeServer):  # type: ignore[misc,unused-ignore]
    """The fake OpenAI judge with answers shaped for DeepEval's metrics (see the module's docstring)."""

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        if self.garbage:
            return str(GARBAGE_ANSWER)
        first = next((m for m in messages if m.get("role") == "user"), {})
        prompt = str(first.get("content") or "")
        if extract_schema(prompt) is None:
            return PLAIN_ANSWER
        return json.dumps(answer_for_prompt(prompt, self.array_items))


def answer_for_prompt(prompt: str, array_items: int = 2) -> Any:
    """A JSON answer to a DeepEval prompt that fits the schema stated in it (``{}`` when there is none)."""
    schema = extract_schema(prompt)
    if schema is None:
        return {}
    return _instance(schema, schema.get("$defs", {}), 0, array_items)


def _instance(schema: dict[str, Any], defs: dict[str, Any], index: int, items: int) -> Any:
    if "$ref" in schema:
        return _instance(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, index, items)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _instance(options[0], defs, index, items)
    if "enum" in schema:
        values = [v for v in schema["enum"] if v in ("yes", "no")] or schema["enum"]
        return values[index % len(values)]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: _instance(sub, defs, index, items) for name, sub in properties.items()}
    if kind == "array":
        return [_instance(schema.get("items", {}), defs, i, items) for i in range(items)]
    if kind == "integer":  # ragas' verdicts, so a suite can mix both kinds of metric on this judge
        return 1 if index % 2 == 0 else 0
    if kind == "number":
        return GEVAL_SCORE
    if kind == "boolean":
        return index % 2 == 0
    return f"statement {index + 1}"
