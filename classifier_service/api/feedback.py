"""``/v1/feedback``: what happened after a routing decision, for learning from outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictBool

from classifier_service.api.deps import RuntimeDep, get_feedback_log
from classifier_service.api.responses import BAD_BODY, NOT_LOADED, invalid, merge, too_large
from classifier_service.api.schemas import OptionalString
from classifier_service.errors import InvalidRequestError
from classifier_service.feedback import FeedbackLog
from classifier_service.routing.policy import check_tier

router = APIRouter(prefix="/v1", tags=["feedback"])

class FeedbackRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=200,
                            description="The request_id that /v1/route returned.")
    prompt: OptionalString = Field(default=None, description=(
        "The prompt text, only if you want it kept in the feedback log and used for "
        "retraining (see the privacy note in the README)."))
    tier_used: OptionalString = Field(default=None, description="The tier that answered first.")
    escalated: StrictBool = Field(default=False, description="Whether the answer was escalated.")
    final_tier: OptionalString = Field(default=None,
                                       description="The tier whose answer was good enough.")
    label: OptionalString = Field(default=None, description="A person's tier label.")


class FeedbackResponse(BaseModel):
    status: Literal["recorded"] = "recorded"
    request_id: str


@router.post(
    "/feedback",
    operation_id="feedback",
    summary="Report the outcome of a routed request",
    description=(
        "Append one record to the feedback log: which tier answered, whether it was "
        "escalated, and the tier that answered well (final_tier) or a person's label. The "
        "record is on disk (fsynced) before the 200. Records that carry the prompt become "
        "training rows with `tier-router train --feedback LOG`."
    ),
    responses=merge(
        BAD_BODY,
        too_large("The prompt is longer than policy.max_prompt_chars."),
        invalid("Unknown tier, neither final_tier nor label, or a field of the wrong type."),
        NOT_LOADED,
    ),
)
def feedback(
    body: FeedbackRequest,
    runtime: RuntimeDep,
    log: Annotated[FeedbackLog, Depends(get_feedback_log)],
) -> FeedbackResponse:
    if body.prompt is not None:
        runtime.check_length(body.prompt)  # no longer than a prompt the service routes
    for name in ("tier_used", "final_tier", "label"):
        check_tier(runtime.portfolio, getattr(body, name), name)
    if body.final_tier is None and body.label is None:
        raise InvalidRequestError(("body", "final_tier"),
                                  "give final_tier (the tier that answered well) or label", None)
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        **body.model_dump(exclude_none=True),
        "model_version": runtime.model_version,
    }
    log.append(record)
    return FeedbackResponse(request_id=body.request_id)
