"""Load sharing inside a tier: first, round robin, least busy."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.portfolio.model import parse_portfolio
from classifier_service.routing.balancing import Balancer
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings


def portfolio_with(balance: str) -> str:
    return f"""
version: 1
tiers:
  - name: simple
    balance: {balance}
    endpoints:
      - {{name: s1, api: ollama, base_url: "http://127.0.0.1:1", model: a}}
      - {{name: s2, api: ollama, base_url: "http://127.0.0.1:2", model: a}}
      - {{name: s3, api: ollama, base_url: "http://127.0.0.1:3", model: a}}
  - name: medium
    endpoints: [{{name: m1, api: ollama, base_url: "http://127.0.0.1:4", model: b}}]
  - name: complex
    endpoints: [{{name: c1, api: openai, base_url: "http://127.0.0.1:5/v1", model: c}}]
"""


def names(balancer: Balancer) -> list[str]:
    return [ep.name for ep in balancer.order("simple")]


def test_first_keeps_the_listed_order() -> None:
    balancer = Balancer(parse_portfolio(portfolio_with("first")))
    assert names(balancer) == names(balancer) == ["s1", "s2", "s3"]


def test_round_robin_rotates() -> None:
    balancer = Balancer(parse_portfolio(portfolio_with("round_robin")))
    assert [names(balancer)[0] for _ in range(6)] == ["s1", "s2", "s3", "s1", "s2", "s3"]
    assert names(balancer) == ["s1", "s2", "s3"]  # the rest of the tier follows in turn
    assert [ep.name for ep in balancer.order("medium")] == ["m1"]


def test_least_busy_prefers_the_idle_endpoint() -> None:
    balancer = Balancer(parse_portfolio(portfolio_with("least_busy")))
    with balancer.busy("s1"), balancer.busy("s1"), balancer.busy("s2"):
        assert names(balancer) == ["s3", "s2", "s1"]
        assert balancer.in_flight("s1") == 2
    assert balancer.in_flight("s1") == 0
    assert names(balancer) == ["s1", "s2", "s3"]


def test_route_spreads_a_tier_and_keeps_the_fallback_chain(runtime: Runtime) -> None:
    shared = runtime.with_portfolio(parse_portfolio(portfolio_with("round_robin")),
                                    runtime.portfolio_path)
    with TestClient(create_app(Settings(), runtime=shared)) as client:
        picks = []
        for _ in range(3):
            data = client.post("/v1/route", json={
                "prompt": "positive or negative: 'great'", "max_tier": "simple"}).json()
            picks.append(data["endpoint"]["name"])
            assert sorted([data["endpoint"]["name"]] + [e["name"] for e in data["fallback"]]) \
                == ["s1", "s2", "s3"]
        assert picks == ["s1", "s2", "s3"]


def test_unknown_balance_is_a_portfolio_error() -> None:
    from classifier_service.errors import PortfolioError

    with pytest.raises(PortfolioError, match=r"tiers\.0\.balance"):
        parse_portfolio(portfolio_with("random"))
