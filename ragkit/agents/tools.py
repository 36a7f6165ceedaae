"""Tools: typed functions an agent's model may call.

A :class:`Tool` is a component of role ``tool``. Its JSON schema comes from
a typed signature (pydantic), its arguments are validated before the call,
and every failure the model could fix (bad arguments, an error inside the
tool, a timeout) is a :class:`ToolError` whose message is short enough to be
sent back to the model as the observation.

::

    from ragkit.agents.tools import tool

    @tool
    def add(a: int, b: Annotated[int, Field(ge=0, description="the second number")] = 1) -> int:
        \"\"\"Add two integers.\"\"\"
        return a + b

    add.spec()              # the OpenAI tool definition
    add.call({"a": 2})      # ToolOutput(content="3", data=3)

Built-in tools (``search``, ``ask``, ``calculator``, ``list_collections``)
live in :mod:`ragkit.agents.builtin`; third parties announce theirs as
``tool.<name>`` entry points in the ``ragkit.components`` group.
:func:`build_tools` builds a list of tools from YAML.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import inspect
import json
import re
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar, get_args, get_origin, get_type_hints

import pydantic
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from ragkit.component import Component
from ragkit.errors import ConfigError, RagkitError
from ragkit.registry import register

if TYPE_CHECKING:
    from ragkit.rag.answer import Citation
    from ragkit.schema import Hit

__all__ = [
    "FunctionTool",
    "Tool",
    "ToolArgumentsError",
    "ToolError",
    "ToolOutput",
    "ToolTimeoutError",
    "build_tools",
    "tool",
]

T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_ERRORS_SHOWN = 3
_MAX_INPUT_SHOWN = 60


@dataclass
class ToolOutput:
    """What a tool call returns.

    ``content`` is the observation the model reads (short text or JSON);
    ``citations`` and ``hits`` carry what retrieval tools found, so an
    agent's final answer can cite it; ``data`` is the structured result
    (rows, a number, hit dicts) for the trace and the API.
    """

    content: str
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    data: Any = None


class ToolError(RagkitError):
    """A tool call failed in a way the model may fix; the message is sent back to it.

    ``tool`` is the name of the tool that failed (filled in by
    :meth:`Tool.call` when the tool itself did not). ``str(error)`` starts with
    it, so the model knows which call the observation answers.
    """

    http_status = 422
    exit_code = 2

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tool = tool

    def __str__(self) -> str:
        if self.tool and not self.message.startswith(f"{self.tool}:"):
            return f"{self.tool}: {self.message}"
        return self.message


class ToolArgumentsError(ToolError):
    """The arguments failed validation against the tool's schema; the message names the field.

    ``errors`` lists one ``{"field", "problem"}`` dict per failed field.
    """

    def __init__(self, message: str, *, tool: str | None = None, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, tool=tool)
        self.errors = errors or []


class ToolTimeoutError(ToolError):
    """The tool did not finish within its ``timeout_s``."""


def arguments_object(arguments: Mapping[str, Any] | str | None, tool: str) -> Mapping[str, Any]:
    """A tool call's arguments as a mapping: ``None`` is ``{}``, text is parsed as a JSON object.

    Raises :class:`ToolArgumentsError` (for ``tool``) when the text is not
    JSON or the value is not an object, worded for a model to correct.
    """
    if arguments is None:
        return {}
    if isinstance(arguments, str):
        text = arguments.strip() or "{}"
        try:
            arguments = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToolArgumentsError(
                f"arguments are not valid JSON ({exc.msg} at character {exc.pos}); send a JSON object",
                tool=tool,
                errors=[{"field": "", "problem": "not valid JSON"}],
            ) from None
    if not isinstance(arguments, Mapping):
        raise ToolArgumentsError(
            f"arguments must be a JSON object, got {type(arguments).__name__}",
            tool=tool,
            errors=[{"field": "", "problem": "not an object"}],
        )
    return arguments


class Tool(Component):
    """Base of every tool: a name, a description, a JSON schema and :meth:`run`.

    A subclass implements ``run(self, **arguments) -> ToolOutput`` (or the
    async ``arun``) with typed, annotated parameters: the schema the model
    sees and the validation of its arguments both come from that signature
    (``Annotated[int, Field(ge=1, description=...)]`` and a docstring
    ``Args:`` section give the descriptions). Alternatively a subclass sets
    :attr:`arguments_model` to a pydantic model. ``name`` and ``description``
    default to the class attributes :attr:`default_name` and
    :attr:`default_description`.

    :meth:`call` (and :meth:`acall`) is what an agent uses: it validates,
    runs under ``timeout_s`` and turns every failure into a
    :class:`ToolError` naming the tool. ``max_retries`` is how many errors of
    this tool the agent sends back to the model before giving up on it.
    """

    role: ClassVar[str] = "tool"
    default_name: ClassVar[str] = ""
    default_description: ClassVar[str] = ""
    arguments_model: ClassVar[type[BaseModel] | None] = None
    """A pydantic model of the arguments; when unset, the signature of ``run`` (or ``arun``) is used."""

    name: str
    description: str
    requires_approval: bool
    timeout_s: float | None
    max_retries: int

    def __init__(
        self,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout_s: float | None = 30.0,
        max_retries: int = 2,
    ) -> None:
        self.name = _check_name(name or self.default_name or type(self).component_type or _snake(type(self).__name__))
        self.description = description or self.default_description or _summary(type(self).__doc__)
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigError(f"tool {self.name!r}: timeout_s must be positive or null, got {timeout_s!r}")
        if max_retries < 0:
            raise ConfigError(f"tool {self.name!r}: max_retries must be 0 or more, got {max_retries!r}")
        self.requires_approval = bool(requires_approval)
        self.timeout_s = float(timeout_s) if timeout_s is not None else None
        self.max_retries = int(max_retries)
        self._model: type[BaseModel] | None = None
        self._parameters: dict[str, Any] | None = None

    # --- what the model sees -------------------------------------------------

    def _signature_target(self) -> Callable[..., Any]:
        """The callable whose signature defines the arguments (``run`` or ``arun``, whichever is overridden)."""
        if type(self).run is Tool.run and type(self).arun is not Tool.arun:
            return self.arun
        return self.run

    def _arguments(self) -> type[BaseModel]:
        if self._model is None:
            if self.arguments_model is not None:
                self._model = self.arguments_model
            else:
                self._model = arguments_model_for(self._signature_target(), self.name)
        return self._model

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments: ``{"type": "object", "properties": ..., "required": [...]}``."""
        if self._parameters is None:
            self._parameters = json_schema(self._arguments())
        return self._parameters

    def spec(self) -> dict[str, Any]:
        """The OpenAI tool definition: ``{"type": "function", "function": {name, description, parameters}}``."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    # --- what subclasses implement --------------------------------------------

    def run(self, *args: Any, **arguments: Any) -> ToolOutput:
        """Do the work with validated (keyword) arguments. Subclasses implement this or :meth:`arun`.

        A subclass declares its own typed keyword parameters (the schema comes
        from them); ``*args`` here only lets any such signature override this one.
        """
        if type(self).arun is Tool.arun:
            raise NotImplementedError(f"{type(self).__name__} implements neither run nor arun")
        return _run_coroutine(self.arun(*args, **arguments))

    async def arun(self, *args: Any, **arguments: Any) -> ToolOutput:
        """Async twin of :meth:`run`; by default runs :meth:`run` in a worker thread."""
        if type(self).run is Tool.run:
            raise NotImplementedError(f"{type(self).__name__} implements neither run nor arun")
        return await asyncio.to_thread(self.run, *args, **arguments)

    @property
    def is_async(self) -> bool:
        """True when the tool's work is a coroutine (it implements ``arun``), so :meth:`acall` awaits it directly."""
        return type(self).arun is not Tool.arun

    # --- what an agent calls ----------------------------------------------------

    def validate(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
        """The arguments checked and converted against the schema; raises :class:`ToolArgumentsError`.

        ``arguments`` may be a mapping or a JSON object as text (what a model's
        tool call carries). Missing optional arguments get their defaults.
        """
        arguments = arguments_object(arguments, self.name)
        model = self._arguments()
        # a null for an optional argument means "the default" (small models often send {"top_k": null})
        given = {
            key: value
            for key, value in arguments.items()
            if not (value is None and key in model.model_fields and not model.model_fields[key].is_required())
        }
        try:
            validated = model.model_validate(given)
        except ValidationError as exc:
            errors = _describe_errors(exc, model)
            shown = "; ".join(
                f"{e['field']}: {e['problem']}" if e["field"] else e["problem"] for e in errors[:_MAX_ERRORS_SHOWN]
            )
            more = f" (and {len(errors) - _MAX_ERRORS_SHOWN} more)" if len(errors) > _MAX_ERRORS_SHOWN else ""
            raise ToolArgumentsError(f"invalid arguments: {shown}{more}", tool=self.name, errors=errors) from None
        return {key: validated.__dict__[key] for key in model.model_fields}

    def call(self, arguments: Mapping[str, Any] | str | None = None) -> ToolOutput:
        """Validate ``arguments`` and run the tool under ``timeout_s``.

        Raises :class:`ToolArgumentsError` for bad arguments,
        :class:`ToolTimeoutError` when the tool takes longer than ``timeout_s``,
        and :class:`ToolError` (naming the tool, with the original exception as
        ``__cause__``) for any other failure.
        """
        values = self.validate(arguments)
        try:
            if self.is_async:
                result = _run_coroutine(self._timed(self.arun(**values)))
            else:
                result = self._run_in_thread(values)
        except ToolError as exc:
            if exc.tool is None:
                exc.tool = self.name
            raise
        except Exception as exc:
            raise _wrap(exc, self.name) from exc
        return _as_output(result)

    async def acall(self, arguments: Mapping[str, Any] | str | None = None) -> ToolOutput:
        """Async twin of :meth:`call` (sync tools run in a worker thread; the loop is never blocked)."""
        values = self.validate(arguments)
        try:
            if self.is_async:
                result = await self._timed(self.arun(**values))
            else:
                result = await self._timed(asyncio.to_thread(self.run, **values))
        except ToolError as exc:
            if exc.tool is None:
                exc.tool = self.name
            raise
        except Exception as exc:
            raise _wrap(exc, self.name) from exc
        return _as_output(result)

    async def _timed(self, awaitable: Awaitable[T]) -> T:
        if self.timeout_s is None:
            return await awaitable
        try:
            return await asyncio.wait_for(awaitable, self.timeout_s)
        except TimeoutError:
            raise self._timeout_error() from None

    def _timeout_error(self) -> ToolTimeoutError:
        return ToolTimeoutError(f"timed out after {self.timeout_s:g} s", tool=self.name)

    def _run_in_thread(self, values: dict[str, Any]) -> Any:
        if self.timeout_s is None:
            return self.run(**values)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self.run(**values)
            except BaseException as exc:  # carried back to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"ragkit-tool-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            raise self._timeout_error()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# --- functions as tools ------------------------------------------------------------


@register("tool", "python")
class FunctionTool(Tool):
    """A typed Python function (sync or async), or an object with ``__call__``, as a tool.

    ``function`` is the callable or its import path ``"package.module:name"``
    (a class there is instantiated without arguments and its ``__call__``
    used). The schema comes from the signature, the description from the
    docstring (its first paragraph; the ``Args:`` section describes the
    parameters). What the function returns becomes the observation: a
    :class:`ToolOutput` as it is, a string as its text, anything else as JSON
    (and as ``data``).
    """

    def __init__(
        self,
        function: Callable[..., Any] | str,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout_s: float | None = 30.0,
        max_retries: int = 2,
    ) -> None:
        target = _resolve_callable(function)
        self.function: Callable[..., Any] = target
        doc = _docstring_of(target)
        super().__init__(
            name=name or _default_name(target),
            description=description or _summary(doc) or f"Call {_default_name(target)}.",
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
        self._is_coroutine = _is_coroutine_callable(target)
        self._model = arguments_model_for(target, self.name)
        # A decorated function announced as an entry point ("tool.weather" = "pkg:weather") is found by the
        # registry as this object, which then builds the configured copies: see _configured.
        self.from_config = self._configured  # type: ignore[method-assign]

    @property
    def is_async(self) -> bool:
        """True when the function is a coroutine function."""
        return self._is_coroutine

    def run(self, **arguments: Any) -> ToolOutput:
        """Call the function (an async one on a private event loop)."""
        if self._is_coroutine:
            return _as_output(_run_coroutine(self.function(**arguments)))
        return _as_output(self.function(**arguments))

    async def arun(self, **arguments: Any) -> ToolOutput:
        """Await the function (a sync one runs in a worker thread)."""
        if self._is_coroutine:
            return _as_output(await self.function(**arguments))
        return _as_output(await asyncio.to_thread(self.function, **arguments))

    def _configured(self, config: Mapping[str, Any]) -> FunctionTool:
        """A copy of this tool with the options in ``config`` (the registry's build of an entry-point tool)."""
        options = {key: value for key, value in config.items() if key not in ("type", "function")}
        params = {key: value for key, value in self._init_params.items() if key != "function"}
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise ConfigError(
                f"tool {self.component_type!r}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(params)}"
            )
        copy = FunctionTool(self.function, **{**params, **options})
        copy.component_type = self.component_type  # type: ignore[misc]
        return copy

    def to_config(self) -> dict[str, Any]:
        """The config, with the function as its import path when it has one.

        A tool from an entry point (its type is not ``python``) leaves the
        function out: its type names it.
        """
        config = super().to_config()
        if self.component_type != "python":
            config.pop("function", None)
            return config
        function = config.get("function")
        if callable(function):
            path = _import_path(function)
            if path is not None:
                config["function"] = path
        return config

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function directly (a decorated function stays callable)."""
        return self.function(*args, **kwargs)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    timeout_s: float | None = 30.0,
    max_retries: int = 2,
) -> Any:
    """Make a typed function (or a class with ``__call__``, or such an object) a :class:`FunctionTool`.

    Use bare (``@tool``) or with options (``@tool(name="lookup", timeout_s=5)``);
    ``tool(fn)`` works too. A decorated class is instantiated without arguments.
    """

    def make(target: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(
            target,
            name=name,
            description=description,
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )

    if fn is None:
        return make
    return make(fn)


def build_tools(specs: Sequence[Mapping[str, Any] | str | Tool | Callable[..., Any]] | None) -> list[Tool]:
    """Tools from a YAML list: names (``calculator``), configs (``{type: search, collection: docs}``) or tools.

    A plain callable is wrapped with :func:`tool`. Names must be unique, since
    the model calls a tool by its name.
    """
    from ragkit import registry

    if specs is None:
        return []
    if isinstance(specs, (str, Mapping)) or not isinstance(specs, Sequence):
        raise ConfigError(f"tools must be a list of tool names or configs, got {type(specs).__name__}")
    tools: list[Tool] = []
    for index, spec in enumerate(specs):
        if isinstance(spec, Tool):
            built = spec
        elif isinstance(spec, (str, Mapping)):
            try:
                built = registry.build("tool", spec)
            except RagkitError as exc:
                raise type(exc)(f"tools[{index}]: {exc}") from exc
            if not isinstance(built, Tool):
                raise ConfigError(f"tools[{index}]: {type(built).__name__} is not a Tool")
        elif callable(spec):
            built = tool(spec)
        else:
            raise ConfigError(f"tools[{index}]: expected a tool name, a config mapping or a Tool, got {spec!r}")
        tools.append(built)
    seen: dict[str, int] = {}
    for index, built in enumerate(tools):
        if built.name in seen:
            raise ConfigError(
                f"tools[{index}]: a second tool named {built.name!r} (first: tools[{seen[built.name]}]); "
                "give one a different 'name'"
            )
        seen[built.name] = index
    return tools


# --- schemas from signatures ---------------------------------------------------------


def arguments_model_for(fn: Callable[..., Any], name: str = "tool") -> type[BaseModel]:
    """A pydantic model of ``fn``'s keyword arguments (``self``, ``*args`` and ``**kwargs`` left out).

    Types come from the annotations (``Annotated[..., Field(...)]`` kept),
    defaults from the signature, descriptions from ``Field(description=...)``
    or else the docstring's ``Args:`` (or ``:param x:``) section. Unknown
    arguments are refused.
    """
    target = _call_target(fn)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"tool {name!r}: cannot read the signature of {fn!r}: {exc}") from None
    try:
        hints = get_type_hints(_unwrap_for_hints(target), include_extras=True)
    except Exception as exc:
        raise ConfigError(f"tool {name!r}: cannot resolve the type annotations of {fn!r}: {exc}") from None
    docs = _param_docs(_docstring_of(fn))
    fields: dict[str, Any] = {}
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise ConfigError(f"tool {name!r}: parameter {pname!r} is positional-only; tools are called by keyword")
        annotation = hints.get(pname, Any)
        if annotation is ToolOutput or pname == "return":
            continue
        if pname in docs and not _has_description(annotation, param.default):
            annotation = Annotated[annotation, pydantic.Field(description=docs[pname])]
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    model_name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part) or "Tool"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a parameter named like a BaseModel attribute ("json") still works
            model = pydantic.create_model(  # type: ignore[call-overload]
                f"{model_name}Arguments",
                __config__=ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=False),
                **fields,
            )
            model.model_json_schema()
    except Exception as exc:
        raise ConfigError(f"tool {name!r}: its parameters have no JSON schema: {exc}") from None
    return model  # type: ignore[no-any-return]


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema for a tool: ``type: object`` with ``properties`` and ``required``, titles dropped."""
    schema: dict[str, Any] = _drop_titles(model.model_json_schema())
    schema.setdefault("properties", {})
    schema["type"] = "object"
    schema.setdefault("required", [])
    return schema


def _drop_titles(node: Any) -> Any:
    """The schema without the ``title`` keywords pydantic adds (they cost a small model tokens, say nothing)."""
    if isinstance(node, list):
        return [_drop_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _drop_titles(sub) for name, sub in value.items()}
        elif key in ("default", "const", "enum", "examples"):
            out[key] = value
        else:
            out[key] = _drop_titles(value)
    return out


def _has_description(annotation: Any, default: Any) -> bool:
    if isinstance(default, FieldInfo) and default.description:
        return True
    if get_origin(annotation) is Annotated:
        return any(isinstance(meta, FieldInfo) and meta.description for meta in get_args(annotation)[1:])
    return False


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:\s*$")
_OTHER_SECTION = re.compile(r"^\s*(Returns?|Yields?|Raises|Examples?|Notes?|See Also|Attributes)\s*:\s*$")
_ARG_LINE = re.compile(r"^(\s*)\*{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]*\s)?([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")


def _param_docs(doc: str | None) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section or Sphinx ``:param x:`` lines."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    found: dict[str, str] = {}
    in_args = False
    current: str | None = None
    indent = 0
    for line in lines:
        sphinx = _SPHINX.match(line)
        if sphinx:
            current = sphinx.group(1)
            found[current] = sphinx.group(2).strip()
            indent = len(line) - len(line.lstrip())
            in_args = False
            continue
        if _SECTION.match(line):
            in_args, current = True, None
            continue
        if _OTHER_SECTION.match(line):
            in_args, current = False, None
            continue
        if not line.strip():
            current = None if not in_args else current
            continue
        line_indent = len(line) - len(line.lstrip())
        if in_args:
            arg = _ARG_LINE.match(line)
            if arg and (current is None or line_indent <= indent):
                current = arg.group(2)
                indent = line_indent
                found[current] = arg.group(4).strip()
                continue
            if current is not None and line_indent > indent:
                found[current] = f"{found[current]} {line.strip()}".strip()
                continue
            if line_indent == 0:
                in_args, current = False, None
        elif current is not None and line_indent > indent:
            found[current] = f"{found[current]} {line.strip()}".strip()
    return {key: value for key, value in found.items() if value}


def _summary(doc: str | None) -> str:
    """The docstring up to its first section (``Args:``, ``Returns:`` ...), paragraphs joined."""
    if not doc:
        return ""
    kept: list[str] = []
    for line in inspect.cleandoc(doc).splitlines():
        if _SECTION.match(line) or _OTHER_SECTION.match(line) or _SPHINX.match(line) or line.strip() == "::":
            break
        kept.append(line.strip())
    paragraphs = " ".join(kept).split("  ")
    return re.sub(r"\s+", " ", " ".join(paragraphs)).strip()


def _describe_errors(exc: ValidationError, model: type[BaseModel]) -> list[dict[str, str]]:
    """One short ``{"field", "problem"}`` per error, phrased for a small model to act on."""
    allowed = ", ".join(model.model_fields) or "none"
    out: list[dict[str, str]] = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error.get("loc", ()))
        kind = error.get("type", "")
        if kind == "missing":
            problem = "required argument is missing"
        elif kind == "extra_forbidden":
            problem = f"unknown argument (allowed: {allowed})"
        else:
            message = str(error.get("msg", "invalid value"))
            problem = f"{message[0].lower()}{message[1:]}" if message else "invalid value"
            value = error.get("input")
            if value is not None and kind not in ("missing",):
                shown = json.dumps(value, default=str)
                if len(shown) > _MAX_INPUT_SHOWN:
                    shown = shown[: _MAX_INPUT_SHOWN - 3] + "..."
                problem += f", got {shown}"
        out.append({"field": loc, "problem": problem})
    return out


# --- helpers ------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"tool name {name!r} must be 1 to 64 letters, digits, '_' or '-' (the model calls it by name)"
        )
    return name


