"""Relaying a stream of OpenAI chunks to a client: as OpenAI chunks, or as Ollama NDJSON lines.

Backends give OpenAI ``chat.completion.chunk`` objects (:mod:`~classifier_service.gateway.
backends`; an Ollama backend's stream already translated). What a client gets:

- :class:`OpenAIStream` (``/v1``): the chunks as they come, with ``finish_reason: tool_calls``
  when tool calls were streamed (some servers say ``stop``), and with usage when the client
  asked ``stream_options.include_usage``: the backend's usage chunk (``choices: []``), else
  one counted here at the end (:func:`estimated_usage`). Not asked, usage chunks are dropped.
- :class:`ChatLines` (``/api/chat``): Ollama's lines. OpenAI streams send a tool call in
  fragments (the first with ``index``, ``id`` and ``function.name``, then ``arguments`` in
  pieces); they are put together and sent as Ollama does: the whole ``message.tool_calls``
  with parsed arguments in one line with ``done: false``, then the last line, ``done: true``
  with ``done_reason``, ``prompt_eval_count``, ``eval_count`` and ``total_duration``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from classifier_service.gateway.ollama_wire import now_iso


def estimated_usage(request: dict[str, Any], completion_chars: int, chars_per_token: float
                    ) -> dict[str, Any]:
    """Usage counted without a tokenizer: characters / ``policy.chars_per_token`` (4), of the
    messages' text and of the answer's (content and tool-call arguments); marked
    ``estimated: true``."""
    prompt_chars = 0
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            prompt_chars += len(content)
        elif isinstance(content, list):
            prompt_chars += sum(len(str(p.get("text") or "")) for p in content
                                if isinstance(p, dict))
    prompt = math.ceil(prompt_chars / chars_per_token)
    completion = math.ceil(completion_chars / chars_per_token)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "estimated": True}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _answer_chars(delta: dict[str, Any]) -> int:
    chars = len(delta.get("content") or "")
    for call in delta.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            chars += len(str(function.get("name") or "")) + len(str(function.get("arguments")
                                                                    or ""))
    return chars


class _Reader:
    """What every relay reads from the chunks: tool calls seen, the answer's size, usage."""

    def __init__(self, request: dict[str, Any], chars_per_token: float) -> None:
        self.request = request
        self.chars_per_token = chars_per_token
        self.tool_calls = False
        self.chars = 0
        self.usage: dict[str, Any] | None = None
        self.last: dict[str, Any] = {}

    def read(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk's first choice (None for a usage-only chunk), noting what it says."""
        self.last = chunk
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        choice: dict[str, Any] = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self.chars += _answer_chars(delta)
            if delta.get("tool_calls"):
                self.tool_calls = True
        return choice

    def final_usage(self) -> dict[str, Any]:
        return self.usage or estimated_usage(self.request, self.chars, self.chars_per_token)


class OpenAIStream(_Reader):
    """The chunks for an OpenAI client (see the module's docstring)."""

    def __init__(self, request: dict[str, Any], chars_per_token: float) -> None:
        super().__init__(request, chars_per_token)
        options = request.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        choice = self.read(chunk)
        if choice is None:
            return [chunk] if self.include_usage and isinstance(chunk.get("usage"), dict) else []
        if self.tool_calls and choice.get("finish_reason") == "stop":
            chunk = {**chunk, "choices": [{**choice, "finish_reason": "tool_calls"},
                                          *chunk["choices"][1:]]}
        return [chunk]

    def end(self) -> list[dict[str, Any]]:
        """A counted usage chunk when usage was asked and the backend sent none."""
        if not self.include_usage or self.usage is not None:
            return []
        return [{"id": self.last.get("id", ""), "object": "chat.completion.chunk",
                 "created": self.last.get("created", int(time.time())),
                 "model": self.last.get("model", ""), "choices": [],
                 "usage": self.final_usage()}]


class ChatLines(_Reader):
    """The chunks as the lines of an Ollama ``/api/chat`` stream (see the module's docstring)."""

    def __init__(self, request: dict[str, Any], chars_per_token: float, model: str,
                 started_ns: int | None = None) -> None:
        super().__init__(request, chars_per_token)
        self.model = model
        self.started_ns = time.perf_counter_ns() if started_ns is None else started_ns
        """``time.perf_counter_ns()`` when the request came: ``total_duration`` counts from it."""
        self.calls: dict[int, dict[str, str]] = {}
        self.finish: str | None = None

    def _line(self, message: dict[str, Any], done: bool) -> dict[str, Any]:
        return {"model": self.model, "created_at": now_iso(),
                "message": {"role": "assistant", **message}, "done": done}

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        choice = self.read(chunk)
        if choice is None:
            return []
        delta = _mapping(choice.get("delta"))
        for position, call in enumerate(delta.get("tool_calls") or []):
            if not isinstance(call, dict):
                continue
            given = call.get("index")
            index = given if isinstance(given, int) else position
            function = _mapping(call.get("function"))
            entry = self.calls.setdefault(index, {"name": "", "arguments": ""})
            entry["name"] += str(function.get("name") or "")
            arguments = function.get("arguments")
            entry["arguments"] += (arguments if isinstance(arguments, str)
                                   else json.dumps(arguments) if arguments else "")
        lines = []
        if delta.get("content"):
            lines.append(self._line({"content": delta["content"]}, False))
        if choice.get("finish_reason") is not None:
            self.finish = str(choice["finish_reason"])
            if self.calls:
                lines.append(self._line({"content": "", "tool_calls": self.tool_calls_made()},
                                        False))
        return lines

    def tool_calls_made(self) -> list[dict[str, Any]]:
        made = []
        for _, call in sorted(self.calls.items()):
            try:
                arguments = json.loads(call["arguments"]) if call["arguments"] else {}
            except ValueError:
                arguments = {}
            made.append({"function": {"name": call["name"],
                                      "arguments": arguments if isinstance(arguments, dict)
                                      else {}}})
        return made

    def end(self) -> list[dict[str, Any]]:
        """The tool calls if no finish reason came, then Ollama's last line with the counts."""
        lines = []
        if self.finish is None and self.calls:
            lines.append(self._line({"content": "", "tool_calls": self.tool_calls_made()},
                                    False))
        usage = self.final_usage()
        last = self._line({"content": ""}, True)
        last.update({"done_reason": "length" if self.finish == "length" else "stop",
                     "total_duration": time.perf_counter_ns() - self.started_ns,
                     "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
                     "eval_count": int(usage.get("completion_tokens") or 0)})
        return [*lines, last]
