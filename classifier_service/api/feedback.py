"""``/v1/feedback``: what happened after a routing decision, for learning from outcomes.

Two body shapes, both flat (Dify imports them as tool parameters): an **outcome record**
(``prompt``, ``tier``, ``score``, optional answer details; see
:class:`classifier_service.feedback.OutcomeRecord`) goes to the outcomes folder; the older
**feedback** form (``request_id``, ``final_tier`` or ``label``) goes to the feedback log. A
body with ``tier`` or ``score`` is an outcome record.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, Strict, StrictBool, ValidationError, WithJsonSchema

from classifier_service.api.responses import (
    BAD_BODY,
    Responses,
    detail,
    invalid,
    merge,
    too_large,
)
from classifier_service.deps import RuntimeDep
from classifier_service.errors import InvalidRequestError, RequestError, TooLargeError
from classifier_service.feedback import (
    SOURCES,
    FeedbackLog,
    OutcomeError,
    OutcomeLog,
    OutcomeRecord,
)
from classifier_service.policy import check_tier
from classifier_service.runtime import Runtime
from classifier_service.schemas import BatchItemError, ItemError, OptionalString

router = APIRouter(prefix="/v1", tags=["feedback"])

# A number, or a numeric string (Dify may send numbers as text); "" and null mean unset.
FlexibleNumber = Annotated[
    Annotated[float, Strict()] | str | None,
    WithJsonSchema({"type": "number", "nullable": True}),
]


class FeedbackRequest(BaseModel):
    request_id: OptionalString = Field(default=None, max_length=200, description=(
        "The request_id that /v1/route returned: required in the feedback form, optional in "
        "an outcome record (one is generated if unset)."))
    prompt: OptionalString = Field(default=None, description=(
        "The prompt text: required in an outcome record; in the feedback form only if you "
        "want it kept and used for retraining (see the privacy note in the README)."))
    tier: OptionalString = Field(default=None, description=(
        "Outcome record: the portfolio tier whose model answered."))
    score: FlexibleNumber = Field(default=None, description=(
        "Outcome record: how good that answer was, 0-1 (1 good enough / won, 0 not, 0.5 a "
        "tie, or a graded score). A numeric string such as \"0.5\" is accepted."))
    answer: OptionalString = Field(default=None, description=(
        "Outcome record: the answer text (at most policy.max_prompt_chars characters)."))
    finish_reason: OptionalString = Field(default=None, description=(
        "Outcome record: the server's finish reason (stop, length, ...)."))
    avg_logprob: FlexibleNumber = Field(default=None, description=(
        "Outcome record: the answer's mean token log-probability."))
    category: OptionalString = Field(default=None, description="Outcome record: the task kind.")
    endpoint: OptionalString = Field(default=None, description=(
        "Outcome record: the endpoint that answered."))
    source: OptionalString = Field(default=None, description=(
        f"Outcome record: where the score came from, {', '.join(SOURCES)} (default user)."))
    tier_used: OptionalString = Field(default=None, description=(
        "Feedback form: the tier that answered first."))
    escalated: StrictBool = Field(default=False, description=(
        "Feedback form: whether the answer was escalated."))
    final_tier: OptionalString = Field(default=None, description=(
        "Feedback form: the tier whose answer was good enough."))
    label: OptionalString = Field(default=None, description=(
        "Feedback form: a person's tier label."))


class FeedbackResponse(BaseModel):
    status: Literal["recorded"] = "recorded"
    request_id: str


class FeedbackBatchRequest(BaseModel):
    records: list[Any] = Field(description=(
        "Feedback bodies (either shape of /v1/feedback). An invalid one gets an error entry "
        "in `results` and the others are recorded; at most policy.max_batch (413 above)."))


class FeedbackBatchResponse(BaseModel):
    results: list[FeedbackResponse | BatchItemError] = Field(
        description="One entry per record, in order: recorded, or an error for that record.")


class RateLimiter:
    """A token bucket per client (API key, else address): ``rate`` records/s, ``burst`` at once."""

    MAX_CLIENTS = 4096

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str, tokens: int) -> float:
        """Take ``tokens``; 0.0 when allowed, else the seconds to wait for them."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            level, since = self._buckets.get(client, (float(self.burst), now))
            level = min(float(self.burst), level + (now - since) * self.rate)
            if tokens > level:
                return (min(tokens, self.burst) - level) / self.rate if tokens <= self.burst \
                    else math.inf
            if len(self._buckets) >= self.MAX_CLIENTS and client not in self._buckets:
                self._buckets = {k: v for k, v in self._buckets.items()
                                 if v[0] + (now - v[1]) * self.rate < self.burst}
            self._buckets[client] = (level - tokens, now)
            return 0.0


def _limit(request: Request, tokens: int) -> None:
    limiter: RateLimiter = request.app.state.feedback_limiter
    auth = request.headers.get("authorization", "")
    client = ("key:" + auth) if auth else ("addr:" + (request.client.host if request.client
                                                      else ""))
    wait = limiter.take(client, tokens)
    if wait == math.inf:
        raise HTTPException(429, f"{tokens} records at once is more than this key may send "
                                 f"(TIER_ROUTER_FEEDBACK_BURST is {limiter.burst})")
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise HTTPException(429, f"too many feedback records: the limit is {limiter.rate:g} "
                                 f"per second per key (TIER_ROUTER_FEEDBACK_RATE), "
                                 f"{limiter.burst} at once; retry in {retry} s",
                            headers={"retry-after": str(retry)})


