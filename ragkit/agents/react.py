"""The text ReAct protocol, for models without native tool calling (SmolLM2; any model with ``mode="react"``).

The model writes::

    Thought: what to do next
    Action: calculator
    Action Input: {"expression": "2 + 2"}

and generation stops at ``Observation:`` (a stop sequence); the agent runs
the tool and sends the observation back. When it knows the answer it writes
``Final Answer: ...``.

Small models rarely follow a format exactly, so :func:`parse_react` accepts
the variants people report in LangChain and LlamaIndex issues: markdown bold
or code fences around the lines, ``Action 1:`` numbering, a JSON blob
``{"action": ..., "action_input": ...}``, ``Action: tool[input]`` or
``Action: tool(key="value")`` on one line, an input given as JSON, as a
Python literal, as ``key=value`` pairs or as a bare string (for a tool with
one parameter), text trailing after the input, and an observation the model
invented itself (cut off). What it still cannot read comes back as a
:class:`ReactStep` of kind ``"error"`` whose ``error`` says exactly what was
wrong, for the one repair prompt (:func:`repair_prompt`). Nothing here raises
on model output.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

_MAX_BLOB_TRIES = 32
STOP_SEQUENCES = ["Observation:", "\nObservation"]
"""Where a ReAct generation stops: the agent writes the observation, not the model."""

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_BOLD = re.compile(r"(\*\*|__)([A-Za-z][A-Za-z0-9 ]{0,30}?:?)(\*\*|__)")
_LABEL = r"(?:^|\n)[ \t>#*_-]*"
_FINAL = re.compile(_LABEL + r"final[ \t_]*answer[ \t]*\d*[ \t]*[:：][ \t]*", re.IGNORECASE)
_ACTION = re.compile(_LABEL + r"(?:action|tool(?:[ \t_]*name)?)[ \t]*#?\d*[ \t]*[:：][ \t]*", re.IGNORECASE)
_INPUT = re.compile(
    _LABEL
    + r"(?:(?:action|tool)[ \t_]*#?\d*[ \t_]*)?(?:input|arguments?|args|params|parameters)[ \t]*\d*[ \t]*[:：][ \t]*",
    re.IGNORECASE,
)
_THOUGHT = re.compile(_LABEL + r"thought[ \t]*\d*[ \t]*[:：][ \t]*", re.IGNORECASE)
_OBSERVATION = re.compile(r"(?:^|\n)[ \t>#*_-]*observation[ \t]*\d*[ \t]*[:：]", re.IGNORECASE)
_INLINE_CALL = re.compile(r"^([A-Za-z_][\w.-]*)\s*[\[(](.*)[\])]\s*$", re.DOTALL)
_KEY_VALUE = re.compile(r"""([A-Za-z_]\w*)\s*[=:]\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,;\n]*)""")
_STARTS_WITH_KEY = re.compile(r"^\s*[A-Za-z_]\w*\s*[=:]")
_NAME_NOISE = re.compile(r"^(?:functions\.|tools?\.|the\s+)|(?:\s+tool)$", re.IGNORECASE)


@dataclass(slots=True)
class ReactStep:
    """What one ReAct reply says: an action, a final answer, or an error to repair.

    ``kind`` is ``"action"`` (``tool`` and ``tool_input`` set), ``"final"``
    (``answer`` set) or ``"error"`` (``error`` says what was wrong).
    ``tool_input`` is the raw input text; :func:`parse_arguments` turns it
    into arguments once the tool, and so its parameters, are known.
    """

    kind: Literal["action", "final", "error"]
    thought: str = ""
    tool: str = ""
    tool_input: str | None = None
    answer: str = ""
    error: str = ""
    text: str = ""
    """The reply as the model wrote it, up to an observation it invented (what goes back into the chat)."""
    arguments: dict[str, Any] | None = field(default=None)
    """Arguments already given as a JSON blob's ``action_input`` object, if so."""


