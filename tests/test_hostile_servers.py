"""Hostile LLM servers behind both gateways (``tests/hostile.py``): every broken answer and
stream, through ``/v1/chat/completions``, ``/api/chat`` and ``/api/generate``, streamed and
not, with the hostile endpoint alone and with a healthy one to fail over to.

Asserted each time: no 500; either a failover answer from the healthy endpoint or a 503 in
that API's error shape; a stream that breaks after its start ends with an error event and its
terminator (``data: [DONE]``; an NDJSON last line that is JSON with ``done: true``); and the
hostile endpoint cooled down. The official ``openai`` and ``ollama`` clients make the
non-streamed calls; streams are read raw with httpx, to check their last bytes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import ollama
import openai
import psutil
import pytest
from fastapi import FastAPI

from classifier_service.app import create_app
from classifier_service.settings import Settings
from tests.doubles import fake_ollama, running
from tests.hostile import ANSWERS, QUOTE, STREAMS, hostile

STEADY = "The answer is 42."
APIS = ("openai", "ollama_chat", "ollama_generate")
ROUTE = {"x-tier-router-max-tier": "simple"}


@dataclass
class Gate:
    url: str
    app: FastAPI
    wire: str
    failover: bool
    openai: openai.OpenAI
    ollama: ollama.Client

    def cooling(self) -> bool:
        return "first" in self.app.state.gateway._cooldown

    def reset(self) -> None:
        self.app.state.gateway._cooldown.clear()


def portfolio(wire: str, hostile_url: str, steady_url: str, failover: bool) -> str:
    base = f"{hostile_url}/v1" if wire == "openai" else hostile_url
    second = (f'      - {{name: second, api: ollama, base_url: "{steady_url}", model: second,'
              f" context_length: 2048}}\n" if failover else "")
    return f"""
version: 1
tiers:
  - name: simple
    endpoints:
      - {{name: first, api: {wire}, base_url: "{base}", model: hostile, context_length: 2048}}
{second}  - name: medium
    endpoints:
      - {{name: mid, api: ollama, base_url: "{steady_url}", model: mid, context_length: 4096}}
  - name: complex
    endpoints:
      - {{name: big, api: ollama, base_url: "{steady_url}", model: big, context_length: 8192}}
policy: {{failover_cooldown_s: 60, backend_timeout_s: 2}}
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    steady = fake_ollama()
    with running(hostile()) as hostile_url, running(steady.app) as steady_url:
        yield hostile_url, steady_url


@pytest.fixture(scope="module", params=[("openai", False), ("openai", True),
                                        ("ollama", False), ("ollama", True)],
                ids=["openai-alone", "openai-failover", "ollama-alone", "ollama-failover"])
def gate(request: pytest.FixtureRequest, servers: tuple[str, str],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    wire, failover = request.param
    folder = tmp_path_factory.mktemp("hostile")
    path = folder / "p.yaml"
    path.write_text(portfolio(wire, *servers, failover), encoding="utf-8")
    app = create_app(Settings(portfolio=path, feedback_log=folder / "f.jsonl",
                              outcomes_dir=folder / "outcomes"))
    with running(app) as url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused",
                                            max_retries=0, timeout=30) as client:
        client_o = ollama.Client(host=url, headers=ROUTE, timeout=30)
        try:
            yield Gate(url, app, wire, failover, client, client_o)
        finally:
            client_o._client.close()


@pytest.fixture
def fresh(gate: Gate) -> Iterator[Gate]:
    gate.reset()
    yield gate
    gate.reset()


@dataclass
class Reply:
    status: int
    body: Any = None  # the JSON answer or error
    events: list[Any] | None = None  # SSE payloads or NDJSON lines, parsed
    content: str = ""


def ask(gate: Gate, api: str, prompt: str, stream: bool) -> Reply:
    if stream:
        return _stream(gate, api, prompt)
    if api == "openai":
        try:
            raw = gate.openai.chat.completions.with_raw_response.create(
                model="first", messages=[{"role": "user", "content": prompt}],
                extra_headers=ROUTE)
        except openai.APIStatusError as exc:
            return Reply(exc.status_code, exc.response.json())
        reply = raw.parse()
        return Reply(raw.http_response.status_code, raw.http_response.json(),
                     content=reply.choices[0].message.content or "")
    client_o = gate.ollama
    try:
        if api == "ollama_chat":
            chat = client_o.chat(model="first", messages=[{"role": "user", "content": prompt}],
                                 stream=False)
            return Reply(200, chat.model_dump(), content=chat.message.content or "")
        made = client_o.generate(model="first", prompt=prompt, stream=False)
        return Reply(200, made.model_dump(), content=made.response or "")
    except ollama.ResponseError as exc:
        return Reply(exc.status_code, {"error": exc.error})


