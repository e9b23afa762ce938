"""The plugin's one HTTP client for tier-router, shared by the provider and the tools.

Every failure becomes a ``ServiceError`` whose message says what went wrong and what to
change (the URL, the key, the input), so that Dify shows it as the tool's error instead of
a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_TIMEOUT_S = 30.0


class ServiceError(Exception):
    """A call to tier-router failed; the message says why and what to fix."""


@dataclass(frozen=True)
class TierRouterClient:
    """Calls one tier-router service at ``base_url`` (no trailing ``/v1``)."""

    base_url: str
    api_key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> TierRouterClient:
        """The client for the provider's credentials ``service_url`` and ``api_key``."""
        url = str(credentials.get("service_url") or "").strip().rstrip("/")
        if not url:
            raise ServiceError("The service URL is empty: enter tier-router's base URL in the "
                               "tool's credentials, e.g. http://127.0.0.1:8700.")
        if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
            raise ServiceError(f"The service URL {url!r} is not an http:// or https:// URL; "
                               "enter tier-router's base URL, e.g. http://127.0.0.1:8700.")
        url = url.removesuffix("/v1")  # the gateway's URL, as given to OpenAI clients
        key = str(credentials.get("api_key") or "").strip() or None
        return cls(url, key)

    def portfolio(self) -> dict[str, Any]:
        """``GET /v1/portfolio``: the loaded portfolio (an authenticated call)."""
        return self._call("GET", "/v1/portfolio")

    def route(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/route``: the routing decision for one prompt."""
        return self._call("POST", "/v1/route", body)

    def check_quality(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/quality``: whether an answer should escalate, and where."""
        return self._call("POST", "/v1/quality", body)

    def record_outcome(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/feedback``: one outcome record (prompt, tier, score, ...)."""
        return self._call("POST", "/v1/feedback", record)

    def _call(self, method: str, path: str,
              body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        what = f"{method} {path}"
        try:
            with httpx.Client(timeout=httpx.Timeout(self.timeout_s, connect=5.0)) as client:
                response = client.request(method, self.base_url + path, headers=headers,
                                          json=dict(body) if body is not None else None)
        except httpx.TimeoutException:
            raise ServiceError(f"tier-router at {self.base_url} did not answer {what} within "
                               f"{self.timeout_s:g} s.") from None
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"Cannot reach tier-router at {self.base_url} ({type(exc).__name__}: {exc}). "
                "Check the service URL in the tool's credentials, that the service is "
                "running, and that Dify's plugin daemon can reach that address.") from None
        if response.status_code >= 400:
            raise ServiceError(self._failure(what, response))
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            kind = response.headers.get("content-type", "no content-type")
            raise ServiceError(f"{what} at {self.base_url} answered HTTP {response.status_code} "
                               f"with something that is not a JSON object ({kind}); is this "
                               "the address of tier-router?")
        return data

    def _failure(self, what: str, response: httpx.Response) -> str:
        status = response.status_code
        detail = _detail(response)
        if status == 401:
            sent = "the API key was refused" if self.api_key else "no API key was sent"
            return (f"tier-router refused {what}: {sent} (HTTP 401: {detail}). Enter a key "
                    "from the service's TIER_ROUTER_API_KEYS in the tool's credentials.")
        if status == 403:
            return f"tier-router forbade {what} (HTTP 403: {detail})."
        if status == 404:
            return (f"{what} was not found at {self.base_url} (HTTP 404). Is the service URL "
                    "tier-router's base URL, e.g. http://127.0.0.1:8700?")
        if status == 413:
            return f"The request is too large for tier-router (HTTP 413): {detail}"
        if status == 422:
            return f"tier-router refused the input (HTTP 422): {detail}"
        if status == 429:
            wait = response.headers.get("retry-after")
            later = f"retry after {wait} s" if wait else "retry later"
            return f"tier-router is rate limiting {what} (HTTP 429: {detail}); {later}."
        return f"tier-router answered {what} with HTTP {status}: {detail}"


def _detail(response: httpx.Response) -> str:
    """The error's own words: FastAPI's ``detail`` or OpenAI's ``error.message``."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):  # pydantic's errors: [{"loc": [...], "msg": ...}]
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = [str(p) for p in item.get("loc", []) if p != "body"]
                    parts.append(f"{'.'.join(loc) or 'body'}: {item.get('msg', item)}")
            if parts:
                return "; ".join(parts)
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(body)[:300]