def strip_invented_observation(text: str) -> str:
    """``text`` up to an ``Observation:`` line the model wrote itself (the agent writes observations)."""
    match = _OBSERVATION.search(text)
    return text[: match.start()] if match else text


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _FENCE.sub(lambda m: "\n" + m.group(1) + "\n", text)
    text = text.replace("```", "")
    return _BOLD.sub(lambda m: m.group(2), text)


def _json_blob(text: str) -> dict[str, Any] | None:
    """A LangChain-style ``{"action": ..., "action_input": ...}`` blob anywhere in ``text``."""
    decoder = json.JSONDecoder()
    for tried, match in enumerate(re.finditer(r"\{", text)):
        if tried >= _MAX_BLOB_TRIES:  # bounded work on a pathological reply full of braces
            break
        try:
            value, _ = decoder.raw_decode(text[match.start() :])
        except ValueError:
            continue
        if isinstance(value, dict):
            name = value.get("action") or value.get("tool") or value.get("name") or value.get("function")
            if isinstance(name, str) and name.strip():
                return value
    return None


def parse_react(text: str) -> ReactStep:
    """Read one ReAct reply; never raises. See the module docstring for the variants accepted."""
    if not isinstance(text, str):
        return ReactStep("error", error="the reply was empty", text="")
    kept = strip_invented_observation(text).strip()
    body = _normalise(kept)
    if not body.strip():
        return ReactStep("error", error="the reply was empty", text=kept)
    thought = _thought(body)
    final = _FINAL.search(body)
    action = _ACTION.search(body)
    if action is not None and final is not None and final.start() < action.start():
        action = None  # the answer came first; an action after it is the model rambling on
    if action is None:
        blob = _json_blob(body)
        if blob is not None and (final is None or body.find("{") < final.start()):
            return _from_blob(blob, thought, kept)
    if action is None:
        if final is not None:
            answer = _cut_labels(body[final.end() :]).strip()
            if not answer:
                return ReactStep("error", thought=thought, error="'Final Answer:' was empty", text=kept)
            return ReactStep("final", thought=thought, answer=answer, text=kept)
        return ReactStep(
            "error",
            thought=thought,
            error="the reply had neither an 'Action:' line nor a 'Final Answer:' line",
            text=kept,
        )
    line_end = body.find("\n", action.end())
    name_text = (body[action.end() :] if line_end == -1 else body[action.end() : line_end]).strip()
    rest = "" if line_end == -1 else body[line_end:]
    inline = _INLINE_CALL.match(name_text)
    tool_input: str | None
    if inline is not None:
        name_text, tool_input = inline.group(1), inline.group(2)
    else:
        found = _INPUT.search(rest)
        if found is None and name_text.startswith("{"):
            blob = _json_blob(name_text + rest)
            if blob is not None:
                return _from_blob(blob, thought, kept)
        tool_input = _input_text(rest[found.end() :]) if found is not None else None
    name = clean_tool_name(name_text)
    if not name:
        return ReactStep("error", thought=thought, error="'Action:' named no tool", text=kept)
    return ReactStep("action", thought=thought, tool=name, tool_input=tool_input, text=kept)


def _thought(body: str) -> str:
    match = _THOUGHT.search(body)
    start = match.end() if match else 0
    stop = len(body)
    for pattern in (_ACTION, _FINAL):
        found = pattern.search(body, start)
        if found is not None:
            stop = min(stop, found.start())
    thought = body[start:stop].strip()
    if match is None and (stop == len(body) or "{" in thought):
        # no Thought label: the text before the action (if any) is the thought, a JSON blob is not
        thought = "" if "{" in thought else thought
    return thought


def _cut_labels(text: str) -> str:
    """An answer up to a protocol line that follows it (``Thought:``, ``Action:`` ...)."""
    stops = [m.start() for p in (_THOUGHT, _ACTION, _INPUT) for m in [p.search(text)] if m is not None]
    return text[: min(stops)] if stops else text


