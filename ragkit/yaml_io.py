"""Reading YAML: libyaml's C parser when PyYAML was built with it, else PyYAML's Python one.

``yaml.safe_load`` always takes the Python parser, about ten times slower;
config and recipe files are read on every collection open and suite run.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, with the C parser when it is there (same results, same ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_LOADER)
