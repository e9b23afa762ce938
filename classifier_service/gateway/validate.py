"""What an LLM server sends, checked before anything reads it.

Every answer and every stream line from a backend goes through :func:`strict_json` and then
the shape check of its wire format: :func:`openai_answer` / :func:`openai_chunk` for
OpenAI-compatible servers, :func:`ollama_answer` (also each NDJSON stream line) for Ollama's
native API. Anything else raises :class:`Malformed`, which the backends turn into a
:class:`~classifier_service.errors.BackendError`: the gateway fails over to the next endpoint
and cools this one down, as for a 5xx.

Refused: text that is not UTF-8 or not JSON; ``NaN``, ``Infinity`` and numbers too large for a
float (``1e999``); lone surrogates (``"\\ud800"``), which cannot be encoded back to the
client; nesting deeper than the parser's recursion limit; and, in the shape, a missing or
empty ``choices`` list, a choice without a ``message`` object (OpenAI) or an answer without a
``message`` object (Ollama), ``content`` that is neither a string nor null, ``tool_calls``
that is not a list of objects, a ``finish_reason`` / ``done_reason`` that is not a string, a
``usage`` that is not an object, and token counts (``prompt_tokens``, ``eval_count``, ...)
that are not non-negative integers. An ``error`` field in an answer or stream line (how
Ollama and vLLM report a failure after sending 200) is a failure too; its text is returned
apart (:attr:`Malformed.quote`), as it may quote the prompt.
"""

from __future__ import annotations

import json
from typing import Any

OPENAI_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
OLLAMA_COUNTS = ("prompt_eval_count", "eval_count", "total_duration", "load_duration",
                 "prompt_eval_duration", "eval_duration")


class Malformed(ValueError):
    """What is wrong with a backend's answer; ``quote``: text of the server's own error."""

    def __init__(self, problem: str, quote: str | None = None) -> None:
        self.problem = problem
        self.quote = quote
        super().__init__(problem)


def _no_constant(name: str) -> Any:
    raise Malformed(f"sent {name}, which is not JSON")


def strict_json(raw: str | bytes) -> Any:
    """``raw`` decoded as strict JSON (RFC 8259): no NaN or infinities, no lone surrogates."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except Malformed:
        raise
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Malformed("sent invalid JSON") from None
    try:  # 1e999 parses to inf; "\ud800" to a str that cannot be encoded
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # UnicodeEncodeError is one
        raise Malformed("sent a non-finite number or a lone surrogate") from None
    except RecursionError:
        raise Malformed("sent JSON nested too deeply") from None
    return data


def openai_answer(data: Any) -> dict[str, Any]:
    """A ``chat.completion`` object: choices, each with a message; a sound ``usage``."""
    obj = _object(data)
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices:
        raise Malformed("answered without choices")
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise Malformed("answered a choice without a message object")
        _message(message)
        _reason(choice, "finish_reason")
    _usage(obj.get("usage"))
    return obj


def openai_chunk(data: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk``: a list of choices (empty for a usage-only chunk), each
    with a delta object or none; a sound ``usage``."""
    obj = _object(data)
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise Malformed("sent a stream chunk without choices")
    for choice in choices:
        if not isinstance(choice, dict):
            raise Malformed("sent a stream choice that is not an object")
        delta = choice.get("delta")
        if delta is not None:
            if not isinstance(delta, dict):
                raise Malformed("sent a stream delta that is not an object")
            _message(delta)
        _reason(choice, "finish_reason")
    _usage(obj.get("usage"))
    return obj


def ollama_answer(data: Any) -> dict[str, Any]:
    """An ``/api/chat`` answer or stream line: a message object, counts, ``done``."""
    obj = _object(data)
    if not isinstance(obj.get("message"), dict):
        raise Malformed("answered without a message object")
    _message(obj["message"])
    for key in OLLAMA_COUNTS:
        _count(obj.get(key), key)
    if not isinstance(obj.get("done", False), bool):
        raise Malformed("sent a done field that is not a boolean")
    _reason(obj, "done_reason")
    return obj


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Malformed("answered with JSON that is not an object")
    error = data.get("error")
    if error is not None:
        text = error.get("message") if isinstance(error, dict) else error
        raise Malformed("answered with an error", str(text)[:200])
    return data


def _message(message: dict[str, Any]) -> None:
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise Malformed("answered content that is neither a string nor null")
    calls = message.get("tool_calls")
    if calls is not None and not (isinstance(calls, list)
                                  and all(isinstance(c, dict) for c in calls)):
        raise Malformed("answered tool_calls that is not a list of objects")
    role = message.get("role")
    if role is not None and not isinstance(role, str):
        raise Malformed("answered a role that is not a string")


def _reason(obj: dict[str, Any], key: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise Malformed(f"answered a {key} that is not a string")


def _usage(usage: Any) -> None:
    if usage is None:
        return
    if not isinstance(usage, dict):
        raise Malformed("answered a usage that is not an object")
    for key in OPENAI_COUNTS:
        _count(usage.get(key), f"usage.{key}")


def _count(value: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Malformed(f"answered a {name} that is not a non-negative integer")
