"""API-key authentication and scope checks, as FastAPI dependencies.

A key travels as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. It is
compared with :func:`hmac.compare_digest` against every configured key (no early
exit, so timing tells nothing). Scopes nest: ``admin`` implies ``write`` implies
``read``. A key limited to some collections gets 404 on the others, the same
answer (status, type and message) as for a collection that does not exist, so
it cannot learn which other collections exist. With no
keys configured (allowed on loopback hosts only) every request is let in.
``/healthz``, ``/readyz`` and ``/metrics`` need no key.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ragkit.errors import NotFoundError
from ragkit.service.errors import ServiceHTTPError
from ragkit.service.settings import ApiKey, Scope

KEY_NAME_KEY = "ragkit.key_name"
"""Scope key holding the name of the key that authenticated the request (for logs)."""

_bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token.")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name, scopes and collections (``None``: all)."""

    name: str
    scopes: frozenset[str]
    collections: tuple[str, ...] | None

    def may_access(self, collection: str) -> bool:
        """Whether this caller may touch ``collection``."""
        return self.collections is None or collection in self.collections

    @property
    def limited(self) -> bool:
        """Whether this caller is limited to some collections."""
        return self.collections is not None

    @property
    def unlimited_admin(self) -> bool:
        """Whether this caller holds the admin scope with no collection limit."""
        return "admin" in self.scopes and self.collections is None

    def may_access_all(self, collections: Sequence[str] | None) -> bool:
        """Whether this caller may touch every one of ``collections`` (``None``: unknown, only unlimited keys)."""
        if self.collections is None:
            return True
        return collections is not None and all(name in self.collections for name in collections)

    def not_found(self, collection: str) -> NotFoundError:
        """The 404 a limited caller gets for ``collection``, whether it exists or not."""
        allowed = ", ".join(self.collections or ()) or "none"
        return NotFoundError(f"no collection {collection!r} that API key {self.name!r} may access (allowed: {allowed})")

    def check_collection(self, collection: str) -> None:
        """404 unless this caller may touch ``collection``: the same answer whether it exists or not."""
        if not self.may_access(collection):
            raise self.not_found(collection)

    def visible(self, names: Sequence[str]) -> list[str]:
        """The collections of ``names`` this caller may see."""
        return [name for name in names if self.may_access(name)]


OPEN = Principal("anonymous", frozenset({"admin", "write", "read"}), None)
"""The caller when no keys are configured."""


class Authenticator:
    """Finds the configured key a request carries."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = [(k.key.get_secret_value().encode("utf-8"), k) for k in keys]

    @property
    def enabled(self) -> bool:
        """Whether keys are required."""
        return bool(self._keys)

    def identify(self, presented: str | None) -> Principal:
        """The principal of ``presented``, or 401."""
        if not self._keys:
            return OPEN
        if not presented:
            raise ServiceHTTPError(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                "Unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        candidate = presented.encode("utf-8")
        found: ApiKey | None = None
        for secret, key in self._keys:  # every key is compared: no timing hint of which one matched
            if hmac.compare_digest(secret, candidate):
                found = key
        if found is None:
            raise ServiceHTTPError(
                401, "unknown API key", "Unauthorized", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        collections = tuple(found.collections) if found.collections is not None else None
        return Principal(found.name, frozenset(found.granted()), collections)


async def authenticate(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    api_key: str | None = Depends(_api_key_header),
) -> Principal:
    """Dependency: the caller, or 401. Records the key's name for the request log."""
    authenticator: Authenticator = request.app.state.ragkit.authenticator
    presented = bearer.credentials if bearer is not None else api_key
    principal = authenticator.identify(presented)
    request.scope[KEY_NAME_KEY] = principal.name
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller, who must hold ``scope`` (else 403)."""

    async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if scope not in principal.scopes:
            raise ServiceHTTPError(
                403, f"API key {principal.name!r} lacks the {scope!r} scope this route needs", "Forbidden"
            )
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


def require_collection(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: ``scope`` plus access to the ``{name}`` collection of the path.

    A key limited to some collections gets the same 404 for a collection it may
    not touch and for one of its own that does not exist (never the list of the
    collections that do).
    """
    needs_scope = require(scope)

    async def dependency(name: str, request: Request, principal: Principal = Depends(needs_scope)) -> Principal:
        principal.check_collection(name)
        if principal.limited:
            state = request.app.state.ragkit
            if name not in await state.run(state.collections.names):
                raise principal.not_found(name)
        return principal

    dependency.__name__ = f"require_{scope}_on_collection"
    return dependency
