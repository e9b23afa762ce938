"""What the gateway's limits count: the characters of a whole conversation (for
``policy.max_prompt_chars`` and the context estimate) and the session map's keys (bounded in
bytes whatever the ids are)."""

from __future__ import annotations

import hashlib
from typing import Any

SESSION_ID_CHARS = 64


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


def conversation_chars(messages: Any) -> int:
    """Characters of the whole conversation, as the size limit and the context estimate count
    them: every message's text (system, user, assistant, tool; content parts joined) and the
    arguments of its tool calls."""
    if not isinstance(messages, list):
        return 0
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += len(_text(message.get("content")))
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                total += len(str(function.get("arguments") or ""))
    return total


def session_key(session: str) -> str:
    """The session map's key: the id itself up to :data:`SESSION_ID_CHARS` ASCII characters,
    else its BLAKE2b digest (32 hex characters), so each entry is small whatever the id."""
    if len(session) <= SESSION_ID_CHARS and session.isascii():
        return session
    digest = hashlib.blake2b(session.encode("utf-8", "surrogatepass"), digest_size=16)
    return f"#{digest.hexdigest()}"
