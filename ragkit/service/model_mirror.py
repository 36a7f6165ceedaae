"""REST models made from dataclasses: :func:`mirrors` turns a dataclass's fields into a pydantic model's.

The service answers with what a pipeline returns (``Answer.to_dict()`` ...);
its response models must name the same fields with the same types. Writing
them twice lets them drift, so a REST model is declared with only what the
REST form says differently, and every other field comes from the dataclass::

    @mirrors(Hit)
    class HitModel(BaseModel):
        \"\"\"A context block of an answer: the chunk, its score and origin.\"\"\"

        origin: str  # the dataclass says Literal[...]; the REST schema keeps a plain string
        scores: dict[str, float] = Field(default_factory=dict)  # optional: to_dict leaves it out when empty

A field the class does not declare is required and has the dataclass field's
type, with nested dataclasses replaced by their own mirrors (so those are
declared first). A declared field that is not a dataclass field must be named
in ``extra`` (a property ``to_dict`` adds, such as ``Usage.total_tokens``);
anything else is a :class:`TypeError` at import, so a renamed field cannot
linger in the REST model.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, Union, cast, get_args, get_origin

from pydantic import BaseModel, create_model

M = TypeVar("M", bound=BaseModel)

_MIRRORS: dict[type, type[BaseModel]] = {}


def mirror_of(source: type) -> type[BaseModel]:
    """The REST model made from dataclass ``source`` (:class:`KeyError` if none was)."""
    return _MIRRORS[source]


def rest_type(annotation: Any) -> Any:
    """``annotation`` with every mirrored dataclass in it replaced by its REST model."""
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if annotation not in _MIRRORS:
            raise TypeError(f"{annotation.__qualname__} has no REST model: declare one with @mirrors first")
        return _MIRRORS[annotation]
    origin = get_origin(annotation)
    if origin in (list, dict):
        return origin[tuple(rest_type(arg) for arg in get_args(annotation))]
    if origin in (Union, types.UnionType):
        return Union[tuple(rest_type(arg) for arg in get_args(annotation))]
    return annotation


def mirrors(source: type, extra: tuple[str, ...] = ()) -> Callable[[type[M]], type[M]]:
    """Class decorator: the declared model, completed with every field of dataclass ``source``, in its order."""
    hints = typing.get_type_hints(source)
    names = [f.name for f in dataclasses.fields(source)]

    def build(declared: type[M]) -> type[M]:
        own = declared.model_fields
        unknown = sorted(set(own) - set(names) - set(extra))
        if unknown:
            raise TypeError(f"{declared.__name__} declares {unknown}, which {source.__qualname__} does not have")
        fields: dict[str, Any] = {}
        for name in [*names, *extra]:
            if name in own:
                fields[name] = (own[name].annotation, own[name])
            else:
                fields[name] = (rest_type(hints[name]), ...)
        model = create_model(  # type: ignore[call-overload]
            declared.__name__, __doc__=declared.__doc__, __module__=declared.__module__, **fields
        )
        _MIRRORS[source] = model
        return cast("type[M]", model)

    return build
