"""Backends: sending a chat request to one endpoint, in its own wire format.

Requests and answers are in OpenAI's chat-completions shape everywhere in tier-router; this
module speaks each server's protocol:

- ``openai`` endpoints (vLLM, llama.cpp server, Ollama's ``/v1``): ``POST
  {base_url}/chat/completions``, the body passed through untouched but for ``model``;
  streaming is server-sent events.
- ``ollama`` endpoints: Ollama's native ``POST {base_url}/api/chat``, with the endpoint's
  ``keep_alive`` and its ``context_length`` as ``options.num_ctx``; sampling fields map to
  ``options``, ``tools`` and ``format`` pass through; streaming is NDJSON, turned into
  OpenAI chunks here.

One pooled ``httpx.AsyncClient`` serves all endpoints. Connection errors, timeouts and 5xx
answers raise :class:`BackendError`, which the gateway treats as "try the next endpoint".
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from classifier_service.errors import TierRouterError
from classifier_service.portfolio import Endpoint

OLLAMA_OPTIONS = {
    "temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop",
    "max_tokens": "num_predict", "max_completion_tokens": "num_predict",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
}


class BackendError(TierRouterError):
    """An endpoint could not answer: unreachable, too slow, or a server error."""

    def __init__(self, endpoint: str, problem: str, status: int | None = None) -> None:
        self.endpoint = endpoint
        self.problem = problem
        self.status = status
        super().__init__(f"{endpoint}: {problem}")


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
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def complete(self, endpoint: Endpoint, request: dict[str, Any]) -> Completion:
        if endpoint.api == "openai":
            body = {**request, "model": endpoint.model, "stream": False}
            data = await self._post_json(endpoint, f"{endpoint.base_url}/chat/completions", body)
            return Completion(data)
        data = await self._post_json(endpoint, f"{endpoint.base_url}/api/chat",
                                     ollama_request(endpoint, request, stream=False))
        return Completion(ollama_to_completion(data, request.get("model", endpoint.model)))

    async def stream(self, endpoint: Endpoint, request: dict[str, Any]
                     ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI ``chat.completion.chunk`` objects; errors before the first one raise."""
        if endpoint.api == "openai":
            body = {**request, "model": endpoint.model, "stream": True}
            url = f"{endpoint.base_url}/chat/completions"
        else:
            body = ollama_request(endpoint, request, stream=True)
            url = f"{endpoint.base_url}/api/chat"
        try:
            async with self.client.stream("POST", url, json=body) as response:
                await _raise_for_status(endpoint, response)
                if endpoint.api == "openai":
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            payload = line[5:].strip()
                            if payload == "[DONE]":
                                return
                            yield json.loads(payload)
                else:
                    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
                    async for line in response.aiter_lines():
                        if line.strip():
                            yield ollama_to_chunk(json.loads(line), chunk_id,
                                                  request.get("model", endpoint.model))
        except httpx.TimeoutException:
            raise BackendError(endpoint.name, "timed out") from None
        except httpx.TransportError as exc:
            raise BackendError(endpoint.name, f"unreachable ({type(exc).__name__})") from None

    async def _post_json(self, endpoint: Endpoint, url: str, body: dict[str, Any]
                         ) -> dict[str, Any]:
        try:
            response = await self.client.post(url, json=body)
        except httpx.TimeoutException:
            raise BackendError(endpoint.name, "timed out") from None
        except httpx.TransportError as exc:
            raise BackendError(endpoint.name, f"unreachable ({type(exc).__name__})") from None
        await _raise_for_status(endpoint, response)
        try:
            data = response.json()
        except ValueError:
            raise BackendError(endpoint.name, "answered with invalid JSON") from None
        if not isinstance(data, dict):
            raise BackendError(endpoint.name, "answered with an unexpected shape")
        return data


async def _raise_for_status(endpoint: Endpoint, response: httpx.Response) -> None:
    if response.status_code >= 400:
        await response.aread()
        raise BackendError(endpoint.name, f"HTTP {response.status_code}: "
                           f"{response.text[:200]}", response.status_code)


def ollama_request(endpoint: Endpoint, request: dict[str, Any], *, stream: bool
                   ) -> dict[str, Any]:
    """An OpenAI chat request in Ollama's native ``/api/chat`` shape."""
    options: dict[str, Any] = {"num_ctx": endpoint.context_length}
    for openai_name, ollama_name in OLLAMA_OPTIONS.items():
        if request.get(openai_name) is not None:
            options[ollama_name] = request[openai_name]
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": [_ollama_message(m) for m in request.get("messages", [])],
        "stream": stream,
        "options": options,
    }
    if endpoint.keep_alive is not None:
        body["keep_alive"] = _keep_alive(endpoint.keep_alive)
    if request.get("tools"):
        body["tools"] = request["tools"]
    fmt = request.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            body["format"] = "json"
        elif fmt.get("type") == "json_schema":
            body["format"] = (fmt.get("json_schema") or {}).get("schema", "json")
    return body


def _keep_alive(value: str) -> str | int:
    """Ollama takes durations ("10m") or seconds; "-1" and "0" are numbers to it."""
    try:
        return int(value)
    except ValueError:
        return value


def _ollama_message(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.get("role", "user")}
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts: keep the text
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    out["content"] = content or ""
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {"function": {"name": c["function"]["name"],
                          "arguments": _json_object(c["function"].get("arguments"))}}
            for c in message["tool_calls"]
        ]
    if message.get("role") == "tool" and message.get("name"):
        out["tool_name"] = message["name"]
    return out


def _json_object(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return {}
    return arguments


def _openai_tool_calls(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    calls = message.get("tool_calls")
    if not calls:
        return None
    return [
        {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
         "function": {"name": c["function"]["name"],
                      "arguments": json.dumps(c["function"].get("arguments", {}))}}
        for c in calls
    ]


def _finish_reason(data: dict[str, Any], tool_calls: Any) -> str:
    if tool_calls:
        return "tool_calls"
    return "length" if data.get("done_reason") == "length" else "stop"


def ollama_to_completion(data: dict[str, Any], model: str) -> dict[str, Any]:
    message = data.get("message") or {}
    tool_calls = _openai_tool_calls(message)
    out_message: dict[str, Any] = {"role": "assistant", "content": message.get("content", "")}
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    prompt_tokens = int(data.get("prompt_eval_count") or 0)
    completion_tokens = int(data.get("eval_count") or 0)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": out_message,
                     "finish_reason": _finish_reason(data, tool_calls)}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def ollama_to_chunk(data: dict[str, Any], chunk_id: str, model: str) -> dict[str, Any]:
    message = data.get("message") or {}
    delta: dict[str, Any] = {}
    if message.get("content"):
        delta["content"] = message["content"]
    tool_calls = _openai_tool_calls(message)
    if tool_calls:
        delta["tool_calls"] = [{**c, "index": i} for i, c in enumerate(tool_calls)]
    done = bool(data.get("done"))
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta,
                     "finish_reason": _finish_reason(data, tool_calls) if done else None}],
    }
