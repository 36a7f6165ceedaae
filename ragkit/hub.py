"""The Hugging Face hub as connectors that load hub models see it: offline or not, and reachable or not.

Pure standard library (the core imports no ``huggingface_hub``): the
sentence-transformers embedder and the transformers generator both look up
a hub name the same way, (1) the local cache, (2) an error naming the
repository when ``HF_HUB_OFFLINE`` forbids the network, (3) a quick probe
of the endpoint, because ``huggingface_hub`` retries an unreachable host
for more than a minute, (4) the download. Steps 2 and 3 live here.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

PROBE_TIMEOUT_S = 5.0
"""How long the probe waits for the hub to answer."""


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the network (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT``, else ``https://huggingface.co``."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def unreachable(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``url`` cannot be reached, or ``None`` when it answers (any HTTP status counts as an answer)."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
