"""Test doubles for LLM servers that speak the real wire formats.

``fake_ollama()`` answers Ollama's native API (``/api/chat`` with NDJSON streaming: a tool
call whole in one line with ``done: false``, then a last line with the counts, as Ollama does;
``/api/generate``, ``/api/tags``, ``/api/ps``); ``fake_openai()`` answers the OpenAI
chat-completions API (``/v1/chat/completions`` with SSE streaming, ``/v1/models``). Both are
checked with the official ``ollama`` and ``openai`` clients in ``test_doubles.py``.
``fake_judge()`` is a judge model (:class:`FakeJudge`) for judge sampling and
``tier-router label``: consistent, position-biased, nonsense or slow.
:class:`FakeNvidiaSmi` is an executable ``nvidia-smi`` whose output and exit code a test sets
(put first on ``PATH`` by the ``fake_smi`` fixture of ``conftest.py``).

What a model answers is scripted per model name through a :class:`Script`; every request a
double receives is recorded in ``server.requests`` for the tests to inspect.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.conftest import free_port


@dataclass
class Script:
    """How one model behaves."""

    content: str = "The answer is 42."
    finish: str = "stop"
    status: int = 200
    delay_s: float = 0.0
    tool_call: dict[str, Any] | None = None
    corrupt_stream: bool = False  # one good chunk, then a line that is not JSON
    chunk_delay_s: float = 0.0  # pause before each streamed word after the first
    n_ctx: int | None = None  # fake_openai: a prompt of this many tokens or more is a 400
    logprob: float = -0.25  # each token's logprob, when logprobs are asked


@dataclass
class Double:
    app: FastAPI
    scripts: dict[str, Script] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)
    url: str = ""

    def script(self, model: str) -> Script:
        return self.scripts.get(model, Script())

    async def receive(self, request: Request) -> tuple[dict[str, Any], Script]:
        """Record the request, then behave as its model's script says (after its delay)."""
        body: dict[str, Any] = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        script = self.script(body["model"])
        await asyncio.sleep(script.delay_s)
        return body, script


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def fake_ollama() -> Double:
    app = FastAPI()
    double = Double(app)

    @app.post("/api/chat")
    async def chat(request: Request) -> Any:
        body, script = await double.receive(request)
        if script.status != 200:
            return JSONResponse(status_code=script.status, content={"error": "model failed"})
        message: dict[str, Any] = {"role": "assistant", "content": script.content}
        if script.tool_call:
            message = {"role": "assistant", "content": "",
                       "tool_calls": [{"function": script.tool_call}]}
        done_reason = "length" if script.finish == "length" else "stop"
        if not body.get("stream", True):
            answer = {"model": body["model"], "created_at": "2026-11-29T12:00:00Z",
                      "message": message, "done": True, "done_reason": done_reason,
                      "total_duration": 1000, "load_duration": 10, "prompt_eval_count": 12,
                      "prompt_eval_duration": 100, "eval_count": 8, "eval_duration": 800}
            if body.get("logprobs"):  # Ollama's top-level [{token, logprob, top_logprobs}]
                answer["logprobs"] = [
                    {"token": w, "logprob": script.logprob,
                     "top_logprobs": [{"token": w, "logprob": script.logprob}][
                         : int(body.get("top_logprobs") or 0)]}
                    for w in _words(script.content)]
            return answer

        def line(data: dict[str, Any]) -> bytes:
            return (json.dumps({"model": body["model"], "created_at": "2026-11-29T12:00:00Z",
                                **data}) + "\n").encode()

        async def lines() -> AsyncIterator[bytes]:
            if script.tool_call:  # as Ollama streams it: the whole call, with done false
                yield line({"message": message, "done": False})
            for i, word in enumerate(_words(message["content"]) if not script.tool_call else []):
                if i:
                    await asyncio.sleep(script.chunk_delay_s)
                yield line({"message": {"role": "assistant", "content": word}, "done": False})
            yield line({"message": {"role": "assistant", "content": ""}, "done": True,
                        "done_reason": done_reason, "total_duration": 1000,
                        "load_duration": 10, "prompt_eval_count": 12,
                        "prompt_eval_duration": 100, "eval_count": 8, "eval_duration": 800})

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.post("/api/generate")
    async def generate(request: Request) -> Any:
        body = await request.json()
        double.requests.append(body)
        if body.get("keep_alive") in (0, "0", "0s"):
            double.loaded.discard(body["model"])
            return {"model": body["model"], "created_at": "2026-11-29T12:00:00Z",
                    "response": "", "done": True, "done_reason": "unload"}
        double.loaded.add(body["model"])
        return {"model": body["model"], "created_at": "2026-11-29T12:00:00Z", "response": "",
                "done": True, "done_reason": "load"}

    @app.get("/api/tags")
    async def tags() -> Any:
        return {"models": [{"name": m, "model": m, "modified_at": "2026-11-29T12:00:00Z",
                            "size": 1, "digest": "0" * 64,
                            "details": {"format": "gguf", "family": "llama"}}
                           for m in double.scripts]}

    @app.get("/api/ps")
    async def ps() -> Any:
        return {"models": [{"name": m, "model": m, "size": 5_000_000_000, "digest": "0" * 64,
                            "details": {"format": "gguf", "family": "llama"},
                            "expires_at": "2026-11-29T13:00:00Z", "size_vram": 4_900_000_000}
                           for m in sorted(double.loaded)]}

    return double