def _stream(gate: Gate, api: str, prompt: str) -> Reply:
    if api == "openai":
        url, body = f"{gate.url}/v1/chat/completions", {
            "model": "first", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    elif api == "ollama_chat":
        url, body = f"{gate.url}/api/chat", {
            "model": "first", "messages": [{"role": "user", "content": prompt}]}
    else:
        url, body = f"{gate.url}/api/generate", {"model": "first", "prompt": prompt}
    with httpx.stream("POST", url, json=body, headers=ROUTE, timeout=30) as response:
        text = response.read().decode()
    if response.status_code != 200:
        return Reply(response.status_code, json.loads(text))
    if api == "openai":
        assert text.endswith("\n\n"), text
        payloads = [e.removeprefix("data: ") for e in text.strip().split("\n\n")]
        assert payloads[-1] == "[DONE]", f"an SSE stream must end with data: [DONE]: {text!r}"
        events = [json.loads(p) for p in payloads[:-1]]
        content = "".join((e["choices"][0]["delta"].get("content") or "")
                          for e in events if e.get("choices"))
    else:
        assert text.endswith("\n"), text
        events = [json.loads(line) for line in text.strip().split("\n")]  # each line JSON
        assert events[-1]["done"] is True, f"the last NDJSON line must be done: {text!r}"
        assert all(not e["done"] for e in events[:-1])
        key = "message" if api == "ollama_chat" else None
        content = "".join((e["message"]["content"] if key else e["response"]) for e in events)
    return Reply(200, None, events, content)


def _error(reply: Reply, api: str) -> str:
    """The error message, checked to be in the API's own shape."""
    assert reply.body is not None
    if api == "openai":
        error = reply.body["error"]
        assert error["type"] == "api_error" and isinstance(error["message"], str)
        return str(error["message"])
    assert isinstance(reply.body["error"], str)
    return str(reply.body["error"])


def _expect_failed_before_start(gate: Gate, api: str, reply: Reply, stream: bool) -> None:
    if gate.failover:
        assert reply.status == 200, reply
        assert reply.content == STEADY
        if stream:
            assert reply.events is not None
            assert not any("error" in e for e in reply.events)
    else:
        assert reply.status == 503, reply
        message = _error(reply, api)
        assert "no endpoint could answer" in message and "first" in message
    assert gate.cooling(), "the broken endpoint must cool down"


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("scenario", sorted(ANSWERS))
def test_broken_answers_fail_over_or_503(fresh: Gate, scenario: str, api: str,
                                         stream: bool) -> None:
    reply = ask(fresh, api, f"scenario: {scenario}", stream)
    _expect_failed_before_start(fresh, api, reply, stream)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("scenario", sorted(STREAMS))
def test_broken_streams_are_terminated_or_fail_over(fresh: Gate, scenario: str,
                                                    api: str) -> None:
    reply = ask(fresh, api, f"scenario: {scenario}", True)
    if not STREAMS[scenario][fresh.wire][2]:  # broken before any good chunk
        _expect_failed_before_start(fresh, api, reply, True)
        return
    assert reply.status == 200 and reply.events is not None, reply
    assert reply.content.startswith("Hello ")  # what came before the break
    last = reply.events[-1]
    message = last["error"]["message"] if api == "openai" else last["error"]
    assert message.startswith("first: "), last
    assert fresh.cooling(), "an endpoint whose stream broke off must cool down"


@pytest.mark.parametrize("api", APIS)
def test_a_json_answer_to_a_stream_request_is_passed_on_as_a_stream(fresh: Gate,
                                                                    api: str) -> None:
    reply = ask(fresh, api, "scenario: plain_json", True)
    assert reply.status == 200 and reply.content == "fine", reply
    assert reply.events is not None and not any("error" in e for e in reply.events)
    assert not fresh.cooling()


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
def test_backend_timeout_bounds_the_whole_call(fresh: Gate, stream: bool) -> None:
    """A backend sending one byte a second: cut off after backend_timeout_s (2 s), not
    after each byte; a stream that started ends with an error and its terminator."""
    start = time.monotonic()
    reply = ask(fresh, "openai", "scenario: trickle", stream)
    elapsed = time.monotonic() - start
    assert elapsed < 8, f"took {elapsed:.1f} s with backend_timeout_s 2"
    if stream:
        assert reply.status == 200 and reply.events is not None and reply.content == "Hello "
        assert "timed out" in reply.events[-1]["error"]["message"]
    else:
        _expect_failed_before_start(fresh, "openai", reply, False)
    assert fresh.cooling()


def test_an_answer_without_content_length_is_capped(fresh: Gate) -> None:
    """200 MB, chunked: reading stops at the 64 MiB cap; the process stays bounded."""
    before = psutil.Process().memory_info().rss
    reply = ask(fresh, "openai", "scenario: huge", False)
    grown = psutil.Process().memory_info().rss - before
    _expect_failed_before_start(fresh, "openai", reply, False)
    assert grown < 160 * 2**20, f"RSS grew {grown / 2**20:.0f} MiB"
    if not fresh.failover:
        assert "more than 67108864 bytes" in _error(reply, "openai")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(record.getMessage() + json.dumps(getattr(record, "fields", {})))


@pytest.mark.parametrize("scenario", ["http_500_quote", "error_200", "stream_error"])
def test_server_error_text_stays_out_of_the_logs(fresh: Gate, scenario: str) -> None:
    records = Records()
    logger = logging.getLogger("tier_router")
    logger.addHandler(records)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        reply = ask(fresh, "openai", f"scenario: {scenario}", scenario.startswith("stream"))
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    assert reply.status in (200, 503)
    if reply.status == 503:  # the client may see its own prompt quoted back
        assert QUOTE in _error(reply, "openai")
    assert records.text, "the failure is logged"
    assert not any(QUOTE in t for t in records.text), records.text