def _snake(text: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", text).lower()


def _call_target(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What to read the signature from: the function, or a callable object's bound ``__call__``."""
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn):
        return fn
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with __call__
    return call if call is not None else fn


def _unwrap_for_hints(fn: Callable[..., Any]) -> Any:
    if inspect.ismethod(fn):
        return fn.__func__
    return inspect.unwrap(fn)


def _docstring_of(fn: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(fn) if (inspect.isfunction(fn) or inspect.ismethod(fn)) else None
    if doc:
        return doc
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the method, for its docstring
    call_doc = inspect.getdoc(call) if call is not None and not inspect.isfunction(fn) else None
    class_doc = type(fn).__doc__ if not inspect.isfunction(fn) and not inspect.ismethod(fn) else None
    if class_doc and call_doc:
        return f"{inspect.cleandoc(class_doc)}\n\n{call_doc}" if "Args:" not in class_doc else class_doc
    return class_doc or call_doc


def _default_name(fn: Callable[..., Any]) -> str:
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return str(fn.__name__)
    return _snake(type(fn).__name__)


def _is_coroutine_callable(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def _resolve_callable(function: Callable[..., Any] | str) -> Callable[..., Any]:
    """The callable itself, ``"module:name"`` imported, a class instantiated, a tool unwrapped."""
    target: Any = function
    if isinstance(function, str):
        module_name, sep, attr = function.partition(":")
        if not sep or not module_name or not attr:
            raise ConfigError(f"python tool function must be 'package.module:name', got {function!r}")
        try:
            target = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"python tool function {function!r}: cannot import {module_name!r}: {exc}") from None
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise ConfigError(f"python tool function {function!r}: {module_name!r} has no {attr!r}") from None
    if isinstance(target, FunctionTool):
        return target.function
    if inspect.isclass(target):
        try:
            target = target()
        except TypeError as exc:
            raise ConfigError(
                f"python tool {function!r}: a tool class must be built without arguments: {exc}"
            ) from None
    if not callable(target):
        raise ConfigError(f"python tool function {function!r} is not callable")
    return target  # type: ignore[no-any-return]


def _import_path(fn: Callable[..., Any]) -> str | None:
    """``"module:qualname"`` when importing it gives back ``fn`` (or the tool wrapping it), else None."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
        module, qualname = type(fn).__module__, type(fn).__qualname__
    if not module or not qualname or "<" in qualname:
        return None
    path = f"{module}:{qualname}"
    try:
        resolved = _resolve_callable(path)
    except RagkitError:
        return None
    if resolved is fn or (not inspect.isfunction(fn) and type(resolved) is type(fn)):
        return path
    return None


def _as_output(result: Any) -> ToolOutput:
    if isinstance(result, ToolOutput):
        return result
    if isinstance(result, str):
        return ToolOutput(content=result, data=result)
    if isinstance(result, BaseModel):
        return ToolOutput(content=result.model_dump_json(), data=result)
    if isinstance(result, enum.Enum):
        return ToolOutput(content=str(result.value), data=result)
    try:
        content = json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        content = str(result)
    return ToolOutput(content=content, data=result)


def _wrap(exc: BaseException, tool_name: str) -> ToolError:
    """A tool's own exception as a :class:`ToolError`: its type and message, never a traceback."""
    message = str(exc).strip() or "no message"
    if not isinstance(exc, RagkitError):
        message = f"{type(exc).__name__}: {message}"
    if len(message) > 500:
        message = message[:497] + "..."
    error = ToolError(message, tool=tool_name)
    return error


def _run_coroutine(coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code, also when the calling thread already runs a loop."""

    async def runner() -> T:
        return await coro

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(runner())
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = asyncio.run(runner())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name="ragkit-tool-loop", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]
