"""A paused agent run as a signed token, so a REST client can carry it and resume statelessly.

The state is JSON (messages so far, the trace, counters, sources, the
pending calls), encoded as ``<base64url(json)>.<hex HMAC-SHA256>``. The key
is the agent's ``secret``, else the ``RAGKIT_AGENT_SECRET`` variable, else
a random key made once per process (a run then resumes only in the process
that paused it: set a secret when several workers serve the same agent).
A state whose signature does not match (a client edited its observations or
counters), that is not a state at all, or that is older than its time to
live is refused with an :class:`~ragkit.errors.InputError`. Each state carries a random
``nonce``: resuming claims it in a ledger (:mod:`ragkit.agents.ledger`), so a state resumes once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from ragkit.errors import InputError

STATE_VERSION = 2
"""2: states carry a ``nonce`` (a state resumes once); version 1 states are refused."""
SECRET_ENV = "RAGKIT_AGENT_SECRET"
_PROCESS_KEY = secrets.token_bytes(32)


def signing_key(secret: str | bytes | None, env: str = SECRET_ENV) -> bytes:
    """The HMAC key: ``secret``, else ``$RAGKIT_AGENT_SECRET``, else this process's random key."""
    if secret is None:
        secret = os.environ.get(env) or None
    if secret is None:
        return _PROCESS_KEY
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def sign_state(payload: dict[str, Any], key: bytes) -> str:
    """``payload`` (with its version, issue time and a random ``nonce`` added) as a signed token."""
    body = {**payload, "v": STATE_VERSION, "issued_at": time.time(), "nonce": secrets.token_urlsafe(18)}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    encoded = base64.urlsafe_b64encode(raw).rstrip(b"=")
    signature = hmac.new(key, encoded, hashlib.sha256).hexdigest()
    return f"{encoded.decode()}.{signature}"


def open_state(token: Any, key: bytes, max_age_s: float | None = None) -> dict[str, Any]:
    """The payload of a token made by :func:`sign_state` with ``key``; an :class:`InputError` if forged or stale."""
    if not isinstance(token, str) or token.count(".") != 1:
        raise InputError(
            "agent state: not a state token (expected '<payload>.<signature>' as returned by a paused run)"
        )
    encoded, signature = token.split(".")
    expected = hmac.new(key, encoded.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise InputError(
            "agent state: the signature does not match (the state was changed, or was signed with another key)"
        )
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"agent state: cannot be decoded ({exc})") from None
    if not isinstance(payload, dict) or payload.get("v") != STATE_VERSION:
        raise InputError(f"agent state: unknown version {payload.get('v') if isinstance(payload, dict) else None!r}")
    issued = payload.get("issued_at")
    if max_age_s is not None and isinstance(issued, (int, float)) and time.time() - issued > max_age_s:
        raise InputError(f"agent state: expired (older than {max_age_s:g} s); start the run again")
    return payload


def folder_secret(folder: str | Path) -> str:
    """The signing secret kept in ``folder/agent-secret`` (made once, random, readable by its owner only).

    ``ragkit serve`` uses it when ``RAGKIT_AGENT_SECRET`` is not set, so every worker and replica that
    shares the store folder can resume the others' paused runs.
    """
    path = Path(folder) / "agent-secret"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    made = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first: use theirs
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(made)
    return made