ERRORS: Responses = merge(
    BAD_BODY,
    too_large("The prompt or answer is longer than policy.max_prompt_chars, or the record "
              "larger than TIER_ROUTER_FEEDBACK_MAX_RECORD_BYTES."),
    invalid("Unknown tier or source, a score outside 0-1, an empty prompt, neither final_tier "
            "nor label, or a field of the wrong type."),
    {429: detail("Too many records from this key (or address): see the Retry-After header."),
     503: detail("Not loaded yet, or the log cannot be written (the answer names the path "
                 "and the error)."),
     507: detail("The feedback log reached TIER_ROUTER_FEEDBACK_LOG_MAX_BYTES.")},
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _parse(runtime: Runtime, body: FeedbackRequest) -> OutcomeRecord | dict[str, Any]:
    """An outcome record, or a feedback record (a dict) for the feedback log."""
    limit = runtime.portfolio.policy.max_prompt_chars
    if body.prompt is not None:
        runtime.check_length(body.prompt)  # no longer than a prompt the service routes
    if body.answer is not None and len(body.answer) > limit:
        raise TooLargeError(f"the answer has {len(body.answer)} characters; the limit "
                            f"(policy.max_prompt_chars) is {limit}")
    if body.tier is not None or body.score is not None:
        data = body.model_dump(exclude_none=True)
        data.setdefault("request_id", uuid.uuid4().hex)
        try:
            return OutcomeRecord.from_json(data, runtime.portfolio.tier_names)
        except OutcomeError as exc:
            raise InvalidRequestError(("body", exc.field), str(exc).split(": ", 1)[1],
                                      None) from None
    if body.request_id is None:
        raise InvalidRequestError(("body", "request_id"), "give the request_id that /v1/route "
                                  "returned (or tier and score for an outcome record)", None)
    for name in ("tier_used", "final_tier", "label"):
        check_tier(runtime.portfolio, getattr(body, name), name)
    if body.final_tier is None and body.label is None:
        raise InvalidRequestError(("body", "final_tier"),
                                  "give final_tier (the tier that answered well) or label", None)
    return {"ts": _now(), **body.model_dump(exclude_none=True),
            "model_version": runtime.model_version}


def _write(request: Request, parsed: list[OutcomeRecord | dict[str, Any]]) -> None:
    outcomes = [p for p in parsed if isinstance(p, OutcomeRecord)]
    if outcomes:
        outcome_log: OutcomeLog = request.app.state.outcome_log
        outcome_log.append(outcomes, _now())
    feedback_log: FeedbackLog = request.app.state.feedback_log
    for record in parsed:
        if isinstance(record, dict):
            feedback_log.append(record)


def _request_id(parsed: OutcomeRecord | dict[str, Any]) -> str:
    value = parsed.request_id if isinstance(parsed, OutcomeRecord) else parsed["request_id"]
    return str(value)


@router.post(
    "/feedback",
    operation_id="feedback",
    summary="Report an outcome",
    description=(
        "Record one outcome, durably (fsynced) before the 200. Two flat shapes. **Outcome "
        "record** (a body with `tier` and `score`): `prompt`, `tier` (whose model answered), "
        "`score` 0-1 (1 good enough / won, 0 not, 0.5 a tie, or graded), optional `answer`, "
        "`finish_reason`, `avg_logprob`, `category`, `endpoint`, `request_id`, `source` (user, "
        "judge, check); it goes to the outcomes folder, from which `tier-router train "
        "--outcomes DIR` learns. **Feedback form**: `request_id` from /v1/route, "
        "`final_tier` (the tier that answered well) or `label`, optional `tier_used`, "
        "`escalated`, `prompt`; it goes to the feedback log (`train --feedback LOG`). `\"\"` "
        "and null mean unset; numbers may be sent as text. Rate-limited per API key."
    ),
    responses=ERRORS,
)
def feedback(body: FeedbackRequest, runtime: RuntimeDep, request: Request) -> FeedbackResponse:
    _limit(request, 1)
    parsed = _parse(runtime, body)
    _write(request, [parsed])
    return FeedbackResponse(request_id=_request_id(parsed))


@router.post(
    "/feedback/batch",
    operation_id="feedback_batch",
    summary="Report many outcomes",
    description=(
        "Record several feedback bodies (either shape) in one call: `{\"records\": [...]}` -> "
        "`{\"results\": [...]}` in order. An invalid record gets its own error entry and the "
        "others are recorded (one write, one fsync). More than policy.max_batch records is a "
        "413; each record counts against the rate limit."
    ),
    responses=ERRORS,
)
def feedback_batch(body: FeedbackBatchRequest, runtime: RuntimeDep,
                   request: Request) -> FeedbackBatchResponse:
    limit = runtime.portfolio.policy.max_batch
    if len(body.records) > limit:
        raise TooLargeError(f"the batch has {len(body.records)} records; the limit "
                            f"(policy.max_batch) is {limit}")
    _limit(request, max(1, len(body.records)))
    results: list[FeedbackResponse | BatchItemError | None] = []
    parsed: list[OutcomeRecord | dict[str, Any]] = []
    for index, item in enumerate(body.records):
        try:
            record = _parse(runtime, FeedbackRequest.model_validate(item))
            results.append(None)
            parsed.append(record)
        except ValidationError as exc:
            errors = [{**err, "loc": ["body", "records", index, *err["loc"]]}
                      for err in exc.errors(include_url=False, include_context=False)]
            results.append(BatchItemError(error=ItemError(status=422, detail=errors)))
        except RequestError as exc:
            results.append(BatchItemError(error=ItemError(status=exc.status_code,
                                                          detail=exc.detail())))
    _write(request, parsed)
    written = iter(parsed)
    return FeedbackBatchResponse(results=[
        r if r is not None else FeedbackResponse(request_id=_request_id(next(written)))
        for r in results])
