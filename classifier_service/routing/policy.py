"""The routing policy: from scores and rules to one endpoint and its fallback chain.

Precedence, first match wins:

1. ``agent``: the request names an agent that the portfolio pins to a tier or an endpoint;
2. ``category``: the predicted task kind has a rule (``categories: {code: coder-7b}``) and its
   probability reaches ``policy.category_threshold``; a rule with ``max_tier``
   (``{endpoint: coder-7b, max_tier: medium}``) applies only while the tier the classifier
   would choose is at most that tier, above it the request follows the ladder;
3. ``classifier``: the likeliest tier; when its probability is below the confidence threshold,
   ``default_cheaper``: the cheaper of the two likeliest tiers, but never more than one tier
   below the likeliest, with fallback covering the rest. With an outcome model loaded, a
   ``choose`` function takes this step instead (``outcome``: the cheapest tier within
   ``min_tier`` / ``max_tier`` likely enough to answer well; ``classifier`` where the outcome
   model's records cover a tier too thinly).

Then, in order, the adjustments: ``min_tier`` / ``max_tier`` clamp the tier, and
``context_length`` moves past endpoints whose context cannot hold the prompt (estimated as
characters / ``policy.chars_per_token``), never above ``max_tier``. When nothing fits, a
:class:`TooLargeError` names the largest context available.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from classifier_service.errors import InvalidRequestError, TooLargeError
from classifier_service.portfolio.model import Endpoint, Portfolio
from classifier_service.routing.classifier import Scores

Reason = Literal["agent", "category", "classifier", "default_cheaper", "residency", "outcome"]
Adjustment = Literal["min_tier", "max_tier", "context_length"]


@dataclass(frozen=True)
class RouteOptions:
    """The caller's routing options, already checked against the portfolio."""

    agent: str | None = None
    min_tier: str | None = None
    max_tier: str | None = None


@dataclass
class Decision:
    tier: str
    endpoint: Endpoint
    fallback: list[Endpoint]
    reason: Reason
    reason_detail: str
    adjustments: list[Adjustment] = field(default_factory=list)


def check_tier(portfolio: Portfolio, value: str | None, field: str) -> str | None:
    """``value`` if it names a tier of the portfolio (or is unset); else a 422 on ``field``."""
    if value is not None and not portfolio.has_tier(value):
        raise InvalidRequestError(
            ("body", field),
            f"unknown tier {value!r}; tiers: {', '.join(portfolio.tier_names)}",
            value,
        )
    return value


def check_options(
    portfolio: Portfolio, agent: str | None, min_tier: str | None, max_tier: str | None
) -> RouteOptions:
    """Validate tier names and bounds; empty strings mean "not set"."""
    lo = check_tier(portfolio, min_tier or None, "min_tier")
    hi = check_tier(portfolio, max_tier or None, "max_tier")
    if lo is not None and hi is not None and portfolio.tier_index(lo) > portfolio.tier_index(hi):
        raise InvalidRequestError(
            ("body", "min_tier"),
            f"min_tier {lo!r} is above max_tier {hi!r} (tiers, cheapest first: "
            f"{', '.join(portfolio.tier_names)})",
            lo,
        )
    return RouteOptions(agent=agent or None, min_tier=lo, max_tier=hi)


def classifier_choice(
    tier_probs: dict[str, float], tier_order: Sequence[str], threshold: float
) -> tuple[str, Reason, str]:
    """The classifier's tier under the default-to-cheaper rule, with the reason and why."""
    ranked = sorted(tier_order, key=lambda t: (-tier_probs.get(t, 0.0), tier_order.index(t)))
    top, second = ranked[0], ranked[1] if len(ranked) > 1 else ranked[0]
    p_top = tier_probs.get(top, 0.0)
    if p_top >= threshold:
        return top, "classifier", f"classifier: {top!r} with probability {p_top:.2f}"
    detail = (f"confidence {p_top:.2f} is below the threshold {threshold:.2f}: took the "
              f"cheaper of {top!r} ({p_top:.2f}) and {second!r} "
              f"({tier_probs.get(second, 0.0):.2f})")
    top_index = tier_order.index(top)
    cheaper = min(top, second, key=tier_order.index)
    if tier_order.index(cheaper) < top_index - 1:
        cheaper = tier_order[top_index - 1]
        detail += f", at most one tier below {top!r}: {cheaper!r}"
    return cheaper, "default_cheaper", detail


def estimate_tokens(prompt_chars: int, chars_per_token: float) -> int:
    return math.ceil(prompt_chars / chars_per_token)


Chooser = Callable[[RouteOptions], tuple[str, Reason, str]]
"""Step 3 of an outcome model: the caller's options -> (tier, reason, detail)."""

Order = Callable[[str], Sequence[Endpoint]]
"""A tier's endpoints, preferred first (see :mod:`classifier_service.routing.balancing`)."""


def listed_order(portfolio: Portfolio) -> Order:
    return lambda tier: portfolio.tiers[portfolio.tier_index(tier)].endpoints


