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
keep using httpx. Connection errors, timeouts and 5xx answers raise :class:`BackendError`,
which the gateway treats as "try the next endpoint". ``policy.backend_timeout_s`` (read at
each call, so a reload changes it) bounds the wait for each read (a stream may run longer while
it keeps sending); connecting, 5 s. The session ignores proxy variables and ``~/.netrc``: the
LLM servers are the portfolio's own, and looking those up costs two thread-pool jobs per call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from classifier_service.errors import BackendError, MissingKeyError, UpstreamRejected
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
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    @classmethod
    def open(cls, timeout_s: float, max_connections: int = 256) -> Backends:
        """A pooled session; call from a running event loop, and :meth:`close` it."""
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S,
                                        sock_read=timeout_s)
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0)
        return cls(aiohttp.ClientSession(timeout=timeout, connector=connector,
                                         read_bufsize=READ_BUFSIZE, raise_for_status=False,
                                         auto_decompress=True, trust_env=False))

    async def close(self) -> None:
        await self.session.close()

    async def complete(self, endpoint: Endpoint, request: dict[str, Any],
                       timeout_s: float | None = None) -> Completion:
        if endpoint.api == "openai":
            body = openai_body(endpoint, request, stream=False)
            data = await self._post_json(endpoint, f"{endpoint.base_url}/chat/completions", body,
                                         timeout_s)
            return _checked(endpoint, Completion(data))
        data = await self._post_json(endpoint, f"{endpoint.base_url}/api/chat",
                                     ollama_request(endpoint, request, stream=False), timeout_s)
        if not isinstance(data.get("message"), dict):
            raise BackendError(endpoint.name, "answered without a message")
        return Completion(ollama_to_completion(data, request.get("model") or endpoint.model))

    async def stream(self, endpoint: Endpoint, request: dict[str, Any],
                     timeout_s: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """OpenAI ``chat.completion.chunk`` objects; errors before the first one raise."""
        if endpoint.api == "openai":
            body = openai_body(endpoint, request, stream=True)
            url = f"{endpoint.base_url}/chat/completions"
        else:
            body = ollama_request(endpoint, request, stream=True)
            url = f"{endpoint.base_url}/api/chat"
        headers = _headers(endpoint)
        with _transport_errors(endpoint, "stream"):
            async with self.session.post(url, data=_encode(body), headers=headers,
                                         timeout=_timeout(timeout_s)) as response:
                await _raise_for_status(endpoint, response)
                if endpoint.api == "openai":
                    async for raw in response.content:
                        line = _text(endpoint, raw)
                        if line.startswith("data:"):
                            payload = line[5:].strip()
                            if payload == "[DONE]":
                                return
                            yield _json_object(endpoint, payload, IN_STREAM)
                    # llama-cpp-python ends a stream that way when the prompt overflows its
                    # context (a 200, then nothing): broken, not an empty answer
                    raise BackendError(endpoint.name, "ended its stream without [DONE]")
                else:
                    chunks = OllamaChunks(request.get("model") or endpoint.model)
                    async for raw in response.content:
                        line = _text(endpoint, raw)
                        if line.strip():
                            for chunk in chunks.feed(_json_object(endpoint, line, IN_STREAM)):
                                yield chunk

    async def _post_json(self, endpoint: Endpoint, url: str, body: dict[str, Any],
                         timeout_s: float | None) -> dict[str, Any]:
        headers = _headers(endpoint)
        with _transport_errors(endpoint, "answer"):
            async with self.session.post(url, data=_encode(body), headers=headers,
                                         timeout=_timeout(timeout_s)) as response:
                await _raise_for_status(endpoint, response)
                if (response.content_length or 0) > MAX_ANSWER_BYTES:
                    raise BackendError(endpoint.name, f"answered with more than "
                                       f"{MAX_ANSWER_BYTES} bytes")
                raw = await response.read()
        return _json_object(endpoint, raw, IN_ANSWER)


CONNECT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""A non-streamed answer that says it is larger is refused (a broken server, not a reply)."""
READ_BUFSIZE = 1 << 20
"""Longest stream line read at once (an SSE event or an NDJSON line)."""
_JSON = {"content-type": "application/json"}


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


def _timeout(timeout_s: float | None) -> aiohttp.ClientTimeout | None:
    """The current policy's read timeout (None: the session's, from start-up)."""
    if timeout_s is None:
        return None
    return aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=timeout_s)


def _checked(endpoint: Endpoint, completion: Completion) -> Completion:
    """An answer must have a first choice with a message, else it is the server's failure."""
    choices = completion.body.get("choices")
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)
            and isinstance(choices[0].get("message") or {}, dict)):
        raise BackendError(endpoint.name, "answered without choices")
    return completion


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _text(endpoint: Endpoint, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BackendError(endpoint.name, "sent a stream that is not UTF-8") from None


def _headers(endpoint: Endpoint) -> dict[str, str]:
    try:
        return {**_JSON, **endpoint.auth_headers()}
    except MissingKeyError as exc:
        raise BackendError(endpoint.name, str(exc)) from None


IN_ANSWER = ("answered with invalid JSON", "answered with an unexpected shape")
IN_STREAM = ("sent invalid JSON in its stream", "sent an unexpected shape in its stream")


def _json_object(endpoint: Endpoint, raw: str | bytes, problems: tuple[str, str]
                 ) -> dict[str, Any]:
    """A JSON object from a server; ``problems`` names what is wrong (not JSON, not an object)
    in the words of where it came from (an answer, a stream line)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise BackendError(endpoint.name, problems[0]) from None
    if not isinstance(data, dict):
        raise BackendError(endpoint.name, problems[1])
    return data


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
    404 for a model they do not serve (or a wrong ``base_url``)."""
    status = response.status
    if status < 400:
        return
    text = (await response.content.read(400)).decode("utf-8", errors="replace")[:200]
    if status == 404:
        raise BackendError(endpoint.name, not_found(endpoint, text), status)
    if status >= 500 or status == 429:
        raise BackendError(endpoint.name, f"HTTP {status}: {text}", status)
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
