"""``/v1/route`` and ``/v1/route/batch``: routing decisions."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from classifier_service.api.deps import RuntimeDep, resident_now, state
from classifier_service.api.responses import (
    BAD_BODY,
    NOT_LOADED,
    Responses,
    invalid,
    merge,
    too_large,
)
from classifier_service.api.route_answer import route_one
from classifier_service.api.schemas import (
    BatchItemError,
    BatchRequest,
    BatchResponse,
    ItemError,
    RouteRequest,
    RouteResponse,
)
from classifier_service.errors import RequestError, TooLargeError
from classifier_service.runtime import Runtime

log = logging.getLogger("tier_router.routing")

router = APIRouter(prefix="/v1", tags=["routing"])

ERRORS: Responses = merge(
    BAD_BODY,
    too_large("The prompt is longer than policy.max_prompt_chars or than any allowed "
              "context."),
    invalid("The body is invalid: empty prompt, unknown tier, min above max."),
    NOT_LOADED,
)
BATCH_ERRORS: Responses = merge(
    BAD_BODY, too_large("More items than policy.max_batch."),
    invalid("The body is not an object with an `items` list."), NOT_LOADED,
)


@router.post(
    "/route",
    operation_id="route",
    summary="Route one request",
    description=(
        "Classify a prompt's complexity and return its tier, the classifier's confidence, the "
        "target endpoint and the fallback chain. Precedence: agent rule, category rule, then "
        "the classifier with the default-to-cheaper policy; min_tier/max_tier clamp last; "
        "endpoints whose context cannot hold the prompt are skipped."
    ),
    responses=ERRORS,
)
async def route(body: RouteRequest, runtime: RuntimeDep, request: Request) -> RouteResponse:
    # ``async def``: one decision is short CPU work (about 0.05 ms); a thread-pool hop costs
    # more than that, and threads would not run it in parallel anyway (one interpreter lock).
    # The batch endpoint stays a plain ``def`` (thread pool): a large batch must not stall
    # the event loop.
    return _observed(request, runtime, body)


def _observed(request: Request, runtime: Runtime, body: RouteRequest) -> RouteResponse:
    """``route_one``, counted in the metrics and logged (the prompt only if allowed)."""
    start = time.perf_counter()
    answer = route_one(runtime, body, resident_now(request))
    elapsed = time.perf_counter() - start
    state(request).metrics.decided(answer.tier, answer.reason, elapsed)
    if not log.isEnabledFor(logging.INFO):  # the fields cost more than the check
        return answer
    fields: dict[str, Any] = {"event": "route", "request_id": answer.request_id,
                              "tier": answer.tier, "reason": answer.reason,
                              "confidence": round(answer.confidence, 4),
                              "endpoint": answer.endpoint.name,
                              "ms": round(elapsed * 1000, 3)}
    if state(request).settings.log_prompts:
        fields["prompt"] = body.prompt
    log.info("routed to %s (%s)", answer.tier, answer.reason, extra={"fields": fields})
    return answer


@router.post(
    "/route/batch",
    operation_id="route_batch",
    summary="Route many requests",
    description=(
        "Route several requests in one call. Results come back in order; an invalid item gets "
        "its own error entry and the others are still routed. More than policy.max_batch items "
        "is a 413."
    ),
    responses=BATCH_ERRORS,
)
def route_batch(body: BatchRequest, runtime: RuntimeDep, request: Request) -> BatchResponse:
    limit = runtime.portfolio.policy.max_batch
    if len(body.items) > limit:
        raise TooLargeError(
            f"the batch has {len(body.items)} items; the limit (policy.max_batch) is {limit}"
        )
    results: list[RouteResponse | BatchItemError] = []
    for index, item in enumerate(body.items):
        try:
            results.append(_observed(request, runtime, RouteRequest.model_validate(item)))
        except ValidationError as exc:
            detail = [
                {**err, "loc": ["body", "items", index, *err["loc"]]}
                for err in exc.errors(include_url=False, include_context=False)
            ]
            results.append(BatchItemError(error=ItemError(status=422, detail=detail)))
        except RequestError as exc:
            results.append(
                BatchItemError(error=ItemError(status=exc.status_code, detail=exc.detail()))
            )
    return BatchResponse(results=results)
