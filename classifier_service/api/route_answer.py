"""One routing answer (``POST /v1/route``'s body) from a request, without the web framework.

``tier-router route`` builds its answer here too: importing FastAPI and the gateway (aiohttp)
costs the command about a second it has no use for.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from classifier_service.api.schemas import EndpointRef, RouteRequest, RouteResponse
from classifier_service.runtime import Runtime


def route_one(runtime: Runtime, body: RouteRequest,
              resident: Collection[str] | None = None) -> RouteResponse:
    routed = runtime.route(body.prompt, body.agent, body.min_tier, body.max_tier, resident)
    decision = routed.decision
    scores = routed.scores
    top = scores.top_tier
    return RouteResponse(
        request_id=uuid.uuid4().hex,
        tier=decision.tier,
        confidence=scores.tiers[top],
        probabilities=runtime.tier_probabilities(scores),
        category=scores.top_category,
        endpoint=EndpointRef.of(decision.endpoint),
        fallback=[EndpointRef.of(ep) for ep in decision.fallback],
        reason=decision.reason,
        adjustments=decision.adjustments,
        reason_detail=decision.reason_detail,
        model_version=runtime.model_version,
    )
