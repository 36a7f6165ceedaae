"""``FakeOpenAIJudgeServer``: the project's fake OpenAI server, answering ragas judge prompts.

It is a test double, not a model: :class:`ragkit.testing.fake_openai.FakeOpenAIServer`
(real HTTP on 127.0.0.1, the OpenAI wire protocol) with a scripted
``reply`` that answers each judge prompt with JSON that fits the schema the
prompt asks for. ragas prompts embed their output's JSON Schema; the fake
reads it from the user messages and writes a minimal instance: every
required field, two items per array, strings ``"statement 1"``,
``"statement 2"`` ..., and integer fields alternating ``1, 0`` along an
array (so faithfulness and context recall come out at 0.5). A prompt
without a schema gets ``{}``.

Knobs (attributes, safe to change between runs): ``fail_every`` (every
n-th request answers 500), ``delay`` (seconds to wait before answering),
``garbage`` (answer with text that is not JSON), ``array_items`` (items per
list; ``0`` makes ragas find nothing to score). It counts the chat
requests (``requests``), the failures it sent (``failed``), keeps the
request bodies (``bodies``) and the most requests it had in flight at once
(``max_in_flight``); :meth:`reset` forgets those and keeps the knobs. Use it
as a context manager::

    with FakeOpenAIJudgeServer() as server:
        judge = {"type": "openai", "model": "fake-judge", "base_url": server.url, "max_retries": 0}
"""

from __future__ import annotations

import json
from typing import Any

from ragkit.testing.fake_openai import FakeOpenAIServer, FakeState

SCHEMA_MARKER = "JSON Schema:"
GARBAGE_ANSWER = "I think the answer is fine."
"""What the judge answers when ``garbage`` is on: text that is not JSON."""
_CHAT = "/v1/chat/completions"


class FakeOpenAIJudgeServer(FakeOpenAIServer):
    """The shared fake OpenAI server answering judge prompts with schema-shaped JSON (a test double, no model).

    Args:
        fail_every: Every n-th chat request answers 500 (``None``: none).
        delay: Seconds each answer waits.
        garbage: Answer with :data:`GARBAGE_ANSWER` instead of JSON.
        array_items: Items per array in the answers.

    """

    def __init__(
        self, *, fail_every: int | None = None, delay: float = 0.0, garbage: bool = False, array_items: int = 2
    ) -> None:
        self.garbage = garbage
        self.array_items = array_items
        super().__init__(reply=self._reply, fail_every=fail_every, delay=delay)

    @property
    def url(self) -> str:
        """The API root to give the ``openai`` generator as ``base_url`` (the shared fake's ``v1``)."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    @property
    def v1(self) -> str:
        """The OpenAI API root, as :attr:`url`."""
        return self.url

    @property
    def fail_every(self) -> int | None:
        """Every n-th chat request answers 500 (``None``: none)."""
        return self.state.fail_every

    @fail_every.setter
    def fail_every(self, value: int | None) -> None:
        self.state.fail_every = value

    @property
    def delay(self) -> float:
        """Seconds each answer waits."""
        return self.state.delay

    @delay.setter
    def delay(self, value: float) -> None:
        self.state.delay = value

    @property
    def requests(self) -> int:
        """Chat requests since the last :meth:`reset`."""
        return len(self.state.on(_CHAT))

    @property
    def failed(self) -> int:
        """Requests answered with a 500 since the last :meth:`reset`."""
        return self.state.failures

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The chat requests' JSON bodies since the last :meth:`reset`, in order."""
        return [r["body"] for r in self.state.on(_CHAT)]

    @property
    def max_in_flight(self) -> int:
        """The most requests answered at once since the last :meth:`reset`."""
        return self.state.max_in_flight

    def reset(self, **knobs: Any) -> FakeState:
        """Forget the counts and bodies; the knobs (``fail_every``, ``delay``) stay unless given."""
        return super().reset(**{"fail_every": self.fail_every, "delay": self.delay, **knobs})

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        if self.garbage:
            return GARBAGE_ANSWER
        return json.dumps(answer_for_prompt(_user_text(messages), self.array_items))


def answer_for_prompt(prompt: str, array_items: int = 2) -> Any:
    """A minimal instance of the JSON Schema embedded in a ragas prompt (``{}`` when there is none)."""
    schema = extract_schema(prompt)
    if schema is None:
        return {}
    return _instance(schema, schema.get("$defs", {}), 0, array_items)


def extract_schema(prompt: str) -> dict[str, Any] | None:
    """The JSON Schema a ragas prompt asks its answer to follow, if it states one."""
    at = prompt.find(SCHEMA_MARKER)
    if at < 0:
        return None
    start = prompt.find("{", at)
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(prompt[start:])
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def _instance(schema: dict[str, Any], defs: dict[str, Any], index: int, array_items: int) -> Any:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _instance(defs.get(name, {}), defs, index, array_items)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _instance(options[0], defs, index, array_items)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: _instance(sub, defs, index, array_items) for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items", {})
        return [_instance(items, defs, i, array_items) for i in range(array_items)]
    if kind == "integer":
        return 1 if index % 2 == 0 else 0
    if kind == "number":
        return 1.0 if index % 2 == 0 else 0.0
    if kind == "boolean":
        return index % 2 == 0
    return f"statement {index + 1}"


def _user_text(messages: list[dict[str, Any]]) -> str:
    """The user messages' text, joined (a re-ask carries the schema in its first message)."""
    parts = []
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
            parts.append(str(content or ""))
    return "\n".join(parts)
