"""One policy for every JSON request body, enforced before any handler runs.

Python's JSON parser accepts what JSON and Unicode do not: ``NaN``, ``Infinity`` and
``-Infinity`` (and numbers such as ``1e999``, which become infinite), escaped lone surrogates
(``"\\ud800"``, which no UTF-8 encoder can write back), and nesting as deep as the interpreter's
stack. Each of those reached handlers as a 500. Here every body that a route or a gateway will
read as JSON is parsed once, strictly, and refused in the error shape of the API called when:

- it is not UTF-8 text (an unescaped surrogate is not UTF-8 either): 400;
- it nests deeper than :data:`MAX_DEPTH` arrays and objects: 400;
- a number has more digits than Python converts (``sys.get_int_max_str_digits``): 400;
- a number is not finite, or a string or an object key holds a lone surrogate: 422 on
  tier-router's own operations (FastAPI's validation shape, ``loc`` naming the field), 400 on
  the gateways (OpenAI's ``{"error": {...}}``, Ollama's ``{"error": "..."}``), naming the
  field as a JSON path (``messages.0.content``).

A body that is not JSON at all passes on untouched: each operation already answers that in its
own way. Error answers never quote the input: the path names the field, and a key in the path
that cannot be encoded is written with ``\\u`` escapes, cut to 64 characters.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from classifier_service.errors import ErrorStyle

MAX_DEPTH = 100
"""Arrays and objects inside each other; far more than any chat or tool schema needs."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_KEY_CHARS = 64


class BodyProblem(Exception):
    """The body breaks the policy; ``loc`` is the JSON path (empty: the whole body)."""

    def __init__(self, status_detail: int, status_gateway: int, loc: tuple[str | int, ...],
                 msg: str) -> None:
        super().__init__(msg)
        self.status_detail = status_detail
        self.status_gateway = status_gateway
        self.loc = loc
        self.msg = msg


def style_of_path(path: str) -> ErrorStyle:
    """The error shape of the API that serves ``path``."""
    if path.startswith("/api/"):
        return "ollama"
    if path == "/v1/chat/completions" or path.startswith("/v1/models"):
        return "openai"
    return "detail"


def _printable(key: str | int) -> str | int:
    if isinstance(key, int):
        return key
    short = key[:_KEY_CHARS]
    return short.encode("utf-8", "backslashreplace").decode("utf-8")


def check(raw: bytes) -> None:
    """Raise :class:`BodyProblem` when ``raw`` is JSON that breaks the policy."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyProblem(400, 400, (), f"the body is not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return  # not JSON: the operation answers that itself
    except RecursionError:
        raise BodyProblem(400, 400, (), f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # an integer longer than Python converts
        raise BodyProblem(400, 400, (), "a number in the body has too many digits") from None
    for loc, problem in _problems(document):
        status = 400 if problem.startswith("nests") else 422
        raise BodyProblem(status, 400, loc, problem)


def _problems(document: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Walk without recursion; the first problem found is enough."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), document)]
    while stack:
        loc, value = stack.pop()
        if len(loc) > MAX_DEPTH:
            yield (), f"nests deeper than {MAX_DEPTH} levels"
            return
        if isinstance(value, str):
            if _SURROGATE.search(value):
                yield loc, "not valid Unicode text (a lone surrogate, \\ud800-\\udfff)"
                return
        elif isinstance(value, float):
            if not math.isfinite(value):
                yield loc, "not a finite number (NaN and Infinity are not JSON)"
                return
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    yield (*loc, _printable(key)), ("a key that is not valid Unicode text "
                                                    "(a lone surrogate, \\ud800-\\udfff)")
                    return
                stack.append(((*loc, key), item))
        elif isinstance(value, list):
            stack.extend(((*loc, i), item) for i, item in enumerate(value))


def _answer(problem: BodyProblem, style: ErrorStyle) -> tuple[int, bytes]:
    where = ".".join(str(_printable(p)) for p in problem.loc) or "body"
    text = f"{where}: {problem.msg}" if problem.loc else problem.msg
    if style == "openai":
        status = problem.status_gateway
        body: dict[str, Any] = {"error": {"message": text,
                                          "type": "invalid_request_error",
                                          "param": where if problem.loc else None,
                                          "code": None}}
    elif style == "ollama":
        status = problem.status_gateway
        body = {"error": text}
    else:
        status = problem.status_detail
        if status == 422:
            body = {"detail": [{"type": "value_error",
                                "loc": ["body", *(_printable(p) for p in problem.loc)],
                                "msg": problem.msg, "input": None}]}
        else:
            body = {"detail": text}
    return status, json.dumps(body).encode()


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            kind = value.split(b";")[0].strip().lower()
            return kind.endswith(b"json") or kind in (b"", b"text/plain")
    return True  # no content type: FastAPI and the gateways still read JSON


class BodyPolicy:
    """ASGI middleware, inside :class:`BodyLimit` (which has read the whole body already)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if body:
            try:
                check(bytes(body))
            except BodyProblem as problem:
                status, payload = _answer(problem, style_of_path(scope.get("path", "")))
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode())]})
                await send({"type": "http.response.body", "body": payload})
                return
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return whole
            return await receive()

        await self.app(scope, replay, send)
