"""``/v1/plan``: the VRAM plan of the loaded portfolio."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from classifier_service.api.deps import RuntimeDep
from classifier_service.api.responses import NOT_LOADED, invalid, merge
from classifier_service.fleet.vram import plan

router = APIRouter(prefix="/v1", tags=["portfolio"])


@router.get(
    "/plan",
    operation_id="plan",
    summary="VRAM plan",
    description=(
        "Per GPU of the portfolio: each model's weights and KV cache (GB = 10^9 bytes), the "
        "resident models, free memory, the alert line, a verdict (fits_concurrently, "
        "needs_on_demand, does_not_fit) and the most sessions or context that fit."
    ),
    responses=merge(invalid("A query parameter out of range."), NOT_LOADED),
)
async def get_plan(
    runtime: RuntimeDep,
    sessions: Annotated[int, Query(ge=1, le=10_000, description="Sessions per model.")] = 1,
    gpu_memory: Annotated[float | None, Query(gt=0, le=100_000, allow_inf_nan=False,
                                              description="GB; overrides each GPU's.")] = None,
) -> dict[str, Any]:
    return plan(runtime.portfolio, sessions=sessions, memory_gb=gpu_memory)