def _prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens of the prompt, one per word (the double has no tokenizer)."""
    return sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])


def _logprobs(words: list[str], body: dict[str, Any], script: Script) -> dict[str, Any] | None:
    """llama-cpp-python's logprobs: only with ``logprobs`` and ``top_logprobs`` both set; the
    chosen token is always among the top ones."""
    top = body.get("top_logprobs")
    if not body.get("logprobs") or top is None:
        return None
    return {"content": [{"token": w, "logprob": script.logprob, "bytes": None,
                         "top_logprobs": [{"token": w, "logprob": script.logprob,
                                           "bytes": None}]} for w in words], "refusal": None}


def fake_openai() -> Double:
    """An OpenAI-compatible server that behaves like llama-cpp-python's on the points the
    gateway depends on (checked against the real one in ``tests/test_wire_checks.py``):
    ``max_tokens`` caps the answer (``finish_reason: length``) and ``max_completion_tokens``
    is ignored; logprobs come only with ``top_logprobs`` set; a prompt over the script's
    ``n_ctx`` is a 400 ``context_length_exceeded`` in OpenAI's error shape; a stream starts
    with a role-only delta and ends with an empty delta carrying the finish reason, then
    ``[DONE]``. Tool calls stream as OpenAI's do: a delta with ``index``, ``id``, ``type`` and
    ``function.name``, then ``function.arguments`` in pieces, then ``finish_reason:
    tool_calls``; with ``stream_options.include_usage`` every chunk has ``usage: null`` and a
    last one with ``choices: []`` carries the usage. A token is a word here."""
    app = FastAPI()
    double = Double(app)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body, script = await double.receive(request)
        if script.status != 200:
            return JSONResponse(status_code=script.status, content={
                "error": {"message": "model failed", "type": "server_error", "param": None,
                          "code": None}})
        prompt_tokens = _prompt_tokens(body)
        if script.n_ctx is not None and prompt_tokens >= script.n_ctx:
            cap = body.get("max_tokens")
            return JSONResponse(status_code=400, content={"error": {
                "message": f"This model's maximum context length is {script.n_ctx} tokens. "
                           f"However, you requested {prompt_tokens + (cap or 0)} tokens "
                           f"({prompt_tokens} in the messages, {cap} in the completion). "
                           "Please reduce the length of the messages or completion.",
                "type": "invalid_request_error", "param": "messages",
                "code": "context_length_exceeded"}})
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        words = _words(script.content)
        finish = script.finish
        cap = body.get("max_tokens")
        if isinstance(cap, int) and 0 < cap < len(words):
            words, finish = words[:cap], "length"
        message: dict[str, Any] = {"role": "assistant", "content": "".join(words)}
        if script.tool_call:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": script.tool_call["name"],
                              "arguments": json.dumps(script.tool_call["arguments"])}}]}
            finish = "tool_calls"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words)}
        if not body.get("stream"):
            return {"id": cid, "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish,
                                 "logprobs": _logprobs(words, body, script)}],
                    "usage": usage}

        with_usage = (body.get("stream_options") or {}).get("include_usage") is True

        async def events() -> AsyncIterator[bytes]:
            def event(data: dict[str, Any]) -> bytes:
                data = {"id": cid, "object": "chat.completion.chunk",
                        "created": int(time.time()), "model": body["model"], **data}
                if with_usage:  # OpenAI: usage null on every chunk but the last
                    data.setdefault("usage", None)
                return f"data: {json.dumps(data)}\n\n".encode()

            def chunk(delta: dict[str, Any], reason: str | None,
                      logprobs: dict[str, Any] | None = None) -> bytes:
                return event({"choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                                           "finish_reason": reason}]})

            yield chunk({"role": "assistant"}, None)
            if script.corrupt_stream:
                yield b"data: {not json\n\n"
                return
            if script.tool_call:  # the name first, then the arguments in pieces
                yield chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                             "function": {"name": script.tool_call["name"],
                                                          "arguments": ""}}]}, None)
                arguments = json.dumps(script.tool_call["arguments"])
                for at in range(0, len(arguments), 5):
                    yield chunk({"tool_calls": [{"index": 0, "function": {
                        "arguments": arguments[at:at + 5]}}]}, None)
            for i, word in enumerate([] if script.tool_call else words):
                if i:
                    await asyncio.sleep(script.chunk_delay_s)
                yield chunk({"content": word}, None, _logprobs([word], body, script))
            yield chunk({}, finish)
            if with_usage:
                yield event({"choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/models")
    async def models() -> Any:
        return {"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "test"}
            for m in double.scripts]}

    return double


@dataclass
class FakeJudge:
    """A judge model on the OpenAI wire that reads the two answers of the judge prompt
    (``[Answer A]`` ... ``[Answer B]`` ...) and answers as ``mode`` says:

    - ``consistent``: the answer that contains ``prefer`` wins, in either position (else tie);
    - ``biased``: always ``A`` (position bias);
    - ``nonsense``: a sentence, not a verdict;
    - any mode after ``delay_s`` (a slow judge).
    """

    app: FastAPI
    mode: str = "consistent"
    prefer: str = ""
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def pairs(self) -> list[tuple[str, str]]:
        """The (answer A, answer B) of each request received."""
        return [_answers(r) for r in self.requests]

    def verdict(self, body: dict[str, Any]) -> str:
        if self.mode == "nonsense":
            return "Both answers have merit, but I lean towards the first."
        if self.mode == "biased":
            return "A"
        a, b = _answers(body)
        if self.prefer and (self.prefer in a) != (self.prefer in b):
            return "A" if self.prefer in a else "B"
        return "tie"


def _answers(body: dict[str, Any]) -> tuple[str, str]:
    text = str(body["messages"][-1]["content"])
    after_a = text.split("[Answer A]\n", 1)[1]
    a, rest = after_a.split("\n\n[Answer B]\n", 1)
    return a, rest.split("\n\nWhich answer is better?", 1)[0]


def fake_judge() -> FakeJudge:
    app = FastAPI()
    judge = FakeJudge(app)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body: dict[str, Any] = await request.json()
        judge.requests.append(body)
        await asyncio.sleep(judge.delay_s)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": judge.verdict(body)}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return judge


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


SMI_SCRIPT = """#!/bin/sh
here="$(dirname "$0")"
echo "$*" >> "$here/calls"
sleep "$(cat "$here/delay")"
cat "$here/out"
exit "$(cat "$here/code")"
"""


class FakeNvidiaSmi:
    """An ``nvidia-smi`` executable in ``folder``: prints what :meth:`show` was given."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / "nvidia-smi"
        self.path.write_text(SMI_SCRIPT, encoding="utf-8")
        self.path.chmod(0o755)
        self.show("")

    def show(self, output: str, code: int = 0, delay_s: float = 0.0) -> None:
        """What the next calls print and exit with (each file replaced in one step)."""
        for name, text in (("out", output), ("code", str(code)), ("delay", str(delay_s))):
            tmp = self.folder / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(self.folder / name)

    def gpus(self, *rows: tuple[int, str, int, int]) -> None:
        """GPUs as ``(index, name, used MiB, total MiB)``, in nvidia-smi's CSV."""
        self.show("".join(f"{i}, {name}, {used}, {total}\n" for i, name, used, total in rows))

    @property
    def calls(self) -> list[str]:
        path = self.folder / "calls"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
