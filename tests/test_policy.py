"""The routing policy on hand-made scores: precedence, default-to-cheaper, bounds, context."""

from __future__ import annotations

import pytest

from classifier_service.errors import InvalidRequestError, TooLargeError
from classifier_service.portfolio.model import Portfolio, parse_portfolio
from classifier_service.routing.classifier import Scores
from classifier_service.routing.policy import RouteOptions, check_options, classifier_choice, decide

PORTFOLIO_TEXT = """
version: 1
tiers:
  - name: small
    endpoints:
      - {name: s1, api: ollama, base_url: "http://127.0.0.1:1", model: a, context_length: 1000}
      - {name: s2, api: ollama, base_url: "http://127.0.0.1:2", model: a, context_length: 3000}
  - name: mid
    endpoints:
      - {name: m1, api: openai, base_url: "http://127.0.0.1:3/v1", model: b, context_length: 2000}
  - name: big
    endpoints:
      - {name: b1, api: openai, base_url: "http://127.0.0.1:4/v1", model: c, context_length: 8000}
specialists:
  - {name: coder, api: ollama, base_url: "http://127.0.0.1:5", model: d, tier: mid,
     context_length: 16000}
categories: {code: coder}
agents:
  support: {tier: small}
  reviewer: {endpoint: coder}
policy: {category_threshold: 0.6}
"""
PORTFOLIO = parse_portfolio(PORTFOLIO_TEXT)


def scores(small: float, mid: float, big: float, kind: str = "open_qa", p_kind: float = 0.9
           ) -> Scores:
    rest = (1 - p_kind) / 2
    return Scores({"small": small, "mid": mid, "big": big},
                  {kind: p_kind, "other": rest, "another": rest})


def run(s: Scores, chars: int = 40, threshold: float = 0.5, portfolio: Portfolio = PORTFOLIO,
        **opts: str) -> tuple[str, str, str, list[str], list[str]]:
    options = check_options(portfolio, opts.get("agent"), opts.get("min_tier"),
                            opts.get("max_tier"))
    d = decide(portfolio, s, options, prompt_chars=chars, threshold=threshold)
    return d.tier, d.endpoint.name, d.reason, list(d.adjustments), [e.name for e in d.fallback]


def test_confident_classifier_wins() -> None:
    assert run(scores(0.1, 0.2, 0.7)) == ("big", "b1", "classifier", [], [])
    assert run(scores(0.8, 0.1, 0.1)) == ("small", "s1", "classifier", [], ["s2", "m1", "b1"])


def test_unsure_takes_the_cheaper_of_the_two_likeliest() -> None:
    # big 0.45 and mid 0.40 are likeliest: the cheaper, mid, wins; fallback covers big
    tier, ep, reason, _, fallback = run(scores(0.15, 0.40, 0.45))
    assert (tier, ep, reason, fallback) == ("mid", "m1", "default_cheaper", ["b1"])
    # small is third: it is not a candidate even though it is cheapest
    assert run(scores(0.10, 0.45, 0.45))[0] == "mid"


def test_classifier_choice_detail() -> None:
    tier, reason, detail = classifier_choice({"small": 0.3, "mid": 0.3, "big": 0.4},
                                             ["small", "mid", "big"], 0.5)
    # small ties mid for second place and is cheaper, but it is two tiers below big
    assert (tier, reason) == ("mid", "default_cheaper")
    assert "below the threshold 0.50" in detail


def test_agent_beats_category_beats_classifier() -> None:
    code = scores(0.1, 0.1, 0.8, kind="code", p_kind=0.9)
    assert run(code, agent="support")[:3] == ("small", "s1", "agent")
    assert run(code, agent="reviewer")[:3] == ("mid", "coder", "agent")
    assert run(code)[:3] == ("mid", "coder", "category")
    # below the category threshold the rule does not fire
    assert run(scores(0.1, 0.1, 0.8, kind="code", p_kind=0.55))[:3] == ("big", "b1", "classifier")


def test_specialist_fallback_continues_at_its_tier() -> None:
    assert run(scores(0.1, 0.8, 0.1, kind="code"))[4] == ["m1", "b1"]


def test_unknown_agent_falls_through_with_a_note() -> None:
    options = check_options(PORTFOLIO, "ghost", None, None)
    d = decide(PORTFOLIO, scores(0.8, 0.1, 0.1), options, prompt_chars=10, threshold=0.5)
    assert d.reason == "classifier"
    assert d.reason_detail.startswith("unknown agent 'ghost', routed by the classifier")


def test_bounds_clamp_after_rules() -> None:
    assert run(scores(0.8, 0.1, 0.1), min_tier="mid")[:4] == ("mid", "m1", "classifier",
                                                              ["min_tier"])
    tier, ep, _, adj, fallback = run(scores(0.1, 0.1, 0.8), max_tier="small")
    assert (tier, ep, adj, fallback) == ("small", "s1", ["max_tier"], ["s2"])
    # a pinned agent is clamped too
    assert run(scores(0.1, 0.1, 0.8), agent="support", min_tier="big")[:4] == (
        "big", "b1", "agent", ["min_tier"])


