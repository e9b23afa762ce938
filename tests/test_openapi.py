"""The OpenAPI document states the loaded portfolio, and the answers schemathesis checks.

The second half pins down each bug that fuzzing (tests/test_fuzz.py) found, one test each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.settings import Settings
from tests.conftest import portfolio_yaml
from tests.support.gateway import Stack

TIERS = ["simple", "medium", "complex", "", None]


def props(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"]["schemas"][name]["properties"]
    return found


def test_document_states_tiers_endpoints_and_limits(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    route = props(spec, "RouteRequest")
    assert route["min_tier"]["enum"] == TIERS and route["max_tier"]["enum"] == TIERS
    assert route["min_tier"]["type"] == "string" and route["min_tier"]["nullable"] is True
    assert route["prompt"]["maxLength"] == 64000 and route["prompt"]["minLength"] == 1
    assert props(spec, "QualityRequest")["tier"]["enum"] == TIERS
    assert props(spec, "FeedbackRequest")["label"]["enum"] == TIERS
    assert props(spec, "BatchRequest")["items"]["maxItems"] == 256
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    model = chat["requestBody"]["content"]["application/json"]["schema"]["properties"]["model"]
    assert {"auto", "complex", "qwen-32b", "coder-7b", None} <= set(model["enum"])
    headers = {p["name"]: p["schema"] for p in chat["parameters"]}
    assert headers["x-tier-router-max-tier"]["enum"] == ["simple", "medium", "complex", ""]
    action = spec["paths"]["/v1/admin/models/{endpoint}/{action}"]["post"]
    endpoint = next(p["schema"] for p in action["parameters"] if p["name"] == "endpoint")
    assert endpoint["enum"] == ["llama3-8b", "llama2-13b", "coder-7b"]  # Ollama ones only


def test_every_operation_documents_its_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ops = {op["operationId"]: op["responses"] for item in spec["paths"].values()
           for op in item.values()}
    for name in ("route", "route_batch", "check_quality", "feedback", "chat_completions",
                 "ollama_chat", "ollama_generate"):
        assert {"400", "401", "413", "422", "503"} <= set(ops[name]), name
        assert "schema" in ops[name]["413"]["content"]["application/json"], name
    for name in ("get_portfolio", "plan", "list_models", "ollama_tags", "ollama_show",
                 "ollama_ps", "models_status",
                 "models_action"):
        assert "503" in ops[name], name
    assert "text/event-stream" in ops["chat_completions"]["200"]["content"]
    assert "application/x-ndjson" in ops["ollama_chat"]["200"]["content"]


def test_document_follows_a_reload(tmp_path: Path) -> None:
    app = create_app(Settings(feedback_log=tmp_path / "f.jsonl"))
    assert "enum" not in app.openapi()["components"]["schemas"]["RouteRequest"]["properties"][
        "min_tier"]  # nothing loaded yet: FastAPI's own document
    small = tmp_path / "small.yaml"
    small.write_text(portfolio_yaml(max_prompt_chars=100, max_batch=4), encoding="utf-8")
    with TestClient(app) as c:
        assert props(c.get("/openapi.json").json(), "RouteRequest")["prompt"]["maxLength"] == 64000
        app.state.reloader.reload(portfolio=small)
        spec = c.get("/openapi.json").json()
    assert props(spec, "RouteRequest")["prompt"]["maxLength"] == 100
    assert props(spec, "BatchRequest")["items"]["maxItems"] == 4


# -- found by fuzzing ---------------------------------------------------------------------


def test_ollama_options_that_are_not_an_object_are_a_400(stack: Stack) -> None:
    # was a 500: `"temperature" in 5` raised TypeError
    answer = httpx.post(f"{stack.url}/api/chat", json={
        "model": "auto", "stream": False, "options": 5,
        "messages": [{"role": "user", "content": "hello"}]})
    assert answer.status_code == 400 and "options" in answer.json()["error"]


def test_ollama_load_call_checks_model_and_headers(stack: Stack) -> None:
    # were 200s: the load call (no message content) returned before anything was checked
    unknown = httpx.post(f"{stack.url}/api/chat", json={"model": "nope", "messages": []})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    bad_tier = httpx.post(f"{stack.url}/api/generate", json={"model": "auto"},
                          headers={"x-tier-router-min-tier": "huge"})
    assert bad_tier.status_code == 422 and "min_tier" in bad_tier.json()["error"]
    assert httpx.post(f"{stack.url}/api/chat", json={"model": "mid"}).json()["done_reason"] \
        == "load"


def test_gateway_fields_of_the_wrong_type_are_a_400(stack: Stack) -> None:
    messages = [{"role": "user", "content": "hello"}]
    for body in ({"model": 0, "messages": messages},  # was routed as "auto"
                 {"model": "auto", "messages": messages, "stream": "yes"}):  # was streamed
        answer = httpx.post(f"{stack.url}/v1/chat/completions", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["type"] == "invalid_request_error"
    answer = httpx.post(f"{stack.url}/api/generate", json={"prompt": 7})
    assert answer.status_code == 400 and "prompt" in answer.json()["error"]


def test_null_model_answers_with_a_model_name(stack: Stack) -> None:
    # was `"model": null` in the answer of an Ollama backend
    answer = httpx.post(f"{stack.url}/v1/chat/completions", json={
        "model": None, "messages": [{"role": "user", "content": "positive or negative: 'ok'"}]})
    assert answer.status_code == 200 and isinstance(answer.json()["model"], str)


def test_quality_and_feedback_hold_prompts_to_the_limit(tmp_path: Path) -> None:
    small = tmp_path / "small.yaml"
    small.write_text(portfolio_yaml(max_prompt_chars=100), encoding="utf-8")
    app = create_app(Settings(portfolio=small, feedback_log=tmp_path / "f.jsonl"))
    with TestClient(app) as c:
        quality = c.post("/v1/quality", json={"prompt": "x" * 101, "response": "ok"})
        assert quality.status_code == 413 and "max_prompt_chars" in quality.json()["detail"]
        feedback = c.post("/v1/feedback", json={"request_id": "r1", "prompt": "x" * 101,
                                                "final_tier": "simple"})
        assert feedback.status_code == 413
    assert not (tmp_path / "f.jsonl").exists()  # nothing recorded


def test_numbers_and_booleans_are_not_coerced(client: TestClient) -> None:
    # were accepted: lax validation read true as 1 and 1 as true
    quality = client.post("/v1/quality", json={"prompt": "2+2?", "response": "4",
                                               "max_tokens": True})
    assert quality.status_code == 422 and quality.json()["detail"][0]["loc"][-1] == "max_tokens"
    feedback = client.post("/v1/feedback", json={"request_id": "r1", "final_tier": "simple",
                                                 "escalated": 1})
    assert feedback.status_code == 422


def test_reload_path_with_a_nul_byte_is_a_422(tmp_path: Path) -> None:
    # a NUL byte made the file system call raise ValueError (a 500)
    app = create_app(Settings(feedback_log=tmp_path / "f.jsonl", admin_keys="adm"))
    with TestClient(app) as c:
        answer = c.post("/v1/admin/reload", json={"portfolio": "a\x00b"},
                        headers={"authorization": "Bearer adm"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == [
        "body", "portfolio"]
