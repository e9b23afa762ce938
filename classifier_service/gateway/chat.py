"""Reading a chat request: the route options in its headers, whether a stream is buffered,
the last user message, and a finished answer as OpenAI stream chunks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from classifier_service.gateway.backends import Completion


def buffered(headers: Mapping[str, str], default: bool = False) -> bool:
    """Whether a streamed request is answered checked (buffered) or as it comes (direct):
    the ``x-tier-router-stream`` header, else the portfolio's ``policy.buffer_streams``."""
    mode = headers.get("x-tier-router-stream", "").lower()
    if mode in ("buffered", "direct"):
        return mode == "buffered"
    return default


def as_chunks(completion: Completion) -> list[dict[str, Any]]:
    """A finished answer as OpenAI stream chunks (role, content and tool calls, finish, and
    the answer's usage in a last chunk with no choices, as OpenAI sends it)."""
    body = completion.body
    message = body["choices"][0].get("message") or {}
    base = {"id": body.get("id", ""), "object": "chat.completion.chunk",
            "created": body.get("created", int(time.time())), "model": body.get("model", "")}

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    content: dict[str, Any] = {"content": message.get("content") or ""}
    if message.get("tool_calls"):
        content = {"tool_calls": [{"index": i, **c}
                                  for i, c in enumerate(message["tool_calls"])]}
        if message.get("content"):
            content["content"] = message["content"]
    chunks = [chunk({"role": "assistant", "content": ""}, None), chunk(content, None),
              chunk({}, completion.finish_reason or "stop")]
    if isinstance(body.get("usage"), dict):
        chunks.append({**base, "choices": [], "usage": body["usage"]})
    return chunks


def header_options(headers: Mapping[str, str]) -> dict[str, str | None]:
    """Route options carried in ``x-tier-router-*`` headers (empty means unset)."""
    return {
        "agent": headers.get("x-tier-router-agent") or None,
        "min_tier": headers.get("x-tier-router-min-tier") or None,
        "max_tier": headers.get("x-tier-router-max-tier") or None,
    }


def last_user_text(messages: Any) -> str:
    """The text of the last user message (content parts joined)."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""
