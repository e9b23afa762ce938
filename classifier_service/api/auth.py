"""API keys: bearer tokens from ``TIER_ROUTER_API_KEYS`` and ``TIER_ROUTER_ADMIN_KEYS``.

- With no key configured, every endpoint is open and ``serve`` listens on loopback only
  (a non-loopback address then needs ``--allow-unauthenticated``).
- With API keys, every endpoint but ``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI
  document needs ``Authorization: Bearer <key>``; an admin key is accepted there too. Admin
  keys alone leave the API as open as no key does.
- Admin endpoints (``/v1/admin/*``) need an admin key, always. With no admin key configured
  they are off over HTTP (403 saying how to turn them on): a reload can load code (a model
  folder is a pickle), so "only local callers" is not a boundary on a shared machine.
  SIGHUP still reloads.

Keys are compared with :func:`hmac.compare_digest` against every configured key, so the time
taken does not depend on how much of a key matched or which key it was. A missing or wrong key
is a 401 with ``WWW-Authenticate: Bearer``, in the error shape of the API that was called
(FastAPI's ``detail``, OpenAI's ``error`` object, or Ollama's ``error`` string).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from classifier_service.api.deps import state
from classifier_service.errors import ErrorStyle, Forbidden, Unauthorized
from classifier_service.settings import Settings, parse_keys

_bearer = HTTPBearer(auto_error=False, description="An API key from TIER_ROUTER_API_KEYS.")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _matches(token: str, keys: Iterable[str]) -> bool:
    found = False
    presented = token.encode()
    for key in keys:  # no early exit: the same work whichever key matches
        found |= hmac.compare_digest(presented, key.encode())
    return found


class KeyRing:
    def __init__(self, api_keys: Iterable[str] = (), admin_keys: Iterable[str] = ()) -> None:
        self.admin_keys = frozenset(admin_keys)
        self._own_api_keys = frozenset(api_keys)
        self.api_keys = self._own_api_keys | self.admin_keys

    @property
    def enabled(self) -> bool:
        """Whether the API needs a key: API keys are configured (admin keys alone turn on
        the admin operations only)."""
        return bool(self._own_api_keys)

    def is_api_key(self, token: str) -> bool:
        return _matches(token, self.api_keys)

    def is_admin_key(self, token: str) -> bool:
        return _matches(token, self.admin_keys)


def keyring_of(settings: Settings) -> KeyRing:
    return KeyRing(parse_keys(settings.api_keys), parse_keys(settings.admin_keys))


def keyring(request: Request) -> KeyRing:
    return state(request).keyring


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials is not None else None


def require_key(style: ErrorStyle = "detail") -> Callable[..., Awaitable[None]]:
    """A dependency: an API key (or an admin key) when keys are configured."""

    async def check(request: Request, credentials: Bearer) -> None:
        ring = keyring(request)
        if not ring.enabled:
            return
        token = _token(credentials)
        if token is None:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'",
                               style)
        if not ring.is_api_key(token):
            raise Unauthorized("the API key is not valid", style)

    return check


ADMIN_OFF = ("admin endpoints are off: no admin key is configured; set TIER_ROUTER_ADMIN_KEYS "
             "to turn them on (SIGHUP to the service still reloads its current paths)")


async def require_admin(request: Request, credentials: Bearer) -> None:
    """Admin endpoints: an admin key, always; with none configured, nobody over HTTP."""
    ring = keyring(request)
    if not ring.admin_keys:
        raise Forbidden(ADMIN_OFF)
    token = _token(credentials)
    if token is None:
        raise Unauthorized("an admin key is required: send 'Authorization: Bearer <key>'")
    if not ring.is_admin_key(token):
        if ring.is_api_key(token):
            raise Forbidden("this key is not an admin key (TIER_ROUTER_ADMIN_KEYS)")
        raise Unauthorized("the admin key is not valid")