def decide(
    portfolio: Portfolio,
    scores: Scores,
    options: RouteOptions,
    *,
    prompt_chars: int,
    threshold: float,
    order: Order | None = None,
    resident: Collection[str] | None = None,
    choose: Chooser | None = None,
) -> Decision:
    """Pick the endpoint for one request; see the module docstring for the rules.

    ``resident``: endpoint names whose model is loaded now. When given, an unsure decision
    (default-to-cheaper) takes the other of its two likeliest tiers if only that one's
    model is loaded, to avoid a cold load (reason ``residency``).
    """
    order = order or listed_order(portfolio)
    endpoint, reason, detail = _rule_choice(portfolio, scores, options, threshold, order,
                                            choose)
    if reason == "default_cheaper" and resident is not None:
        endpoint, reason, detail = _prefer_resident(
            portfolio, scores, endpoint, reason, detail, order, resident)
    adjustments: list[Adjustment] = []

    tier = portfolio.tier_of(endpoint)
    idx = portfolio.tier_index(tier)
    if options.min_tier is not None and idx < portfolio.tier_index(options.min_tier):
        endpoint = order(options.min_tier)[0]
        adjustments.append("min_tier")
    elif options.max_tier is not None and idx > portfolio.tier_index(options.max_tier):
        endpoint = order(options.max_tier)[0]
        adjustments.append("max_tier")

    chain = escalation_chain(portfolio, endpoint, options.max_tier, order)
    tokens = estimate_tokens(prompt_chars, portfolio.policy.chars_per_token)
    fitting = [ep for ep in chain if ep.context_length >= tokens]
    if not fitting:
        largest = max(chain, key=lambda ep: ep.context_length)
        bound = f" up to max_tier {options.max_tier!r}" if options.max_tier else ""
        raise TooLargeError(
            f"the prompt needs about {tokens} tokens ({prompt_chars} characters / "
            f"{portfolio.policy.chars_per_token:g}); the largest context available{bound} is "
            f"{largest.context_length} tokens ({largest.name})"
        )
    if fitting[0] is not endpoint:
        adjustments.append("context_length")
        detail += (
            f"; {endpoint.name} holds {endpoint.context_length} tokens, the prompt needs about "
            f"{tokens}: moved to {fitting[0].name}"
        )
    chosen = fitting[0]
    return Decision(
        tier=portfolio.tier_of(chosen),
        endpoint=chosen,
        fallback=fitting[1:],
        reason=reason,
        reason_detail=detail,
        adjustments=adjustments,
    )


def _rule_choice(
    portfolio: Portfolio, scores: Scores, options: RouteOptions, threshold: float, order: Order,
    choose: Chooser | None = None,
) -> tuple[Endpoint, Reason, str]:
    def ladder() -> tuple[str, Reason, str]:
        if choose is not None:
            return choose(options)
        return classifier_choice(scores.tiers, portfolio.tier_names, threshold)

    prefix = ""
    if options.agent is not None:
        rule = portfolio.agents.get(options.agent)
        if rule is None:
            prefix = f"unknown agent {options.agent!r}, routed by the classifier; "
        elif rule.endpoint is not None:
            return (portfolio.endpoint(rule.endpoint), "agent",
                    f"agent {options.agent!r} is pinned to endpoint {rule.endpoint!r}")
        else:
            assert rule.tier is not None
            return (order(rule.tier)[0], "agent",
                    f"agent {options.agent!r} is pinned to tier {rule.tier!r}")

    kind = scores.top_category
    if kind is not None and kind in portfolio.categories and scores.categories is not None:
        p_kind = scores.categories[kind]
        target, cap = portfolio.categories[kind].endpoint, portfolio.categories[kind].max_tier
        if p_kind >= portfolio.policy.category_threshold:
            tier, reason, detail = ladder()
            if cap is None or portfolio.tier_index(tier) <= portfolio.tier_index(cap):
                return (portfolio.endpoint(target), "category",
                        prefix + f"task kind {kind!r} ({p_kind:.2f}) goes to {target!r}")
            return order(tier)[0], reason, prefix + (
                f"task kind {kind!r} ({p_kind:.2f}) goes to {target!r} only up to {cap!r}, "
                f"the specialist's cap is exceeded; {detail}")

    tier, reason, detail = ladder()
    return order(tier)[0], reason, prefix + detail


def _prefer_resident(
    portfolio: Portfolio, scores: Scores, endpoint: Endpoint, reason: Reason, detail: str,
    order: Order, resident: Collection[str],
) -> tuple[Endpoint, Reason, str]:
    if endpoint.name in resident:
        return endpoint, reason, detail
    ranked = sorted(portfolio.tier_names, key=lambda t: -scores.tiers.get(t, 0.0))[:2]
    lowest = portfolio.tier_index(ranked[0]) - 1  # never more than one tier below the top
    for tier in (t for t in ranked if portfolio.tier_index(t) >= lowest):
        candidate = order(tier)[0]
        if candidate.name in resident and candidate.name != endpoint.name:
            return candidate, "residency", (
                f"{detail}; {endpoint.name} is not loaded, {candidate.name} ({tier!r}) is: "
                "took it to avoid a cold load")
    return endpoint, reason, detail


def escalation_chain(
    portfolio: Portfolio, endpoint: Endpoint, max_tier: str | None, order: Order | None = None
) -> list[Endpoint]:
    """``endpoint``, the rest of its tier, then each higher tier up to ``max_tier``."""
    order = order or listed_order(portfolio)
    start = portfolio.tier_index(portfolio.tier_of(endpoint))
    stop = portfolio.tier_index(max_tier) if max_tier is not None else len(portfolio.tiers) - 1
    chain = [endpoint]
    for tier in portfolio.tier_names[start : stop + 1]:
        chain.extend(ep for ep in order(tier) if ep.name != endpoint.name)
    return chain
