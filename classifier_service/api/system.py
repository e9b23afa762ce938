"""Health, readiness, metrics and the portfolio."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from classifier_service.api.auth import require_key
from classifier_service.api.deps import RuntimeDep, loaded_runtime, state
from classifier_service.api.responses import API_KEY, NOT_LOADED, detail, merge
from classifier_service.api.schemas import Health, Readiness
from classifier_service.metrics import CONTENT_TYPE

router = APIRouter(tags=["system"])


@router.get(
    "/healthz",
    operation_id="healthz",
    summary="Liveness",
    description="Answers 200 while the process serves HTTP.",
)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness",
    description="200 once the model and the portfolio are loaded and the outcome and "
    "feedback logs can be written; 503 before, or naming the log path that cannot be written "
    "and why.",
    responses={503: detail("Not loaded yet, or a log cannot be written.")},
    response_model=Readiness,
)
async def readyz(request: Request) -> Any:
    runtime = loaded_runtime(request)
    if runtime is None:
        return JSONResponse(status_code=503, content={"detail": "not ready"})
    for log in (request.app.state.outcome_log, request.app.state.feedback_log):
        problem = log.problem()
        if problem is not None:
            return JSONResponse(status_code=503,
                                content={"detail": f"cannot write a log: {problem}"})
    return Readiness(
        model_version=runtime.model_version,
        model_dir=str(runtime.model_dir),
        portfolio=str(runtime.portfolio_path),
        tiers=runtime.portfolio.tier_names,
        model_kind=runtime.model_kind,
        operating_point=runtime.operating_point,
    )


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    description=(
        "Decisions per tier and reason, quality checks and escalations per signal, fallbacks "
        "and failovers per endpoint, routing and gateway latency histograms, model reloads, "
        "and GPU memory, in Prometheus' text format. Open, like the health checks."
    ),
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    registry = state(request).metrics
    return Response(content=registry.exposition(), media_type=CONTENT_TYPE)


@router.get(
    "/v1/portfolio",
    operation_id="get_portfolio",
    summary="The model portfolio",
    description=(
        "The loaded portfolio (tiers cheapest first, specialists, rules, policy), with the "
        "confidence threshold in force and the model's version and labels."
    ),
    tags=["portfolio"],
    dependencies=[Depends(require_key())],
    responses=merge(API_KEY, NOT_LOADED),
)
async def get_portfolio(runtime: RuntimeDep) -> dict[str, Any]:
    data = runtime.portfolio.model_dump(mode="json")
    data["policy"]["effective_confidence_threshold"] = runtime.confidence_threshold
    data["model"] = {
        "version": runtime.model_version,
        "tiers": runtime.artifact.tier_labels,
        "categories": runtime.classifier.category_labels,
        "kind": runtime.model_kind,
        "operating_point": runtime.operating_point,
        "check": runtime.outcome is not None and runtime.outcome.has_check,
    }
    return data