def test_context_skips_to_the_next_endpoint_that_fits() -> None:
    # 6,000 chars ~ 1,500 tokens: s1 (1000) is skipped for s2 (3000), m1 (2000) still fits
    assert run(scores(0.8, 0.1, 0.1), chars=6000) == (
        "small", "s2", "classifier", ["context_length"], ["m1", "b1"])
    # 10,000 chars ~ 2,500 tokens: m1 is dropped from the fallback, it cannot hold the prompt
    assert run(scores(0.8, 0.1, 0.1), chars=10_000)[4] == ["b1"]
    # 14,000 chars ~ 3,500 tokens: only big fits
    assert run(scores(0.8, 0.1, 0.1), chars=14_000)[:2] == ("big", "b1")


def test_context_never_goes_above_max_tier() -> None:
    with pytest.raises(TooLargeError) as info:
        run(scores(0.8, 0.1, 0.1), chars=14_000, max_tier="mid")
    assert "up to max_tier 'mid' is 3000 tokens (s2)" in str(info.value)
    with pytest.raises(TooLargeError, match="8000 tokens"):
        run(scores(0.8, 0.1, 0.1), chars=40_000)


def test_check_options() -> None:
    assert check_options(PORTFOLIO, "", "", "") == RouteOptions()
    with pytest.raises(InvalidRequestError) as info:
        check_options(PORTFOLIO, None, "huge", None)
    assert info.value.loc == ("body", "min_tier")
    assert "tiers: small, mid, big" in info.value.msg
    with pytest.raises(InvalidRequestError, match="above max_tier"):
        check_options(PORTFOLIO, None, "big", "small")


def test_unsure_decision_prefers_a_loaded_model() -> None:
    unsure = scores(0.15, 0.40, 0.45)  # default-to-cheaper picks mid over big
    options = check_options(PORTFOLIO, None, None, None)

    def pick(resident: set[str] | None) -> tuple[str, str]:
        d = decide(PORTFOLIO, unsure, options, prompt_chars=10, threshold=0.5,
                   resident=resident)
        return d.endpoint.name, d.reason

    assert pick(None) == ("m1", "default_cheaper")
    assert pick({"b1"}) == ("b1", "residency")  # only the big model is warm
    assert pick({"m1", "b1"}) == ("m1", "default_cheaper")  # the cheaper one is warm too
    assert pick({"s1"}) == ("m1", "default_cheaper")  # small is not among the two likeliest
    # big likeliest, small second: a warm small model is still two tiers down, mid stays
    far = decide(PORTFOLIO, scores(0.30, 0.25, 0.45), options, prompt_chars=10, threshold=0.5,
                 resident={"s1"})
    assert (far.endpoint.name, far.reason) == ("m1", "default_cheaper")
    confident = decide(PORTFOLIO, scores(0.1, 0.1, 0.8), options, prompt_chars=10,
                       threshold=0.5, resident={"m1"})
    assert (confident.endpoint.name, confident.reason) == ("b1", "classifier")


CAPPED = parse_portfolio(PORTFOLIO_TEXT.replace("categories: {code: coder}",
                                                "categories: {code: {endpoint: coder, "
                                                "max_tier: mid}}"))


def test_a_capped_specialist_takes_the_kind_only_up_to_its_tier() -> None:
    # code the classifier puts at mid or below goes to the specialist
    assert run(scores(0.1, 0.8, 0.1, kind="code"), portfolio=CAPPED)[:3] == (
        "mid", "coder", "category")
    assert run(scores(0.8, 0.1, 0.1, kind="code"), portfolio=CAPPED)[:3] == (
        "mid", "coder", "category")
    # complex code follows the ladder, and the detail says why
    options = check_options(CAPPED, None, None, None)
    d = decide(CAPPED, scores(0.05, 0.1, 0.85, kind="code"), options, prompt_chars=40,
               threshold=0.5)
    assert (d.tier, d.endpoint.name, d.reason) == ("big", "b1", "classifier")
    assert "goes to 'coder' only up to 'mid', the specialist's cap is exceeded" in (
        d.reason_detail)
    # the plain form has no cap: the same scores go to the specialist
    assert run(scores(0.05, 0.1, 0.85, kind="code"))[:3] == ("mid", "coder", "category")
    # the cap compares the tier the classifier would choose, default-to-cheaper included
    assert run(scores(0.1, 0.42, 0.48, kind="code"), portfolio=CAPPED)[:3] == (
        "mid", "coder", "category")


def test_default_to_cheaper_drops_at_most_one_tier() -> None:
    # big likeliest, small second: the cheaper of the two would be two tiers down
    tier, reason, detail = classifier_choice({"small": 0.29, "mid": 0.25, "big": 0.46},
                                             ["small", "mid", "big"], 0.5)
    assert (tier, reason) == ("mid", "default_cheaper")
    assert "at most one tier below 'big': 'mid'" in detail
    assert run(scores(0.29, 0.25, 0.46))[:3] == ("mid", "m1", "default_cheaper")
    # a second tier above the likeliest is not bounded
    assert classifier_choice({"small": 0.46, "mid": 0.25, "big": 0.29},
                             ["small", "mid", "big"], 0.5)[0] == "small"
