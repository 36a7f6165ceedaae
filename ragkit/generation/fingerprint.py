"""What decides a generator's answers, as one stable string: the key part of every cache of model output.

The judge cache (``connectors/ragas``) and the evaluation answer cache
(:mod:`ragkit.evaluation.answer_cache`) key their entries on it, so two
generators with the same fingerprint must write the same answer to the same
greedy prompt. It holds the generator's class, model name, the options that
change what it writes (not timeouts, retries or keys), and the generator's
own ``fingerprint`` when it has one: the local connector's names the model
file's size and modification time, so replacing the weights behind the same
name starts afresh. A server behind a URL can change its model without
notice; its fingerprint is only its configuration.
"""

from __future__ import annotations

import json
from typing import Any

TRANSPORT_OPTIONS = frozenset(
    {"timeout", "max_retries", "api_key", "api_key_env", "http_client", "async_http_client", "threads"}
)
"""Options that change how a generator reaches its model, not what it writes: left out of the fingerprint."""


def generator_fingerprint(generator: Any) -> str:
    """A stable description of what decides a generator's answers: its class, model and output options.

    Building it loads no model: ``to_config``, ``model_name`` and a
    ``fingerprint`` attribute are read, nothing else.
    """
    cls = type(generator)
    config: Any = {}
    to_config = getattr(generator, "to_config", None)
    if callable(to_config):
        try:
            config = {k: v for k, v in to_config().items() if k not in TRANSPORT_OPTIONS}
        except Exception:  # a generator whose config cannot be read still has an identity
            config = {}
    explicit = getattr(generator, "fingerprint", None)
    payload = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "model": str(getattr(generator, "model_name", "")),
        "config": config,
        "fingerprint": explicit if isinstance(explicit, str) else None,
    }
    return json.dumps(payload, sort_keys=True, default=repr)
