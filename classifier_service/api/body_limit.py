"""Limits on request bodies, enforced before the app reads them: size (413) and time (408).

A body that declares a length over the limit is refused from the header alone; any other body
is read here, up to the limit and within the time allowed, then handed to the app. So no
request makes the service hold more than the limit in memory, and no client can keep a
request open by sending its body a byte at a time. The limits are
``TIER_ROUTER_MAX_BODY_BYTES`` (default 8 MiB: long conversations fit, a runaway upload does
not) and ``TIER_ROUTER_BODY_TIMEOUT_S`` (default 30 s).

A 413 is sent while the client is still sending: the whole answer goes out at once, then the
rest of the body is read and dropped (for up to ``TIER_ROUTER_BODY_TIMEOUT_S``, or until
:data:`DRAIN_MAX_BYTES`) before the connection closes. Closing with unread data would make the
kernel reset the connection, and a client still writing its body would then see the reset
instead of the answer.

Slow *headers* are not covered here (the server has parsed them before the app is called):
uvicorn caps connections (``TIER_ROUTER_LIMIT_CONCURRENCY``) and closes idle ones; a reverse
proxy in front should time out slow headers.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from classifier_service.settings import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES

NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
DRAIN_MAX_BYTES = 1 << 30
"""Most of a refused body read and dropped after a 413 (then the connection just closes)."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._too_large = (f"the request body is larger than {max_bytes} bytes "
                           "(TIER_ROUTER_MAX_BODY_BYTES)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in NO_BODY:
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse_and_drain(receive, send)
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away:
                        return  # nobody is left to answer
                    body += message.get("body", b"")
                    if len(body) > self.max_bytes:
                        more = message.get("more_body", False)
                        del body[:]
                        await self._refuse_and_drain(receive, send, more=more)
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(send, 408, f"the request body did not arrive within "
                                     f"{self.timeout_s:g} s (TIER_ROUTER_BODY_TIMEOUT_S)")
            return
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay(whole, receive), send)


    async def _refuse_and_drain(self, receive: Receive, send: Send, more: bool = True) -> None:
        """The 413 in full, then the rest of the body read and dropped, then the end."""
        await _refuse(send, 413, self._too_large, end=False)
        drained = 0
        if more:
            try:
                async with asyncio.timeout(self.timeout_s):
                    while drained < DRAIN_MAX_BYTES:
                        message = await receive()
                        if message["type"] != "http.request":
                            break
                        drained += len(message.get("body", b""))
                        if not message.get("more_body", False):
                            break
            except TimeoutError:
                pass
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _refuse(send: Send, status: int, detail: str, end: bool = True) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload, "more_body": not end})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(first: Message, receive: Receive) -> Receive:
    """``first`` (the whole body), then whatever the server sends next (a disconnect)."""
    pending = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
