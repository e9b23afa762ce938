"""Ollama's native chat wire format, both ways.

tier-router works in OpenAI's chat-completions shape. Towards Ollama endpoints (the backends)
it turns OpenAI requests into ``/api/chat`` bodies and Ollama answers into OpenAI completions
and chunks; for Ollama clients (the Ollama-compatible gateway) it does the reverse: ``/api/chat``
and ``/api/generate`` bodies into OpenAI requests, OpenAI answers into Ollama messages.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from classifier_service.portfolio.model import Endpoint, keep_alive_value

OLLAMA_OPTIONS = {
    "temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop",
    "max_tokens": "num_predict", "max_completion_tokens": "num_predict",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
}


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
        body["keep_alive"] = keep_alive_value(endpoint.keep_alive)
    if request.get("tools"):
        body["tools"] = request["tools"]
    if request.get("logprobs") is True:  # /api/chat takes both (ollama-python ChatRequest)
        body["logprobs"] = True
        if isinstance(request.get("top_logprobs"), int):
            body["top_logprobs"] = request["top_logprobs"]
    fmt = request.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            body["format"] = "json"
        elif fmt.get("type") == "json_schema":
            body["format"] = (fmt.get("json_schema") or {}).get("schema", "json")
    return body


def _ollama_message(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.get("role", "user")}
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts: keep the text
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    out["content"] = content or ""
    calls = _functions(message.get("tool_calls"))
    if calls:
        out["tool_calls"] = [{"function": {"name": name, "arguments": _json_object(args)}}
                             for name, args in calls]
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


def _functions(tool_calls: Any) -> list[tuple[str, Any]]:
    """``(name, arguments)`` of each well-formed tool call; malformed entries are dropped."""
    if not isinstance(tool_calls, list):
        return []
    found = []
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            found.append((function["name"], function.get("arguments", {})))
    return found


def _openai_tool_calls(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    calls = _functions(message.get("tool_calls"))
    if not calls:
        return None
    return [
        {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
         "function": {"name": name, "arguments": json.dumps(args)}}
        for name, args in calls
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
    choice: dict[str, Any] = {"index": 0, "message": out_message,
                              "finish_reason": _finish_reason(data, tool_calls)}
    if isinstance(data.get("logprobs"), list):  # Ollama's [{token, logprob, top_logprobs}]
        choice["logprobs"] = {"content": data["logprobs"]}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": ollama_usage(data) or {"prompt_tokens": 0, "completion_tokens": 0,
                                        "total_tokens": 0},
    }


def ollama_usage(data: dict[str, Any]) -> dict[str, int] | None:
    """OpenAI ``usage`` from Ollama's ``prompt_eval_count`` and ``eval_count`` (None: neither
    given)."""
    if data.get("prompt_eval_count") is None and data.get("eval_count") is None:
        return None
    prompt_tokens = int(data.get("prompt_eval_count") or 0)
    completion_tokens = int(data.get("eval_count") or 0)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class OllamaChunks:
    """An Ollama ``/api/chat`` stream as OpenAI ``chat.completion.chunk`` objects.

    Ollama sends each tool call whole, in a line with ``done: false``, then a last line with
    ``done: true``, ``done_reason: stop`` and the token counts. OpenAI clients expect each call
    as a delta with its own ``index`` (counted over the whole stream), ``id``, ``type`` and
    ``function`` {``name``, ``arguments`` as a JSON string}, ``finish_reason: tool_calls`` when
    calls were made, and the counts in a last chunk with ``choices: []`` and ``usage`` (sent
    always: the API layer drops it unless the client asked ``stream_options.include_usage``).
    """

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.model = model
        self.calls = 0
        self.started = False

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.model, "choices": choices}

    def feed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        message = data.get("message") or {}
        delta: dict[str, Any] = {}
        if not self.started:
            delta["role"] = "assistant"
            self.started = True
        if message.get("content"):
            delta["content"] = message["content"]
        tool_calls = _openai_tool_calls(message)
        if tool_calls:
            delta["tool_calls"] = [{"index": self.calls + i, **c}
                                   for i, c in enumerate(tool_calls)]
            self.calls += len(tool_calls)
        if not data.get("done"):
            return [self._chunk([{"index": 0, "delta": delta, "finish_reason": None}])]
        finish = _finish_reason(data, self.calls)
        chunks = [self._chunk([{"index": 0, "delta": delta, "finish_reason": finish}])]
        usage = ollama_usage(data)
        if usage is not None:
            chunks.append({**self._chunk([]), "usage": usage})
        return chunks


# -- Ollama clients -> tier-router ---------------------------------------------------------


def chat_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """An Ollama ``/api/chat`` body as an OpenAI chat request."""
    request: dict[str, Any] = {
        "model": body.get("model") or "auto",
        "messages": [_openai_message(m) for m in body.get("messages") or []],
    }
    options = body.get("options") or {}
    for openai_name, ollama_name in OLLAMA_OPTIONS.items():
        if ollama_name in options and openai_name != "max_completion_tokens":
            request[openai_name] = options[ollama_name]
    if body.get("tools"):
        request["tools"] = body["tools"]
    fmt = body.get("format")
    if fmt == "json":
        request["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        request["response_format"] = {"type": "json_schema",
                                      "json_schema": {"name": "output", "schema": fmt}}
    return request


def generate_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """An Ollama ``/api/generate`` body as an OpenAI chat request."""
    messages = []
    if body.get("system"):
        messages.append({"role": "system", "content": body["system"]})
    messages.append({"role": "user", "content": body.get("prompt") or ""})
    return chat_to_openai({**body, "messages": messages})


def _openai_message(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    out: dict[str, Any] = {"role": str(message.get("role") or "user"),
                           "content": content if isinstance(content, str) else ""}
    calls = _functions(message.get("tool_calls"))
    if calls:
        out["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls)
        ]
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _ollama_done_reason(finish_reason: str | None) -> str:
    return "length" if finish_reason == "length" else "stop"


def completion_to_chat(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI completion as an Ollama ``/api/chat`` answer."""
    choice = completion["choices"][0]
    message = choice.get("message") or {}
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = _functions(message.get("tool_calls"))
    if calls:
        out["tool_calls"] = [{"function": {"name": name, "arguments": _json_object(args)}}
                             for name, args in calls]
    usage = completion.get("usage") or {}
    return {"model": model, "created_at": now_iso(), "message": out, "done": True,
            "done_reason": _ollama_done_reason(choice.get("finish_reason")),
            "prompt_eval_count": usage.get("prompt_tokens", 0),
            "eval_count": usage.get("completion_tokens", 0)}


def chat_to_generate(line: dict[str, Any]) -> dict[str, Any]:
    """An ``/api/chat`` answer or stream line in ``/api/generate``'s shape."""
    out = {k: v for k, v in line.items() if k != "message"}
    out["response"] = (line.get("message") or {}).get("content", "")
    return out
