"""The last line of defence: an unexpected exception becomes a plain 500, logged without text.

Any exception that escapes a handler is a bug. The client gets ``{"detail": "internal
error"}``; the log gets the exception's type, the request's method and path, and the stack
(file, line, function) but not the exception's message, which could quote a prompt. Handled
here, the exception does not reach Starlette's and uvicorn's handlers, which would log it again
with its message.
"""

from __future__ import annotations

import json
import logging
import traceback

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tier_router")

_BODY = json.dumps({"detail": "internal error"}).encode()


class CrashGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:  # the client left while the app read: not a bug
            log.debug("client left during %s %s", scope.get("method"), scope.get("path"))
        except Exception as exc:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("unexpected %s on %s %s (message withheld)\n%s", type(exc).__name__,
                      scope.get("method"), scope.get("path"), frames.rstrip(),
                      extra={"fields": {"event": "crash", "error_type": type(exc).__name__}})
            if started:  # a streamed answer broke off: nothing more can be said
                return
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(_BODY)).encode())]})
            await send({"type": "http.response.body", "body": _BODY})
