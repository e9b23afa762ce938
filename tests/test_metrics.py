"""``GET /metrics``: what the service counts, in one process and summed over workers."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from classifier_service.app import create_app
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.doubles import Script
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.gateway import Stack, ask
from tests.support.metrics import samples, value
from tests.support.processes import serve, stop


def test_metrics_is_prometheus_text(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"tier_router_decisions", "tier_router_routing_seconds",
            "tier_router_gateway_seconds", "tier_router_model_reloads",
            "tier_router_escalations", "tier_router_fallbacks",
            "tier_router_failovers", "tier_router_quality_checks"} <= names


def test_decisions_per_tier_and_reason_and_routing_latency(client: TestClient) -> None:
    for _ in range(3):
        assert client.post("/v1/route", json={"prompt": "positive or negative: 'ok'"}
                           ).status_code == 200
    client.post("/v1/route", json={"prompt": "hello", "agent": "support-bot"})
    batch = client.post("/v1/route/batch", json={"items": [{"prompt": "Translate 'cat'"},
                                                           {"prompt": ""}]})
    assert batch.status_code == 200
    text = client.get("/metrics").text
    assert value(text, "tier_router_decisions_total", tier="simple", reason="classifier") >= 3
    total = sum(v for (name, _), v in samples(text).items()
                if name == "tier_router_decisions_total")
    assert total == 5  # 3 + 1 agent-pinned + 1 valid batch item; the invalid one not counted
    assert value(text, "tier_router_routing_seconds_count") == 5


def test_quality_checks_and_escalations_per_signal(client: TestClient) -> None:
    prompt = "Write a detailed essay on the causes of the French Revolution."
    client.post("/v1/quality", json={"prompt": prompt, "response": "I'm not sure."})
    client.post("/v1/quality", json={"prompt": "Label: 'great'", "response": "Positive"})
    text = client.get("/metrics").text
    assert value(text, "tier_router_quality_checks_total", outcome="escalate") == 1
    assert value(text, "tier_router_quality_checks_total", outcome="pass") == 1
    assert value(text, "tier_router_escalations_total", signal="uncertain") == 1
    assert value(text, "tier_router_escalations_total", signal="too_short") == 1


def test_reloads_counted_by_outcome(runtime: Runtime, tmp_path: Path) -> None:
    app = create_app(Settings(feedback_log=tmp_path / "f.jsonl", admin_keys=ADMIN_KEY,
                              models_dir=tmp_path), runtime=runtime)
    with TestClient(app, client=("127.0.0.1", 50000), headers=ADMIN) as client:
        _reload_twice(client, tmp_path)


def _reload_twice(client: TestClient, tmp_path: Path) -> None:
    assert client.post("/v1/admin/reload", json={}).status_code == 200
    broken = tmp_path / "broken"
    broken.mkdir()
    assert client.post("/v1/admin/reload", json={"model_dir": str(broken)}).status_code == 422
    text = client.get("/metrics").text
    assert value(text, "tier_router_model_reloads_total", outcome="ok") == 1
    assert value(text, "tier_router_model_reloads_total", outcome="refused") == 1


def test_gateway_fallbacks_failovers_and_latency(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(status=500)
    stack.ollama.scripts["small-b"] = Script(content="I'm not sure, maybe positive?")
    stack.ollama.scripts["mid"] = Script(content="Positive")
    ask(stack, "Is this review positive or negative? 'Great phone.'")
    httpx.post(f"{stack.url}/api/chat", json={"model": "mid", "stream": False,
                                              "messages": [{"role": "user", "content": "x"}]})
    text = httpx.get(f"{stack.url}/metrics").text
    assert value(text, "tier_router_failovers_total", endpoint="small-a") == 1
    assert value(text, "tier_router_fallbacks_total", endpoint="small-b") == 1
    assert value(text, "tier_router_escalations_total", signal="uncertain") >= 1
    assert value(text, "tier_router_gateway_seconds_count", gateway="openai") == 1
    assert value(text, "tier_router_gateway_seconds_count", gateway="ollama") == 1
    assert value(text, "tier_router_decisions_total", tier="medium", reason="model") == 1


def test_workers_metrics_are_summed(tmp_path: Path) -> None:
    proc, url = serve("--workers", "2", "--feedback-log", str(tmp_path / "f.jsonl"),
                      log=tmp_path / "serve.log")
    try:
        for _ in range(20):  # fresh connections spread over the workers
            r = httpx.post(f"{url}/v1/route", json={"prompt": "Translate 'dog' to German"},
                           timeout=10)
            assert r.status_code == 200
        for _ in range(6):
            text = httpx.get(f"{url}/metrics", timeout=10).text
            total = sum(v for (name, _), v in samples(text).items()
                        if name == "tier_router_decisions_total")
            assert total == 20  # whichever worker answers sees every worker's counts
    finally:
        stop(proc)