def _from_blob(blob: Mapping[str, Any], thought: str, text: str) -> ReactStep:
    name = str(blob.get("action") or blob.get("tool") or blob.get("name") or blob.get("function") or "")
    raw = blob.get("action_input", blob.get("arguments", blob.get("input", blob.get("parameters"))))
    if clean_tool_name(name).lower().replace(" ", "_") in {"final_answer", "final"}:
        answer = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        if not answer or not answer.strip():
            return ReactStep("error", thought=thought, error="the final answer was empty", text=text)
        return ReactStep("final", thought=thought, answer=answer.strip(), text=text)
    arguments = dict(raw) if isinstance(raw, Mapping) else None
    tool_input = None if raw is None else (json.dumps(raw) if not isinstance(raw, str) else raw)
    return ReactStep(
        "action", thought=thought, tool=clean_tool_name(name), tool_input=tool_input, text=text, arguments=arguments
    )


def _input_text(text: str) -> str:
    """The action input: a whole JSON value when it starts as one, else up to the next protocol line."""
    text = text.strip()
    if text.startswith(("{", "[")):
        try:
            _, end = json.JSONDecoder().raw_decode(text)
            return text[:end]
        except ValueError:
            pass
        closer = "}" if text.startswith("{") else "]"
        depth_end = _balanced_end(text, text[0], closer)
        if depth_end is not None:
            return text[:depth_end]
    text = _cut_labels(text)
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return ""
    return lines[0].strip()


def _balanced_end(text: str, opener: str, closer: str) -> int | None:
    depth = 0
    quote: str | None = None
    escaped = False
    for index, char in enumerate(text):
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def clean_tool_name(name: str) -> str:
    """A tool name as models write it, tidied: quotes, backticks, brackets, ``functions.`` and `` tool`` dropped."""
    name = name.strip().strip("`'\"*[]()<>:.,; ").strip()
    return _NAME_NOISE.sub("", name).strip().strip("`'\"*[]()<>:.,; ")


def match_tool(name: str, names: Sequence[str]) -> str | None:
    """The tool ``name`` means (exact, then case- and separator-insensitive), or ``None``."""
    if name in names:
        return name

    def key(text: str) -> str:
        return re.sub(r"[\s_-]+", "_", text.strip().lower())

    for wanted in (key(name), key(name.split()[0]) if name.split() else ""):
        for candidate in names:
            if key(candidate) == wanted:
                return candidate
    return None


