"""The Tool contract: schemas from signatures, validation, timeouts, errors, async tools, YAML and the registry."""

from __future__ import annotations

import asyncio
import enum
import threading
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from ragkit import registry
from ragkit.agents.tools import (
    FunctionTool,
    Tool,
    ToolArgumentsError,
    ToolError,
    ToolOutput,
    ToolTimeoutError,
    build_tools,
    tool,
)
from ragkit.errors import ConfigError, NotFoundError

# -- tools used below (module level, so their import path round-trips through YAML) -------------------------


class Unit(enum.StrEnum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class Place(BaseModel):
    """Where."""

    city: str
    country: str = "FR"


@tool
def weather(
    place: Place,
    unit: Unit = Unit.celsius,
    days: Annotated[int, Field(ge=1, le=7, description="How many days ahead.")] = 1,
    detail: Literal["short", "long"] = "short",
    note: str | None = None,
) -> dict[str, Any]:
    """Forecast the weather for a place.

    Uses a made-up model.

    Args:
        place: The city and its country.
        unit: Temperature unit,
            celsius or fahrenheit.
        days: Overridden by the Field description.
    """
    return {"city": place.city, "country": place.country, "unit": unit.value, "days": days, "detail": detail}


def lookup(word: str, limit: int = 3) -> str:
    """Look a word up.

    :param word: the word to look up
    :param limit: how many senses
    """
    return f"{word}:{limit}"


class Greeter:
    """Greet someone by name."""

    def __call__(self, name: str, excited: bool = False) -> str:
        """Say hello.

        Args:
            name: Who to greet.
        """
        return f"Hello, {name}{'!' if excited else '.'}"


class Echo(Tool):
    """Echo the text back."""

    def run(self, text: Annotated[str, Field(description="What to echo.")]) -> ToolOutput:
        return ToolOutput(content=text, data={"text": text})


# -- schemas ------------------------------------------------------------------------------------------------


def test_schema_from_a_typed_signature_has_types_defaults_required_and_descriptions():
    spec = weather.spec()
    assert spec["type"] == "function"
    function = spec["function"]
    assert function["name"] == "weather"
    assert function["description"] == "Forecast the weather for a place. Uses a made-up model."
    params = function["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["place"]
    props = params["properties"]
    assert set(props) == {"place", "unit", "days", "detail", "note"}
    # docstring Args: become descriptions (continuation lines joined); Field(description=...) wins over the docstring
    assert props["place"]["description"] == "The city and its country."
    assert props["unit"]["description"] == "Temperature unit, celsius or fahrenheit."
    assert props["days"] == {
        "default": 1,
        "description": "How many days ahead.",
        "maximum": 7,
        "minimum": 1,
        "type": "integer",
    }
    assert props["detail"]["enum"] == ["short", "long"] and props["detail"]["default"] == "short"
    assert props["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    # nested pydantic model and enum go to $defs, without pydantic's titles
    defs = params["$defs"]
    assert defs["Place"]["properties"] == {"city": {"type": "string"}, "country": {"default": "FR", "type": "string"}}
    assert defs["Place"]["required"] == ["city"]
    assert defs["Unit"]["enum"] == ["celsius", "fahrenheit"]
    assert "title" not in str(params)
    assert params["additionalProperties"] is False


def test_sphinx_param_docs_and_a_plain_function_wrapped_by_call():
    lookup_tool = tool(lookup, name="dictionary", timeout_s=None)
    assert lookup_tool.name == "dictionary"
    props = lookup_tool.parameters["properties"]
    assert props["word"]["description"] == "the word to look up"
    assert props["limit"]["description"] == "how many senses"
    assert lookup_tool.description == "Look a word up."
    assert lookup_tool.call({"word": "tool"}).content == "tool:3"


def test_a_class_with_call_and_a_tool_subclass():
    greeter = tool(Greeter())
    assert greeter.name == "greeter"
    assert greeter.description.startswith("Greet someone by name.")
    assert greeter.parameters["properties"]["name"]["description"] == "Who to greet."
    assert greeter.parameters["required"] == ["name"]
    assert greeter.call({"name": "Ada", "excited": True}).content == "Hello, Ada!"
    # decorating the class instantiates it
    assert tool(Greeter).call({"name": "Bob"}).content == "Hello, Bob."

    echo = Echo()
    assert echo.name == "echo"
    assert echo.description == "Echo the text back."
    assert echo.parameters["properties"]["text"] == {"description": "What to echo.", "type": "string"}
    assert echo.call({"text": "hi"}).data == {"text": "hi"}


def test_decorator_options_and_the_function_stays_callable():
    @tool(name="double_it", description="Double a number.", requires_approval=True, timeout_s=5, max_retries=4)
    def double(x: float) -> float:
        return 2 * x

    assert isinstance(double, FunctionTool)
    assert (double.name, double.description) == ("double_it", "Double a number.")
    assert double.requires_approval and double.timeout_s == 5.0 and double.max_retries == 4
    assert double(4) == 8  # still the function
    output = double.call({"x": "2.5"})  # lax: the model's "2.5" is a number
    assert output.content == "5.0" and output.data == 5.0


def test_bad_tool_definitions_fail_when_built():
    with pytest.raises(ConfigError, match="tool name 'has space'"):
        tool(lookup, name="has space")
    with pytest.raises(ConfigError, match="timeout_s must be positive"):
        tool(lookup, timeout_s=0)

    def positional(a: int, /) -> int:
        return a

    with pytest.raises(ConfigError, match="positional-only"):
        tool(positional)

    def untyped_object(handle: threading.Lock) -> None:  # no JSON schema for a lock
        return None

    with pytest.raises(ConfigError, match="no JSON schema"):
        tool(untyped_object)


# -- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field", "problem"),
    [
        ({}, "place", "required argument is missing"),
        ({"place": {"city": "Paris"}, "days": 9}, "days", "less than or equal to 7, got 9"),
        (
            {"place": {"city": "Paris"}, "days": "soon"},
            "days",
            'valid integer, unable to parse string as an integer, got "soon"',
        ),
        ({"place": {"country": "FR"}}, "place.city", "required argument is missing"),
        ({"place": {"city": "Paris"}, "unit": "kelvin"}, "unit", "'celsius' or 'fahrenheit', got \"kelvin\""),
        ({"place": {"city": "Paris"}, "detail": "huge"}, "detail", "'short' or 'long'"),
        (
            {"place": {"city": "Paris"}, "colour": "red"},
            "colour",
            "unknown argument (allowed: place, unit, days, detail, note)",
        ),
    ],
)
def test_validation_errors_name_the_field_and_what_was_expected(arguments, field, problem):
    with pytest.raises(ToolArgumentsError) as caught:
        weather.call(arguments)
    error = caught.value
    assert error.tool == "weather"
    assert [e["field"] for e in error.errors] == [field]
    assert problem in error.errors[0]["problem"]
    message = str(error)
    assert message.startswith(f"weather: invalid arguments: {field}: ")
    assert len(message) < 200


def test_arguments_as_json_text_and_refusals_of_non_objects():
    out = weather.call('{"place": {"city": "Oslo", "country": "NO"}, "unit": "fahrenheit", "days": 3}')
    assert out.data == {"city": "Oslo", "country": "NO", "unit": "fahrenheit", "days": 3, "detail": "short"}
    with pytest.raises(ToolArgumentsError, match="not valid JSON"):
        weather.call('{"place": ')
    with pytest.raises(ToolArgumentsError, match="must be a JSON object, got list"):
        weather.call("[1, 2]")


def test_validate_converts_to_the_declared_types_and_fills_defaults():
    values = weather.validate({"place": {"city": "Rome"}, "unit": "celsius"})
    assert isinstance(values["place"], Place) and values["place"].country == "FR"
    assert values["unit"] is Unit.celsius
    assert values["days"] == 1 and values["note"] is None


def test_many_errors_are_shortened_for_the_model():
    @tool
    def many(a: int, b: int, c: int, d: int, e: int) -> int:
        return a

    with pytest.raises(ToolArgumentsError) as caught:
        many.call({})
    assert len(caught.value.errors) == 5
    assert str(caught.value).endswith("(and 2 more)")


# -- running -------------------------------------------------------------------------------------------------


def test_a_tools_own_exception_becomes_a_tool_error_with_its_name_and_no_traceback():
    @tool
    def broken(key: str) -> str:
        return {"a": "1"}[key]

    with pytest.raises(ToolError) as caught:
        broken.call({"key": "b"})
    assert str(caught.value) == "broken: KeyError: 'b'"
    assert caught.value.tool == "broken"
    assert isinstance(caught.value.__cause__, KeyError)  # kept for logs and traces
    assert "Traceback" not in str(caught.value)

    @tool
    def refuses(x: int) -> int:
        raise ToolError(f"{x} is not prime; try 7")

    with pytest.raises(ToolError, match=r"^refuses: 3 is not prime; try 7$"):
        refuses.call({"x": 3})


def test_a_slow_sync_tool_times_out_with_a_message_naming_tool_and_limit():
    release = threading.Event()

    @tool(timeout_s=0.05)
    def stuck() -> str:
        release.wait(5)
        return "late"

    with pytest.raises(ToolTimeoutError, match=r"^stuck: timed out after 0.05 s$"):
        stuck.call({})
    with pytest.raises(ToolTimeoutError):
        asyncio.run(stuck.acall({}))
    release.set()


def test_an_async_tool_runs_from_sync_and_async_code_and_times_out():
    @tool(timeout_s=0.2)
    async def pause(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "awake"

    assert pause.is_async
    assert pause.call({"seconds": 0}).content == "awake"
    assert asyncio.run(pause.acall({"seconds": 0})).content == "awake"
    with pytest.raises(ToolTimeoutError, match=r"^pause: timed out after 0.2 s$"):
        asyncio.run(pause.acall({"seconds": 5}))
    with pytest.raises(ToolTimeoutError):
        pause.call({"seconds": 5})

    async def inside_a_loop() -> str:  # the sync call from a thread that runs a loop
        return pause.call({"seconds": 0}).content

    assert asyncio.run(inside_a_loop()) == "awake"


def test_acall_does_not_block_the_event_loop():
    started = threading.Event()

    @tool(timeout_s=2)
    def blocking() -> str:
        started.wait(2)
        return "done"

    async def both() -> list[str]:
        async def tick() -> str:
            started.set()  # runs while the tool's thread waits
            return "tick"

        result = await asyncio.gather(blocking.acall({}), tick())
        return [result[0].content, result[1]]

    assert asyncio.run(both()) == ["done", "tick"]


def test_results_become_observations():
    @tool
    def structured() -> Place:
        return Place(city="Lyon")

    @tool
    def numbers() -> list[int]:
        return [1, 2]

    assert structured.call().content == '{"city":"Lyon","country":"FR"}'
    assert numbers.call().content == "[1, 2]" and numbers.call().data == [1, 2]


def test_no_timeout_runs_in_the_callers_thread():
    @tool(timeout_s=None)
    def where() -> str:
        return threading.current_thread().name

    assert where.call().content == threading.current_thread().name


# -- YAML, registry, entry points ---------------------------------------------------------------------------


def test_build_tools_from_yaml_and_round_trip_through_to_config():
    specs = [
        "calculator",
        {"type": "calculator", "name": "calc2", "timeout_s": 2},
        {
            "type": "python",
            "function": "tests.agents.test_tools:lookup",
            "name": "define",
            "requires_approval": True,
        },
        {"type": "python", "function": "tests.agents.test_tools:weather"},  # a decorated function
        {"type": "python", "function": "tests.agents.test_tools:Greeter"},  # a class with __call__
        Echo(),  # a tool object passes through
    ]
    tools = build_tools(specs)
    assert [t.name for t in tools] == ["calculator", "calc2", "define", "weather", "greeter", "echo"]
    assert tools[1].timeout_s == 2.0
    define = tools[2]
    assert define.requires_approval and define.call({"word": "x", "limit": 1}).content == "x:1"
    configs = [t.to_config() for t in tools[:5]]
    assert configs[2]["function"] == "tests.agents.test_tools:lookup"
    assert configs[4]["function"] == "tests.agents.test_tools:Greeter"
    assert weather.to_config()["function"] == "tests.agents.test_tools:weather"
    rebuilt = build_tools(configs)
    assert [t.spec() for t in rebuilt] == [t.spec() for t in tools[:5]]
    assert [t.to_config() for t in rebuilt] == configs


def test_a_function_that_cannot_be_imported_keeps_the_callable_in_its_config():
    def local(x: int) -> int:
        return x

    config = tool(local).to_config()
    assert config["function"] is local


def test_build_tools_refuses_duplicates_and_unknown_types():
    with pytest.raises(ConfigError, match=r"tools\[1\]: a second tool named 'calculator'"):
        build_tools(["calculator", "calculator"])
    with pytest.raises(NotFoundError, match=r"tools\[0\]: no tool named 'nope'; available: .*calculator"):
        build_tools(["nope"])
    with pytest.raises(ConfigError, match="must be a list"):
        build_tools("calculator")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot import"):
        build_tools([{"type": "python", "function": "no_such_module_x:f"}])
    with pytest.raises(ConfigError, match="'package.module:name'"):
        build_tools([{"type": "python", "function": "lookup"}])


def test_builtin_tool_types_are_registered():
    assert {"ask", "calculator", "list_collections", "python", "search"} <= set(registry.available("tool"))


def test_a_registered_tool_class_is_found_by_type(monkeypatch):
    monkeypatch.setitem(registry._registry, ("tool", "echo"), Echo)
    monkeypatch.setattr(Echo, "component_type", "echo")
    [echo] = build_tools([{"type": "echo", "name": "parrot", "timeout_s": 1}])
    assert isinstance(echo, Echo) and echo.name == "parrot"
    assert echo.to_config() == {
        "type": "echo",
        "name": "parrot",
        "description": None,
        "requires_approval": False,
        "timeout_s": 1,
        "max_retries": 2,
    }
    assert echo.call({"text": "x"}).content == "x"


def test_a_third_party_tool_is_found_through_a_real_entry_point(tmp_path, monkeypatch):
    (tmp_path / "ragkit_test_tools.py").write_text(
        "from typing import Annotated\n"
        "from pydantic import Field\n"
        "from ragkit.agents.tools import Tool, ToolOutput\n\n"
        "class Shout(Tool):\n"
        '    """Shout the text."""\n\n'
        '    def run(self, text: Annotated[str, Field(description="What to shout.")]) -> ToolOutput:\n'
        "        return ToolOutput(content=text.upper())\n",
        encoding="utf-8",
    )
    info = tmp_path / "ragkit_test_tools-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ragkit-test-tools\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[ragkit.components]\ntool.shout = ragkit_test_tools:Shout\n", encoding="utf-8"
    )
    monkeypatch.setitem(registry._registry, ("tool", "shout"), None)
    monkeypatch.delitem(registry._registry, ("tool", "shout"))  # undone: the entry for 'shout' goes away again
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "shout" in registry.available("tool")
    [shout] = build_tools([{"type": "shout"}])
    assert shout.name == "shout" and shout.description == "Shout the text."
    assert shout.call({"text": "hey"}).content == "HEY"
    assert shout.to_config()["type"] == "shout"


def test_finished_calls_leave_no_threads_behind():
    @tool
    def fast() -> int:
        return 1

    before = threading.active_count()
    for _ in range(100):
        assert fast.call({}).data == 1
    assert threading.active_count() <= before + 1


def test_a_decorated_function_is_found_through_a_real_entry_point(tmp_path, monkeypatch):
    (tmp_path / "ragkit_test_fn_tools.py").write_text(
        "from ragkit.agents.tools import tool\n\n"
        "@tool(timeout_s=3)\n"
        "def initials(name: str, dots: bool = True) -> str:\n"
        '    """The initials of a name."""\n'
        '    return (". " if dots else "").join(part[0] for part in name.split()) + ("." if dots else "")\n',
        encoding="utf-8",
    )
    info = tmp_path / "ragkit_test_fn_tools-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ragkit-test-fn-tools\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[ragkit.components]\ntool.initials = ragkit_test_fn_tools:initials\n", encoding="utf-8"
    )
    monkeypatch.setitem(registry._registry, ("tool", "initials"), None)
    monkeypatch.delitem(registry._registry, ("tool", "initials"))
    monkeypatch.syspath_prepend(str(tmp_path))
    plain, named = build_tools(["initials", {"type": "initials", "name": "abbreviate", "max_retries": 0}])
    assert plain.call({"name": "Ada Lovelace"}).content == "A. L."
    assert (named.name, named.max_retries, named.timeout_s) == ("abbreviate", 0, 3.0)
    config = named.to_config()
    assert config["type"] == "initials" and "function" not in config
    assert build_tools([config])[0].to_config() == config
    with pytest.raises(ConfigError, match="unknown option"):
        build_tools([{"type": "initials", "colour": "red"}])


def test_null_for_an_optional_argument_means_its_default():
    out = weather.call({"place": {"city": "Nice"}, "days": None, "unit": None})
    assert out.data["days"] == 1 and out.data["unit"] == "celsius"
    with pytest.raises(ToolArgumentsError, match="place: input should be a valid dictionary"):
        weather.call({"place": None})
