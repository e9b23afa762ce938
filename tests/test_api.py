"""The HTTP contract of /v1/route, /v1/route/batch, /v1/portfolio, /healthz and /readyz."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.portfolio.model import parse_portfolio
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.conftest import portfolio_yaml

ENDPOINT_KEYS = {"name", "api", "base_url", "model"}
DECISION_KEYS = {
    "request_id", "tier", "confidence", "probabilities", "category", "endpoint", "fallback",
    "reason", "adjustments", "reason_detail", "model_version",
}


def route(client: TestClient, **body: object) -> dict[str, Any]:
    response = client.post("/v1/route", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_route_answers_the_whole_contract(client: TestClient, runtime: Runtime) -> None:
    data = route(client, prompt="Is this review positive or negative? 'The soup was cold.'")
    assert set(data) == DECISION_KEYS
    probs = data["probabilities"]
    assert isinstance(probs, dict)
    assert list(probs) == ["simple", "medium", "complex"]
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-9)
    assert data["confidence"] == max(probs.values())
    assert data["tier"] == "simple"
    assert data["reason"] in ("classifier", "default_cheaper")
    endpoint = data["endpoint"]
    assert isinstance(endpoint, dict) and set(endpoint) == ENDPOINT_KEYS
    assert endpoint["name"] == "llama3-8b"
    assert [ep["name"] for ep in data["fallback"]] == ["llama2-13b", "qwen-32b"]
    assert data["model_version"] == runtime.model_version
    assert isinstance(data["request_id"], str) and len(data["request_id"]) == 32
    assert runtime.classifier.category_labels is not None
    assert data["category"] in runtime.classifier.category_labels


def test_request_ids_are_unique(client: TestClient) -> None:
    ids = {route(client, prompt="what is the capital of peru")["request_id"] for _ in range(5)}
    assert len(ids) == 5


def test_complex_prompt_goes_to_the_large_model(client: TestClient) -> None:
    data = route(client, prompt="Write a sonnet about a lighthouse keeper who falls in love "
                               "with the fog, in the voice of the lighthouse itself.")
    assert data["tier"] == "complex"
    assert data["endpoint"]["name"] == "qwen-32b"
    assert data["fallback"] == []


def test_code_goes_to_the_code_specialist(client: TestClient) -> None:
    data = route(client, prompt="write a python function that removes duplicates from a list "
                               "while keeping the order")
    assert data["category"] == "code"
    assert data["reason"] == "category"
    assert data["endpoint"]["name"] == "coder-7b"
    assert data["tier"] == "medium"  # the specialist's tier
    # escalation continues at the specialist's tier: all of medium, then complex
    assert [ep["name"] for ep in data["fallback"]] == ["llama2-13b", "qwen-32b"]


def test_agent_rules(client: TestClient) -> None:
    support = route(client, prompt="Write an epic poem about the fall of Rome",
                    agent="customer-support")
    assert support["reason"] == "agent"
    assert support["tier"] == "simple"
    assert "customer-support" in str(support["reason_detail"])
    review = route(client, prompt="hello", agent="code-review")
    assert review["endpoint"]["name"] == "coder-7b"
    assert review["reason"] == "agent"


def test_unknown_agent_is_routed_by_the_classifier(client: TestClient) -> None:
    data = route(client, prompt="positive or negative: 'love it'", agent="nobody")
    assert data["reason"] in ("classifier", "default_cheaper", "category")
    assert "unknown agent 'nobody'" in str(data["reason_detail"])


def test_bounds_clamp(client: TestClient) -> None:
    low = route(client, prompt="positive or negative: 'love it'", min_tier="complex")
    assert low["tier"] == "complex"
    assert low["adjustments"] == ["min_tier"]
    high = route(client, prompt="Write a long fantasy story about a dragon", max_tier="medium")
    assert high["tier"] == "medium"
    assert high["adjustments"] == ["max_tier"]
    assert all(ep["name"] != "qwen-32b" for ep in high["fallback"])


def test_empty_strings_mean_not_set(client: TestClient) -> None:
    data = route(client, prompt="positive or negative: 'love it'", agent="", min_tier="",
                 max_tier="")
    assert data["adjustments"] == []


def test_long_prompt_skips_small_contexts(client: TestClient) -> None:
    # ~3,000 tokens by the chars/4 estimate: more than llama3-8b's 2048, less than 4096.
    review = "The delivery was late and the box was dented, but the lamp itself works. " * 160
    data = route(client, prompt=f"Is this review positive or negative?\n{review}")
    assert data["endpoint"]["name"] == "llama2-13b"
    assert data["adjustments"] == ["context_length"]
    assert data["tier"] == "medium"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"prompt": ""}, 422, "empty"),
        ({"prompt": "   \n\t"}, 422, "empty"),
        ({}, 422, "prompt"),
        ({"prompt": 42}, 422, "prompt"),
        ({"prompt": "hi", "min_tier": "huge"}, 422, "unknown tier 'huge'"),
        ({"prompt": "hi", "max_tier": "tiny"}, 422, "unknown tier 'tiny'"),
        ({"prompt": "hi", "min_tier": "complex", "max_tier": "simple"}, 422, "above max_tier"),
        ({"prompt": "x" * 64_001}, 413, "max_prompt_chars"),
    ],
)
def test_bad_input_gets_a_clear_error(
    client: TestClient, body: dict[str, object], status: int, needle: str
) -> None:
    response = client.post("/v1/route", json=body)
    assert response.status_code == status
    assert needle in response.text
    assert "detail" in response.json()


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/route", content=b'{"prompt": "hi"',
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "json" in response.text.lower()


def test_nothing_fits_is_413_naming_the_largest_context(client: TestClient) -> None:
    prompt = "Summarise this.\n" + "word " * 8000  # ~10,000 tokens > 8192
    response = client.post("/v1/route", json={"prompt": prompt})
    assert response.status_code == 413
    assert "8192 tokens (qwen-32b)" in response.json()["detail"]
    bounded = client.post("/v1/route", json={"prompt": "hi " * 3000, "max_tier": "simple"})
    assert bounded.status_code == 413
    assert "up to max_tier 'simple'" in bounded.json()["detail"]
    assert "2048 tokens (llama3-8b)" in bounded.json()["detail"]


def test_batch_routes_in_order_with_per_item_errors(client: TestClient) -> None:
    items = [
        {"prompt": "positive or negative: 'love it'"},
        {"prompt": ""},
        "not an object",
        {"prompt": "hi", "min_tier": "nope"},
        {"prompt": "Write a poem about the sea", "agent": "customer-support"},
    ]
    response = client.post("/v1/route/batch", json={"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 5
    assert results[0]["tier"] == "simple"
    assert results[1]["error"]["status"] == 422
    assert results[1]["error"]["detail"][0]["loc"] == ["body", "items", 1, "prompt"]
    assert results[2]["error"]["status"] == 422
    assert results[3]["error"]["status"] == 422
    assert "unknown tier 'nope'" in results[3]["error"]["detail"][0]["msg"]
    assert results[4]["reason"] == "agent"


def test_batch_over_the_limit_is_413(runtime: Runtime, tmp_path: Path) -> None:
    portfolio = parse_portfolio(portfolio_yaml(max_batch=3))
    small = runtime.with_portfolio(portfolio, tmp_path / "p.yaml")
    with TestClient(create_app(Settings(), runtime=small)) as c:
        ok = c.post("/v1/route/batch", json={"items": [{"prompt": "a"}] * 3})
        assert ok.status_code == 200
        over = c.post("/v1/route/batch", json={"items": [{"prompt": "a"}] * 4})
        assert over.status_code == 413
        assert "policy.max_batch" in over.json()["detail"]
        missing = c.post("/v1/route/batch", json={"things": []})
        assert missing.status_code == 422


def test_portfolio_threshold_overrides_the_models(runtime: Runtime, tmp_path: Path) -> None:
    portfolio = parse_portfolio(portfolio_yaml(confidence_threshold=1.0))
    strict = runtime.with_portfolio(portfolio, tmp_path / "p.yaml")
    assert strict.confidence_threshold == 1.0
    with TestClient(create_app(Settings(), runtime=strict)) as c:
        data = c.post("/v1/route", json={"prompt": "Write a story about a brave mouse",
                                         "agent": "x"}).json()
        assert data["reason"] in ("default_cheaper", "category")
        assert "below the threshold 1.00" in data["reason_detail"]
        info = c.get("/v1/portfolio").json()
        assert info["policy"]["effective_confidence_threshold"] == 1.0


def test_portfolio_endpoint(client: TestClient, runtime: Runtime) -> None:
    data = client.get("/v1/portfolio").json()
    assert [t["name"] for t in data["tiers"]] == ["simple", "medium", "complex"]
    assert data["categories"] == {"code": {"endpoint": "coder-7b", "max_tier": "medium"}}
    assert data["policy"]["effective_confidence_threshold"] == runtime.confidence_threshold
    assert data["model"]["version"] == runtime.model_version


def test_health_and_readiness(client: TestClient, runtime: Runtime) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["model_version"] == runtime.model_version


def test_lifespan_loads_the_bundled_files() -> None:
    app = create_app(Settings())
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
        assert app.state.runtime.artifact.path == bundled_model_dir()


def test_openapi_is_importable_by_dify(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["servers"] and spec["servers"][0]["url"].startswith("http://127.0.0.1:8700")
    ops = {(path, method): op for path, item in spec["paths"].items()
           for method, op in item.items()}
    assert ops[("/v1/route", "post")]["operationId"] == "route"
    assert ops[("/v1/route/batch", "post")]["operationId"] == "route_batch"
    for op in ops.values():
        assert op.get("description"), op["operationId"]
    schema = spec["components"]["schemas"]["RouteRequest"]
    for name, prop in schema["properties"].items():
        assert prop.get("type") == "string", (name, prop)  # flat scalars, no anyOf/null
    assert schema["required"] == ["prompt"]
