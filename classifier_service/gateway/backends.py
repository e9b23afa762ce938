"""Backends: sending a chat request to one endpoint, in its own wire format.

Requests and answers are in OpenAI's chat-completions shape everywhere in tier-router; this
module speaks each server's protocol:

- ``openai`` endpoints (vLLM, llama.cpp server, Ollama's ``/v1``): ``POST
  {base_url}/chat/completions``, the body passed through untouched but for ``model`` and two
  fields filled in (:func:`openai_body`): ``max_tokens`` when the client set only
  ``max_completion_tokens``, and ``top_logprobs: 0`` when it asked ``logprobs: true`` without
  it (llama-cpp-python's server ignores the first and returns no logprobs without the second);
  streaming is server-sent events.
- ``ollama`` endpoints: Ollama's native ``POST {base_url}/api/chat``, with the endpoint's
  ``keep_alive`` and its ``context_length`` as ``options.num_ctx``; sampling fields map to
  ``options``, ``tools`` and ``format`` pass through; streaming is NDJSON, turned into
  OpenAI chunks here.

One pooled ``aiohttp`` session serves all endpoints: this is the hot path of every gateway
request, and aiohttp costs about half of httpx's time per call here (0.39 against 0.77 ms
for a loopback round trip, measured). Control-plane calls (model residency, the scheduler)
keep using httpx. Connection errors, timeouts, 5xx answers and answers that fail validation
(:mod:`classifier_service.gateway.validate`: strict JSON, the wire format's shape) raise
:class:`BackendError`, which the gateway treats as "try the next endpoint".
``policy.backend_timeout_s`` (read at each call, so a reload changes it) bounds the whole
call: connecting (at most 5 s of it), the headers and the whole body of an answer; for a
stream, until the first chunk, then each gap between chunks. Non-streamed answers are capped
at :data:`MAX_ANSWER_BYTES`, counted as they arrive. The session ignores proxy variables
and ``~/.netrc``: the LLM servers are the portfolio's own, and looking those up costs two
thread-pool jobs per call.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from classifier_service.errors import BackendError, MissingKeyError, UpstreamRejected
from classifier_service.gateway import validate
from classifier_service.gateway.ollama_wire import (
    OllamaChunks,
    ollama_request,
    ollama_to_completion,
)
from classifier_service.portfolio.model import Endpoint


@dataclass(frozen=True)
class Completion:
    """One non-streamed answer, as an OpenAI ``chat.completion`` object."""

    body: dict[str, Any]

    @property
    def content(self) -> str:
        message = self.body["choices"][0].get("message") or {}
        return str(message.get("content") or "")

    @property
    def finish_reason(self) -> str | None:
        reason = self.body["choices"][0].get("finish_reason")
        return str(reason) if reason is not None else None

    @property
    def has_tool_calls(self) -> bool:
        message = self.body["choices"][0].get("message") or {}
        return bool(message.get("tool_calls"))


class Backends:
    def __init__(self, session: aiohttp.ClientSession, timeout_s: float = 30.0) -> None:
        self.session = session
        self.timeout_s = timeout_s

    @classmethod
    def open(cls, timeout_s: float, max_connections: int = 256) -> Backends:
        """A pooled session; call from a running event loop, and :meth:`close` it."""
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0)
        return cls(aiohttp.ClientSession(timeout=_NO_TIMEOUT, connector=connector,
                                         read_bufsize=READ_BUFSIZE, raise_for_status=False,
                                         auto_decompress=True, trust_env=False), timeout_s)

    async def close(self) -> None:
        await self.session.close()

    async def complete(self, endpoint: Endpoint, request: dict[str, Any],
                       timeout_s: float | None = None) -> Completion:
        """One answer, validated; ``timeout_s`` bounds the whole call (connect and reads)."""
        if endpoint.api == "openai":
            body = openai_body(endpoint, request, stream=False)
            raw = await self._post(endpoint, f"{endpoint.base_url}/chat/completions", body,
                                   timeout_s or self.timeout_s)
            return Completion(_valid(endpoint, raw, validate.openai_answer))
        raw = await self._post(endpoint, f"{endpoint.base_url}/api/chat",
                               ollama_request(endpoint, request, stream=False),
                               timeout_s or self.timeout_s)
        data = _valid(endpoint, raw, validate.ollama_answer)
        return Completion(ollama_to_completion(data, request.get("model") or endpoint.model))

    async def stream(self, endpoint: Endpoint, request: dict[str, Any],
                     timeout_s: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """OpenAI ``chat.completion.chunk`` objects, each validated; errors raise
        :class:`BackendError`, also after the first chunk. The first chunk must come within
        ``timeout_s`` of the call (connect included), each later one within ``timeout_s`` of
        the one before; a stream must end with ``data: [DONE]`` (OpenAI) or a ``done: true``
        line (Ollama). A plain JSON answer to a stream request (a server that ignores
        ``stream: true``) is validated and passed on as chunks; HTML is a failure."""
        timeout = timeout_s or self.timeout_s
        if endpoint.api == "openai":
            body = openai_body(endpoint, request, stream=True)
            url = f"{endpoint.base_url}/chat/completions"
        else:
            body = ollama_request(endpoint, request, stream=True)
            url = f"{endpoint.base_url}/api/chat"
        model = request.get("model") or endpoint.model
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with _transport_errors(endpoint, "stream"):
            async with asyncio.timeout_at(deadline):
                response = await self.session.post(url, data=_encode(body),
                                                   headers=_headers(endpoint),
                                                   timeout=_connect_timeout(timeout))
            try:
                async with asyncio.timeout_at(deadline):
                    await _raise_for_status(endpoint, response)
                kind = response.content_type
                if kind == "text/html":
                    raise BackendError(endpoint.name, "answered a stream request with HTML")
                if endpoint.api == "openai" and kind == "application/json":
                    async with asyncio.timeout_at(deadline):
                        raw = await _read_capped(endpoint, response)
                    for chunk in _as_chunks(_valid(endpoint, raw, validate.openai_answer)):
                        yield chunk
                    return
                chunks = OllamaChunks(model)
                finished = False  # Ollama's done line came: read on to the end (keep-alive)
                while True:
                    async with asyncio.timeout_at(deadline):
                        raw = await _read_line(endpoint, response)
                    if finished and (not raw or raw.strip()):
                        return  # the end, or something after the done line: ignored
                    if not raw:
                        raise BackendError(endpoint.name, "ended its stream without "
                                           + ("data: [DONE]" if endpoint.api == "openai"
                                              else "a done line"))
                    line = raw.strip()
                    if not line:
                        continue
                    if endpoint.api == "openai":
                        payload = _sse_data(endpoint, line)
                        if payload is None:
                            continue
                        if payload == b"[DONE]":
                            return
                        yield _valid(endpoint, payload, validate.openai_chunk, IN_STREAM)
                    else:
                        data = _valid(endpoint, line, validate.ollama_answer, IN_STREAM)
                        for chunk in chunks.feed(data):
                            yield chunk
                        finished = data.get("done") is True
                    deadline = loop.time() + timeout  # idle: counted from the last chunk
            finally:
                response.release()

    async def _post(self, endpoint: Endpoint, url: str, body: dict[str, Any],
                    timeout_s: float) -> bytes:
        """The raw answer; ``timeout_s`` bounds connecting, the headers and the whole body."""
        with _transport_errors(endpoint, "answer"):
            async with asyncio.timeout(timeout_s):
                async with self.session.post(url, data=_encode(body),
                                             headers=_headers(endpoint),
                                             timeout=_connect_timeout(timeout_s)) as response:
                    await _raise_for_status(endpoint, response)
                    if response.content_type == "text/html":
                        raise BackendError(endpoint.name, "answered with HTML")
                    return await _read_capped(endpoint, response)


CONNECT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""The most bytes a non-streamed answer may have (counted as it arrives, with or without
Content-Length); over it, the answer is a broken server's, not a reply: fail over."""
READ_BUFSIZE = 1 << 20
"""Longest stream line read at once (an SSE event or an NDJSON line)."""
_JSON = {"content-type": "application/json"}
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None)
IN_ANSWER = ""
IN_STREAM = " in its stream"
_SSE_FIELDS = (b"event:", b"id:", b"retry:", b":")


