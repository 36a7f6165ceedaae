"""Hugging Face hub model names (``org/name``): the local cache first, a download where the network allows.

The same order as the sentence-transformers embedder: (1) the local
Hugging Face cache without touching the network; (2) with
``HF_HUB_OFFLINE`` set, an error naming the repository and the cache
folder; (3) a quick probe of the hub endpoint (``huggingface_hub`` itself
retries an unreachable host for more than a minute); (4) the download.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ragkit import hub
from ragkit.errors import MissingDependencyError, UnavailableError
from ragkit.hub import offline

_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_HINT = (
    "download the model where there is network (huggingface-cli download REPO) and give its folder as 'model', "
    "or use a packaged model (python -m ragkit_transformers.packaged list)"
)


def looks_like_hub_name(model: str) -> bool:
    """Whether ``model`` reads as a hub repository id (``org/name``) rather than a path."""
    return bool(_HUB_NAME.match(model)) and not model.lower().endswith(".gguf") and not model.startswith(".")


def cache_dir() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    explicit = os.environ.get("HF_HUB_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME", "").strip()
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "huggingface") / "hub"


def snapshot(repo_id: str, gguf_file: str | None = None) -> Path:
    """The local folder of ``repo_id``'s newest snapshot: from the cache, else downloaded.

    With ``gguf_file`` only that file and the small JSON/tokenizer files
    are fetched (a GGUF repository holds every quantisation).

    Raises :class:`UnavailableError` naming the repository and the cache
    folder when it is not cached and the hub cannot be used.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingDependencyError(f"the hub model {repo_id!r}", "huggingface_hub") from None
    cache = cache_dir()
    patterns = [gguf_file, "*.json", "tokenizer*", "*.jinja", "*.txt"] if gguf_file else None
    try:
        return Path(snapshot_download(repo_id, cache_dir=str(cache), local_files_only=True, allow_patterns=patterns))
    except Exception:  # LocalEntryNotFoundError (an OSError) and friends: not cached
        pass
    where = f"model {repo_id!r} is not a local path and is not in the Hugging Face cache {cache}"
    if hub.offline():
        raise UnavailableError(f"{where}, and HF_HUB_OFFLINE is set; {_HINT}")
    endpoint = hub.endpoint()
    reason = hub.unreachable(endpoint)
    if reason:
        raise UnavailableError(f"{where}, and {endpoint} cannot be reached ({reason}); {_HINT}")
    try:
        return Path(snapshot_download(repo_id, cache_dir=str(cache), allow_patterns=patterns))
    except Exception as exc:  # HTTP errors, a gated or missing repo, a broken download
        raise UnavailableError(f"could not fetch model {repo_id!r} from {endpoint} into {cache}: {exc}") from None


__all__ = ["cache_dir", "looks_like_hub_name", "offline", "snapshot"]
