"""A hostile LLM server: both wire formats, each answer broken in one way.

``hostile()`` serves ``POST /v1/chat/completions`` (OpenAI-compatible, SSE streams) and ``POST
/api/chat`` (Ollama's native API, NDJSON streams). The scenario is named in the request's last
message, ``scenario: NAME``, so one server (and one gateway in front of it) plays every
scenario; a message without one gets a sound answer. Every scenario breaks both wire formats
the same way (in that format's own fields), and the test in ``test_hostile_servers.py`` sends
each through both gateways.

``ANSWERS``: broken bodies, sent to non-streaming and streaming requests alike (a server that
ignores ``stream: true`` sends an answer as JSON, so a stream request gets these too).
``STREAMS``: a stream that starts well or not at all, then breaks; sent to stream requests.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

QUOTE = "SECRET-PROMPT-TEXT"
"""What a failing server quotes back from the prompt (it must not reach the logs)."""


def _openai(content: str = "fine", **usage: Any) -> str:
    counts = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4, **usage}
    return ('{"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": '
            '[{"index": 0, "message": {"role": "assistant", "content": ' + content + '}, '
            '"finish_reason": "stop"}], "usage": {'
            + ", ".join(f'"{k}": {v}' for k, v in counts.items()) + "}}")


def _ollama(content: str = "fine", **counts: Any) -> str:
    fields = {"prompt_eval_count": 3, "eval_count": 1, **counts}
    return ('{"model": "m", "created_at": "2026-11-29T12:00:00Z", "message": {"role": '
            '"assistant", "content": ' + content + '}, "done": true, "done_reason": "stop", '
            + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}")


GOOD = {"openai": _openai('"fine"'), "ollama": _ollama('"fine"')}
JSON, HTML = "application/json", "text/html"

# scenario -> {wire format: (content type, raw body)}
ANSWERS: dict[str, dict[str, tuple[str, str]]] = {
    "nan": {"openai": (JSON, _openai('"x"', prompt_tokens="NaN")),
            "ollama": (JSON, _ollama('"x"', eval_count="NaN"))},
    "infinity": {"openai": (JSON, _openai('"x"', completion_tokens="Infinity")),
                 "ollama": (JSON, _ollama('"x"', prompt_eval_count="-Infinity"))},
    "huge_float": {"openai": (JSON, _openai('"x"', total_tokens="1e999")),
                   "ollama": (JSON, _ollama('"x"', eval_count="1e999"))},
    "surrogate": {"openai": (JSON, _openai('"\\ud800 half a pair"')),
                  "ollama": (JSON, _ollama('"\\udfff half a pair"'))},
    "float_tokens": {"openai": (JSON, _openai('"x"', prompt_tokens="1.5")),
                     "ollama": (JSON, _ollama('"x"', eval_count="2.5"))},
    "negative_tokens": {"openai": (JSON, _openai('"x"', completion_tokens="-3")),
                        "ollama": (JSON, _ollama('"x"', prompt_eval_count="-3"))},
    "string_tokens": {"openai": (JSON, _openai('"x"', prompt_tokens='"twelve"')),
                      "ollama": (JSON, _ollama('"x"', eval_count='"twelve"'))},
    "bad_usage": {"openai": (JSON, _openai('"x"').replace('"usage": {', '"usage": ["lots", {')
                             .removesuffix("}") + "]}"),
                  "ollama": (JSON, _ollama('"x"', eval_count='{"n": 1}'))},
    "message_string": {"openai": (JSON, '{"choices": [{"message": "fine", '
                                        '"finish_reason": "stop"}]}'),
                       "ollama": (JSON, '{"message": "fine", "done": true}')},
    "content_object": {"openai": (JSON, _openai('{"text": "fine"}')),
                       "ollama": (JSON, _ollama('["fine"]'))},
    "no_choices": {"openai": (JSON, '{"id": "x", "object": "chat.completion"}'),
                   "ollama": (JSON, '{"model": "m", "done": true}')},
    "garbage_choices": {"openai": (JSON, '{"choices": "all of them"}'),
                        "ollama": (JSON, '{"message": [1, 2], "done": true}')},
    "empty_choices": {"openai": (JSON, '{"choices": []}'),
                      "ollama": (JSON, '{"message": null, "done": true}')},
    "array": {"openai": (JSON, "[1, 2, 3]"), "ollama": (JSON, "[1, 2, 3]")},
    "not_json": {"openai": (JSON, "this is not json"), "ollama": (JSON, "this is not json")},
    "deep": {"openai": (JSON, "[" * 100_000), "ollama": (JSON, "[" * 100_000)},
    "html": {"openai": (HTML, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
             "ollama": (HTML, "<html><body><h1>502 Bad Gateway</h1></body></html>")},
    "empty": {"openai": (JSON, ""), "ollama": (JSON, "")},
    "error_200": {"openai": (JSON, '{"error": {"message": "crashed on ' + QUOTE + '"}}'),
                  "ollama": (JSON, '{"error": "crashed on ' + QUOTE + '"}')},
}


def _chunk(content: str) -> str:
    return ('{"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", '
            '"choices": [{"index": 0, "delta": {"content": ' + content + '}, '
            '"finish_reason": null}]}')


def _line(content: str) -> str:
    return ('{"model": "m", "created_at": "2026-11-29T12:00:00Z", "message": {"role": '
            '"assistant", "content": ' + content + '}, "done": false}')


def _sse(*payloads: str) -> list[bytes]:
    return [f"data: {p}\n\n".encode() for p in payloads]


def _nd(*lines: str) -> list[bytes]:
    return [f"{line}\n".encode() for line in lines]


START = '"Hello "'
# scenario -> {wire format: (content type, stream pieces, whether a first chunk is good)}
STREAMS: dict[str, dict[str, tuple[str, list[bytes], bool]]] = {
    "stream_garbage": {"openai": ("text/event-stream", _sse(_chunk(START), "{not json"), True),
                       "ollama": ("application/x-ndjson", _nd(_line(START), "{not json"),
                                  True)},
    "stream_garbage_first": {"openai": ("text/event-stream", [b"<<garbage>>\n\n"], False),
                             "ollama": ("application/x-ndjson", [b"<<garbage>>\n"], False)},
    "stream_not_sse": {"openai": ("text/event-stream",
                                  [*_sse(_chunk(START)), b"<html>oops</html>\n"], True),
                       "ollama": ("application/x-ndjson", [*_nd(_line(START)), b"<html>\n"],
                                  True)},
    "stream_nan": {"openai": ("text/event-stream",
                              _sse(_chunk(START), _chunk("NaN")), True),
                   "ollama": ("application/x-ndjson", _nd(_line(START), _line("NaN")), True)},
    "stream_surrogate": {"openai": ("text/event-stream",
                                    _sse(_chunk(START), _chunk('"\\ud800"')), True),
                         "ollama": ("application/x-ndjson",
                                    _nd(_line(START), _line('"\\ud800"')), True)},
    "stream_bad_shape": {"openai": ("text/event-stream",
                                    _sse(_chunk(START), '{"choices": "x"}'), True),
                         "ollama": ("application/x-ndjson",
                                    _nd(_line(START), '{"message": "x"}'), True)},
    "stream_bad_usage": {"openai": ("text/event-stream",
                                    _sse(_chunk(START), '{"choices": [], "usage": '
                                                        '{"prompt_tokens": -1}}'), True),
                         "ollama": ("application/x-ndjson",
                                    _nd(_line(START), '{"message": {"content": ""}, '
                                                      '"done": true, "eval_count": 1.5}'),
                                    True)},
    "stream_error": {"openai": ("text/event-stream",
                                _sse(_chunk(START), '{"error": {"message": "died on '
                                                    + QUOTE + '"}}'), True),
                     "ollama": ("application/x-ndjson",
                                _nd(_line(START), '{"error": "died on ' + QUOTE + '"}'),
                                True)},
    "stream_no_end": {"openai": ("text/event-stream", _sse(_chunk(START), _chunk('"world"')),
                                 True),
                      "ollama": ("application/x-ndjson", _nd(_line(START), _line('"world"')),
                                 True)},
    "stream_empty": {"openai": ("text/event-stream", [], False),
                     "ollama": ("application/x-ndjson", [], False)},
    "stream_done_only": {"openai": ("text/event-stream", _sse("[DONE]"), False),
                         "ollama": ("application/x-ndjson", [b"\n"], False)},
}

SCENARIO = re.compile(r"scenario: (\w+)")


def scenario_of(body: dict[str, Any]) -> str | None:
    messages = body.get("messages") or [{}]
    found = SCENARIO.search(str(messages[-1].get("content") or ""))
    return found.group(1) if found else None


def hostile() -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    async def serve(request: Request, wire: str) -> Response:
        body = await request.json()
        app.state.requests.append(body)
        name = scenario_of(body) or ""
        if name in ANSWERS:
            kind, text = ANSWERS[name][wire]
            return Response(text.encode("utf-8", "surrogatepass"), media_type=kind)
        if name in STREAMS and body.get("stream"):
            kind, pieces, _ = STREAMS[name][wire]
            return StreamingResponse(_pieces(pieces), media_type=kind)
        if name == "plain_json":  # a sound answer, as JSON even to a stream request
            return Response(GOOD[wire], media_type=JSON)
        if name == "http_500_quote":  # a 5xx whose text quotes the prompt
            return Response(f"failed on {QUOTE}", status_code=500)
        if name == "trickle":  # one byte a second, for ever (well, a minute)
            stream = body.get("stream") is True
            return StreamingResponse(_trickle(stream, wire), media_type=(
                JSON if not stream else "text/event-stream" if wire == "openai"
                else "application/x-ndjson"))
        if name == "huge":  # 200 MB without Content-Length (chunked)
            return StreamingResponse(_huge(), media_type=JSON)
        if body.get("stream"):
            good: Callable[..., list[bytes]] = _sse if wire == "openai" else _nd
            ending = ['{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}',
                      "[DONE]"] if wire == "openai" else [
                '{"message": {"role": "assistant", "content": ""}, "done": true}']
            first = _chunk('"fine"') if wire == "openai" else _line('"fine"')
            return StreamingResponse(_pieces(good(first, *ending)), media_type=(
                "text/event-stream" if wire == "openai" else "application/x-ndjson"))
        return Response(GOOD[wire], media_type=JSON)

    @app.post("/v1/chat/completions")
    async def openai_chat(request: Request) -> Response:
        return await serve(request, "openai")

    @app.post("/api/chat")
    async def ollama_chat(request: Request) -> Response:
        return await serve(request, "ollama")

    return app


async def _pieces(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
        await asyncio.sleep(0.01)


async def _trickle(stream: bool, wire: str) -> AsyncIterator[bytes]:
    if stream:  # one good chunk first, then the trickle
        yield (f"data: {_chunk(START)}\n\n" if wire == "openai" else f"{_line(START)}\n"
               ).encode()
    for byte in (GOOD[wire] * 10).encode():
        yield bytes([byte])
        await asyncio.sleep(1)


async def _huge() -> AsyncIterator[bytes]:
    yield b'{"choices": [{"message": {"role": "assistant", "content": "'
    block = b"a" * (1 << 20)
    for _ in range(200):
        yield block
    yield b'"}}]}'


def is_json_line(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