def openai_body(endpoint: Endpoint, request: dict[str, Any], *, stream: bool
                ) -> dict[str, Any]:
    """The request as an OpenAI-compatible server gets it: the endpoint's ``model``, and

    - ``max_tokens`` set to ``max_completion_tokens`` when only that was given (OpenAI's newer
      name, which LangChain's ChatOpenAI sends; llama-cpp-python's server ignores it: a cap of 5
      gave 238 tokens). Both are sent; vLLM and Ollama's ``/v1`` read either.
    - ``top_logprobs: 0`` when the client asked ``logprobs: true`` without ``top_logprobs``
      (OpenAI's default is 0; llama-cpp-python returns no logprobs unless it is set). Nothing
      is stripped from the answer: llama-cpp-python's ``top_logprobs`` list then holds the
      chosen token itself, where OpenAI's would be empty.
    """
    body = {**request, "model": endpoint.model, "stream": stream}
    if request.get("max_tokens") is None and request.get("max_completion_tokens") is not None:
        body["max_tokens"] = request["max_completion_tokens"]
    if request.get("logprobs") is True and request.get("top_logprobs") is None:
        body["top_logprobs"] = 0
    return body


def _connect_timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    """aiohttp's own timeout covers only connecting; the whole call is bounded by the
    callers' ``asyncio.timeout`` (a server trickling one byte a second is cut off too)."""
    return aiohttp.ClientTimeout(total=None, connect=min(CONNECT_TIMEOUT_S, timeout_s),
                                 sock_read=None)


def _valid(endpoint: Endpoint, raw: bytes, shape: Callable[[Any], dict[str, Any]],
           where: str = IN_ANSWER) -> dict[str, Any]:
    """``raw`` as strict JSON of the right shape (:mod:`~classifier_service.gateway.validate`),
    else a :class:`BackendError` (fail over); ``where`` says if it was in a stream."""
    try:
        return shape(validate.strict_json(raw))
    except validate.Malformed as exc:
        raise BackendError(endpoint.name, exc.problem + where, quote=exc.quote) from None


