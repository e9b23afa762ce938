"""The same wire checks against the OpenAI double (``tests.doubles.fake_openai``) and a real
llama.cpp server: where the double is what the gateway's tests talk to, it must say what the
real server says (fields, stream framing, logprobs, caps, the context-overflow error).

The ``llama`` cases carry the ``real_server`` marker (``tests/llama.py`` says when they run);
the ``double`` cases run in the fast suite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.doubles import Script, fake_openai, running

N_CTX = 512
PROMPT = "Name three colours."


@dataclass(frozen=True)
class Target:
    url: str  # .../v1
    model: str


@pytest.fixture(scope="module")
def double_target() -> Iterator[Target]:
    double = fake_openai()
    double.scripts["smol"] = Script(content="Red, green and blue are three colours.",
                                    n_ctx=N_CTX)
    with running(double.app) as url:
        yield Target(f"{url}/v1", "smol")


@pytest.fixture(params=["double", pytest.param("llama", marks=pytest.mark.real_server)])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "double":
        found: Target = request.getfixturevalue("double_target")
        return found
    small = request.getfixturevalue("llama").running["small"].server
    assert small.n_ctx == N_CTX
    return Target(small.base_url, small.alias)


def post(target: Target, **body: Any) -> httpx.Response:
    return httpx.post(f"{target.url}/chat/completions", timeout=120, json={
        "model": target.model, "messages": [{"role": "user", "content": PROMPT}], **body})


def events(target: Target, **body: Any) -> tuple[httpx.Response, list[str]]:
    """The ``data:`` payloads of a stream, in order (comments and blank lines dropped)."""
    with httpx.stream("POST", f"{target.url}/chat/completions", timeout=120, json={
            "model": target.model, "messages": [{"role": "user", "content": PROMPT}],
            "stream": True, **body}) as response:
        lines = list(response.iter_lines())
    data = [line[6:] for line in lines if line.startswith("data: ")]
    assert all(not line or line.startswith(("data: ", ":")) for line in lines), lines
    return response, data


def test_an_answer_has_openais_fields(target: Target) -> None:
    r = post(target, max_tokens=16)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"] == target.model
    choice = body["choices"][0]
    assert set(choice) == {"index", "message", "logprobs", "finish_reason"}
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["logprobs"] is None and choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 16


def test_max_tokens_caps_and_max_completion_tokens_alone_does_not(target: Target) -> None:
    capped = post(target, max_tokens=3).json()
    assert capped["usage"]["completion_tokens"] == 3
    assert capped["choices"][0]["finish_reason"] == "length"
    ignored = post(target, max_completion_tokens=3, max_tokens=None).json()
    assert ignored["usage"]["completion_tokens"] > 3  # what the gateway's fix is for


def test_logprobs_only_with_top_logprobs(target: Target) -> None:
    none = post(target, max_tokens=4, logprobs=True).json()
    assert none["choices"][0]["logprobs"] is None
    body = post(target, max_tokens=4, logprobs=True, top_logprobs=0).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == body["usage"]["completion_tokens"]
    assert "".join(t["token"] for t in content) == body["choices"][0]["message"]["content"]
    for token in content:
        assert set(token) == {"token", "logprob", "bytes", "top_logprobs"}
        assert token["logprob"] <= 0
        assert token["top_logprobs"] and token["token"] in [t["token"]
                                                            for t in token["top_logprobs"]]


def test_stream_framing(target: Target) -> None:
    response, data = events(target, max_tokens=8)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[:-1] == [None] * (len(chunks) - 1) and finishes[-1] in ("stop", "length")
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert all("content" in c["choices"][0]["delta"] for c in chunks[1:-1])
    assert all("logprobs" in c["choices"][0] for c in chunks)


def test_stream_logprobs(target: Target) -> None:
    _, data = events(target, max_tokens=4, logprobs=True, top_logprobs=1)
    chunks = [json.loads(d) for d in data[:-1]]
    for chunk in chunks[1:-1]:
        token = chunk["choices"][0]["logprobs"]["content"]
        assert "".join(t["token"] for t in token) == chunk["choices"][0]["delta"]["content"]


def test_context_overflow_is_openais_400(target: Target) -> None:
    r = httpx.post(f"{target.url}/chat/completions", timeout=120, json={
        "model": target.model, "max_tokens": 8, "messages": [
            {"role": "user", "content": " ".join(["word"] * (2 * N_CTX))}]})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert error["message"].startswith(f"This model's maximum context length is {N_CTX} tokens")
