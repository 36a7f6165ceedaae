"""The base class of every configurable component.

A component's configuration *is* its constructor's arguments: the base class
records the arguments each instance was built with, so ``to_config()`` gives
``{"type": <registered name>, **arguments}`` and ``from_config`` builds the
same component again. Components validate their arguments in ``__init__``
(raising :class:`~ragkit.errors.ConfigError`), so a bad config fails when it
is built, not when it is first used.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from ragkit.errors import ConfigError

C = TypeVar("C", bound="Component")


class Component:
    """Base of loaders, splitters, embedders, stores and the other roles."""

    role: ClassVar[str] = ""
    """The role this component plays (``loader``, ``splitter``, ``embedder`` ...)."""
    component_type: ClassVar[str] = ""
    """The name it is registered under, the ``type`` key of its config."""

    _init_params: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_init(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def to_config(self) -> dict[str, Any]:
        """The config that rebuilds this component: its type and constructor arguments."""
        params = dict(getattr(self, "_init_params", {}))
        return {"type": self.component_type, **params}

    @classmethod
    def from_config(cls: type[C], config: Mapping[str, Any]) -> C:
        """Build from a config dict (the ``type`` key, if present, is ignored here)."""
        params = {key: value for key, value in config.items() if key != "type"}
        signature = inspect.signature(cls.__init__)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        unknown = sorted(set(params) - set(signature.parameters) - {"self"})
        if unknown and not accepts_any:
            allowed = ", ".join(p for p in signature.parameters if p != "self")
            raise ConfigError(
                f"{cls.role or 'component'} {cls.component_type!r}: unknown option(s) "
                f"{', '.join(unknown)}; allowed: {allowed}"
            )
        try:
            return cls(**params)
        except TypeError as exc:
            raise ConfigError(f"{cls.role or 'component'} {cls.component_type!r}: {exc}") from None


def _recording_init(init: Any) -> Any:
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: Component, *args: Any, **kwargs: Any) -> None:
        # the outermost subclass __init__ records; super().__init__ calls keep it
        if not hasattr(self, "_init_params"):
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError as exc:
                raise ConfigError(f"{type(self).__name__}: {exc}") from None
            bound.apply_defaults()
            params = dict(bound.arguments)
            params.pop("self", None)
            for name, parameter in signature.parameters.items():
                if parameter.kind is parameter.VAR_KEYWORD:
                    params.update(params.pop(name, {}))
            self._init_params = params
        init(self, *args, **kwargs)

    return wrapper