def _sse_data(endpoint: Endpoint, line: bytes) -> bytes | None:
    """The payload of an SSE ``data:`` line; None for the other SSE fields and comments;
    anything else (HTML, garbage) is a broken stream."""
    if line.startswith(b"data:"):
        return line[5:].strip()
    if line.startswith(_SSE_FIELDS):
        return None
    raise BackendError(endpoint.name, "sent a line that is not server-sent events")


async def _read_line(endpoint: Endpoint, response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.content.readline()
    except ValueError:  # aiohttp: a line longer than its buffer
        raise BackendError(endpoint.name, f"sent a stream line over {READ_BUFSIZE} bytes"
                           ) from None


async def _read_capped(endpoint: Endpoint, response: aiohttp.ClientResponse) -> bytes:
    """The body, counted as it arrives: over :data:`MAX_ANSWER_BYTES` (declared or not) is a
    failure, and reading stops there."""
    limit = MAX_ANSWER_BYTES
    if (response.content_length or 0) > limit:
        raise BackendError(endpoint.name, f"answered with more than {limit} bytes")
    body = bytearray()
    async for piece in response.content.iter_any():
        body += piece
        if len(body) > limit:
            raise BackendError(endpoint.name, f"answered with more than {limit} bytes")
    if not body:
        raise BackendError(endpoint.name, "answered with an empty body")
    return bytes(body)


def _as_chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A plain ``chat.completion`` (sent to a stream request) as stream chunks: per choice
    its message as the delta, with its finish reason; the usage on the last chunk."""
    base = {"id": answer.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk", "created": answer.get("created") or 0,
            "model": answer.get("model") or ""}
    chunks = []
    for i, choice in enumerate(answer["choices"]):
        delta = {k: v for k, v in choice["message"].items() if v is not None}
        if isinstance(delta.get("tool_calls"), list):
            delta["tool_calls"] = [{**c, "index": n} for n, c in enumerate(delta["tool_calls"])]
        chunks.append({**base, "choices": [{"index": choice.get("index", i), "delta": delta,
                                            "finish_reason": choice.get("finish_reason")
                                            or "stop"}]})
    if answer.get("usage") is not None:
        chunks[-1]["usage"] = answer["usage"]
    return chunks


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _headers(endpoint: Endpoint) -> dict[str, str]:
    try:
        return {**_JSON, **endpoint.auth_headers()}
    except MissingKeyError as exc:
        raise BackendError(endpoint.name, str(exc)) from None


@contextmanager
def _transport_errors(endpoint: Endpoint, what: str) -> Iterator[None]:
    """aiohttp's failures as :class:`BackendError` (fail over): a timeout, a connection that
    cannot be made or breaks, or an HTTP message that cannot be parsed (e.g. a line longer than
    the read buffer); ``what`` is ``answer`` or ``stream``."""
    try:
        yield
    except TimeoutError:
        raise BackendError(endpoint.name, "timed out") from None
    except aiohttp.ClientConnectorError as exc:
        cause = ("connection refused" if isinstance(exc.os_error, ConnectionRefusedError)
                 else type(exc).__name__)
        raise BackendError(endpoint.name, f"unreachable ({cause})") from None
    except aiohttp.ClientError as exc:
        raise BackendError(endpoint.name, f"unreachable ({type(exc).__name__})") from None
    except HttpProcessingError as exc:
        raise BackendError(endpoint.name, f"sent a broken {what} ({type(exc).__name__})"
                           ) from None


async def _raise_for_status(endpoint: Endpoint, response: aiohttp.ClientResponse) -> None:
    """5xx, 429 and 404 mean "try another endpoint"; other 4xx go back to the client as they
    are. A 404 on the chat path is the server's, not the client's: Ollama answers
    ``{"error": "model 'x' not found"}`` for a model never pulled, OpenAI-compatible servers a
    404 for a model they do not serve (or a wrong ``base_url``). The server's text is kept
    apart (``quote``): it may quote the prompt, and is logged only with prompt logging on."""
    status = response.status
    if status < 400:
        return
    text = (await response.content.read(400)).decode("utf-8", errors="replace")[:200]
    if status == 404:
        raise BackendError(endpoint.name, not_found(endpoint, text), status)
    if status >= 500 or status == 429:
        raise BackendError(endpoint.name, f"HTTP {status}", status, quote=text)
    raise UpstreamRejected(endpoint.name, status, text)


def not_found(endpoint: Endpoint, text: str) -> str:
    """The failure for a 404: the model and the command that fetches it, when the server says
    the model is unknown; else the status and its text (a wrong ``base_url``, say)."""
    lowered = text.lower()
    if "model" in lowered and ("not found" in lowered or "does not exist" in lowered
                               or "not_found" in lowered):
        pull = f"ollama pull {endpoint.model}"
        hint = f"run `{pull}`" if endpoint.api == "ollama" else f"is it served? (Ollama: `{pull}`)"
        return f"model {endpoint.model!r} not found on {endpoint.base_url}: {hint}"
    return f"HTTP 404: {text}"