def parse_arguments(tool_input: str | None, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for a tool with JSON schema ``parameters`` from the raw action input.

    Accepted, in order: a JSON object (for a tool with one parameter, one
    value under another name is taken as that parameter); a Python dict literal; ``key=value``
    (or ``key: value``) pairs naming the tool's parameters; any other value
    (a JSON or quoted string, a number, bare text) as the one argument of a
    tool with one parameter (or one required parameter). Anything else
    raises :class:`ValueError` with a message for the model.
    """
    properties = dict(parameters.get("properties") or {})
    required = list(parameters.get("required") or [])
    text = (tool_input or "").strip()
    if text.lower() in {"", "none", "null", "{}", "n/a", "nothing"}:
        if required:
            raise ValueError(f"the Action Input is missing; this tool needs {', '.join(required)}")
        return {}
    for reader in (json.loads, ast.literal_eval):
        try:
            value = reader(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            arguments = {str(k): v for k, v in value.items()}
            if len(properties) == 1 and len(arguments) == 1 and not set(arguments) & set(properties):
                # a one-argument tool given its one argument under another tool's name ({"expression": ...} to sql)
                return {next(iter(properties)): next(iter(arguments.values()))}
            return arguments
        return _single(value, properties, required, text)
    if text.startswith("{"):
        raise ValueError(
            f"the Action Input {text[:80]!r} starts like a JSON object but is not valid JSON (cut off?); "
            'give the arguments as one JSON object, e.g. {"' + (next(iter(properties), "name")) + '": ...}'
        )
    pairs = _KEY_VALUE.findall(text)
    if pairs and properties and all(key in properties for key, _ in pairs) and _STARTS_WITH_KEY.match(text):
        return {key: _scalar(raw.strip()) for key, raw in pairs}
    return _single(text.strip("`"), properties, required, text)


def _single(value: Any, properties: Mapping[str, Any], required: Sequence[str], text: str) -> dict[str, Any]:
    names = list(properties)
    target = names[0] if len(names) == 1 else (required[0] if len(required) == 1 else None)
    if target is None:
        expected = ", ".join(names) or "none"
        raise ValueError(
            f"the Action Input {text[:80]!r} is not a JSON object; this tool takes several arguments ({expected}), "
            'give them as JSON, e.g. {"' + (names[0] if names else "name") + '": ...}'
        )
    kind = (properties.get(target) or {}).get("type")
    if kind == "string" and not isinstance(value, str):
        value = text if isinstance(value, (list, dict)) else str(value)
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return {target: value}


def _scalar(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def tool_lines(specs: Sequence[Mapping[str, Any]]) -> str:
    """The tools as the ReAct prompt lists them: name, description, and the JSON object its input is."""
    lines = []
    for spec in specs:
        function = spec.get("function", spec)
        params = function.get("parameters") or {}
        required = set(params.get("required") or [])
        fields = ", ".join(
            f'"{name}": {(schema or {}).get("type", "any")}{"" if name in required else " (optional)"}'
            for name, schema in (params.get("properties") or {}).items()
        )
        description = " ".join(str(function.get("description") or "").split())
        lines.append(f"- {function['name']}: {description} Action Input: {{{fields}}}")
    return "\n".join(lines)


def system_prompt(specs: Sequence[Mapping[str, Any]], instructions: str) -> str:
    """The ReAct system prompt: ``instructions``, the tools, the rules and one worked example.

    Written for small models, which copy what they see: no placeholder text
    that could be taken for an answer or a tool name, the exact tool names,
    and a worked example with the real tools (:func:`worked_example`) whose
    results are made up and say so.
    """
    names = ", ".join(str(spec.get("function", spec)["name"]) for spec in specs) or "(none)"
    return (
        f"{instructions.strip()}\n\n"
        f"Tools:\n{tool_lines(specs)}\n\n"
        "Every reply of yours begins with 'Thought:'. "
        "To use a tool, reply with three lines and then stop: a 'Thought:' line saying what you need next, "
        f"an 'Action:' line with exactly one tool name (one of: {names}), and an 'Action Input:' line with the "
        "tool's input as one JSON object. The user then sends you the tool's result as 'Observation: ...'; never "
        "write an Observation yourself.\n"
        "Rules: start with a tool, and write a Final Answer only after an Observation; look facts up with the "
        "tools, never from memory; one tool per reply; do arithmetic with the calculator when there is one, "
        "with the numbers from the observations.\n"
        "When the observations hold the answer, reply with a 'Thought:' line and then a line starting with "
        "'Final Answer:' that gives the answer in one sentence with its numbers, citing sources as [n] when "
        "observations number them."
        f"{worked_example(specs)}"
    )


def _main_parameter(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """(tool name, its one text parameter) when the tool takes one required text, else ``None``."""
    function = spec.get("function", spec)
    params = function.get("parameters") or {}
    properties = params.get("properties") or {}
    required = list(params.get("required") or [])
    name = required[0] if len(required) == 1 else (next(iter(properties)) if len(properties) == 1 else None)
    if name is None or (properties.get(name) or {}).get("type", "string") != "string":
        return None
    return str(function["name"]), str(name)


def _lookup_input(parameter: str, town: str) -> str:
    value = f"What is the population of {town}?" if "question" in parameter.lower() else f"population of {town}"
    return json.dumps({parameter: value})


def worked_example(specs: Sequence[Mapping[str, Any]]) -> str:
    """A whole made-up run with the real tools, as the turns of the chat: look up twice, compute, answer.

    Small models copy its shape, so it shows whose turn each line is: the
    user asks and sends the observations, the assistant's turns begin with
    ``Thought:`` and end after ``Action Input:`` (or at ``Final Answer:``).
    With a look-up tool (one text argument) and a calculator: two look-ups,
    one computation, the answer; with only one of them, a shorter run; with
    neither, one step with the first tool's argument names.
    """
    if not specs:
        return ""
    mains = [_main_parameter(spec) for spec in specs]
    calculator = next(
        (m for m in mains if m is not None and (m[0] == "calculator" or m[1] == "expression")),
        None,
    )
    lookup = next((m for m in mains if m is not None and m is not calculator), None)
    turns: list[tuple[str, str]] = []
    if lookup is not None:
        tool, parameter = lookup
        question = (
            "How many more people live in Springfield than in Shelbyville?"
            if calculator
            else "How many people live in Springfield?"
        )
        turns += [
            ("User", question),
            (
                "Assistant",
                "Thought: I need the population of Springfield.\n"
                f"Action: {tool}\nAction Input: {_lookup_input(parameter, 'Springfield')}",
            ),
            ("User", "Observation: Springfield has 30,720 people."),
        ]
        if calculator is not None:
            turns += [
                (
                    "Assistant",
                    "Thought: I need the population of Shelbyville.\n"
                    f"Action: {tool}\nAction Input: {_lookup_input(parameter, 'Shelbyville')}",
                ),
                ("User", "Observation: Shelbyville has 26,145 people."),
                (
                    "Assistant",
                    "Thought: I subtract the two numbers.\n"
                    f"Action: {calculator[0]}\nAction Input: {json.dumps({calculator[1]: '30720 - 26145'})}",
                ),
                ("User", "Observation: 4575"),
                (
                    "Assistant",
                    "Thought: I know the answer.\n"
                    "Final Answer: Springfield has 4575 more people than Shelbyville (30,720 against 26,145).",
                ),
            ]
        else:
            turns.append(("Assistant", "Thought: I know the answer.\nFinal Answer: Springfield has 30,720 people."))
    elif calculator is not None:
        turns += [
            ("User", "What is 17 times 23?"),
            (
                "Assistant",
                "Thought: I multiply the two numbers.\n"
                f"Action: {calculator[0]}\nAction Input: {json.dumps({calculator[1]: '17 * 23'})}",
            ),
            ("User", "Observation: 391"),
            ("Assistant", "Thought: I know the answer.\nFinal Answer: 17 times 23 is 391."),
        ]
    else:
        function = specs[0].get("function", specs[0])
        properties = (function.get("parameters") or {}).get("properties") or {}
        arguments = {name: "..." for name in list(properties)[:2]}
        return (
            f"\n\nExample of one step:\nThought: I should use {function['name']}.\n"
            f"Action: {function['name']}\nAction Input: {json.dumps(arguments)}"
        )
    shown = "\n".join(f"[{who}]\n{text}" for who, text in turns)
    return (
        "\n\nExample (its places and numbers are made up; only the format matters):\n"
        + shown
        + "\n[End of the example]\nYour question is another one: answer it with the numbers from your own "
        "observations, never with the example's."
    )


def repair_prompt(error: str, specs: Sequence[Mapping[str, Any]]) -> str:
    """The one message sent after a malformed reply: what was wrong, and the expected format with a real tool."""
    names = ", ".join(str(spec.get("function", spec)["name"]) for spec in specs) or "(none)"
    first = next((m for m in (_main_parameter(spec) for spec in specs) if m is not None), None)
    if first is not None:
        action = f"Action: {first[0]}\nAction Input: {json.dumps({first[1]: '...'})}\n"
    else:
        action = 'Action: the tool\'s name\nAction Input: {"name": "value"}\n'
    return (
        f"Your last reply could not be used: {error}.\n"
        f"Reply again, beginning with 'Thought:', with one tool (one of: {names}) in exactly this format:\n"
        "Thought: I need to look this up.\n"
        f"{action}"
        "or, when the observations already hold the answer, with a 'Thought:' line and then a line starting "
        "with 'Final Answer:' that gives the answer."
    )
