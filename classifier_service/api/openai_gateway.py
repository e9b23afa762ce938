"""The OpenAI-compatible gateway: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Clients (the ``openai`` SDK, n8n's OpenAI Chat Model, Dify's OpenAI-API-compatible provider)
see one model server; ``model`` is ``auto``, a tier or an endpoint name. Route options travel
in headers: ``x-tier-router-agent``, ``x-tier-router-min-tier``, ``x-tier-router-max-tier``,
``x-tier-router-session``. Errors use OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from classifier_service.api.deps import RuntimeDep, answers_in, resident_now, state
from classifier_service.api.responses import (
    NOT_LOADED,
    ROUTE_HEADERS,
    SSE_EVENT,
    Responses,
    gateway_errors,
    json_body,
    merge,
    openai,
    problem,
)
from classifier_service.errors import BackendError, RequestError
from classifier_service.gateway.chat import as_chunks, buffered, header_options
from classifier_service.gateway.engine import Gateway, Outcome, Plan, route_header
from classifier_service.gateway.streams import OpenAIStream
from classifier_service.routing.policy import check_options
from classifier_service.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["gateway"],
                   dependencies=[Depends(answers_in("openai"))])


class ChatCompletionRequest(BaseModel):
    """The fields the gateway reads; every other field passes through to the backend."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = Field(default=None, description=(
        "`auto` (also null or empty), a tier or an endpoint name (see GET /v1/models)."))
    messages: list[dict[str, Any]] = Field(min_length=1, description=(
        "OpenAI chat messages; the last user message is classified."))
    stream: bool | None = Field(default=None, description="Server-sent events when true.")


ERRORS: Responses = merge(
    {200: {"description": "The backend's answer with a `tier_router` field; server-sent "
           "events when `stream` is true.",
           "content": {"text/event-stream": {"schema": SSE_EVENT}}}},
    openai(400, "The body is not JSON, or `messages`, `model` or `stream` is malformed."),
    gateway_errors("OpenAI"),
)


@router.get("/models", operation_id="list_models", summary="Models (OpenAI-compatible)",
            description="`auto`, every tier and every endpoint, as OpenAI model objects.",
            responses=NOT_LOADED)
async def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    names = ["auto", *runtime.portfolio.tier_names,
             *(e.name for e in runtime.portfolio.all_endpoints())]
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "tier-router"}
        for name in names]}


@router.post(
    "/chat/completions",
    operation_id="chat_completions",
    summary="Chat completions (OpenAI-compatible), routed",
    description=(
        "Route the request (model `auto`, a tier or an endpoint), forward it with every other "
        "field untouched, check the answer and escalate along the fallback chain; fail over on "
        "errors. The response carries a `tier_router` field and `x-tier-router-*` headers."
    ),
    responses=ERRORS,
    openapi_extra={**json_body(ChatCompletionRequest), "parameters": ROUTE_HEADERS},
)
async def chat_completions(request: Request, runtime: RuntimeDep) -> Any:
    with state(request).metrics.gateway_seconds.labels("openai").time():
        return await _chat_completions(request, runtime)


async def _chat_completions(request: Request, runtime: Runtime) -> Any:
    try:
        body = await request.json()
    except ValueError:
        raise RequestError("the body is not valid JSON") from None
    try:
        ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestError(problem(exc)) from None
    model = body.get("model") or "auto"
    session = _session(request, body, runtime)
    gateway = state(request).gateway
    options = check_options(runtime.portfolio, **header_options(request.headers))
    plan = gateway.plan(runtime, model, body["messages"], options,
                        session=session,
                        resident=resident_now(request))
    check_stream = buffered(request.headers, runtime.portfolio.policy.buffer_streams)
    if body.get("stream") and not check_stream:
        return await _stream(gateway, runtime, plan, body, session)
    # stream_options is for streams only (vLLM and OpenAI refuse it with stream false)
    unstreamed = {k: v for k, v in body.items() if k != "stream_options"}
    outcome = await gateway.complete(runtime, plan, {**unstreamed, "stream": False})
    gateway.remember(session, outcome.tier)
    if body.get("stream"):
        relay = OpenAIStream(body, runtime.portfolio.policy.chars_per_token)
        chunks = [c for chunk in as_chunks(outcome.completion) for c in relay.feed(chunk)]
        return StreamingResponse(_sse([*chunks, *relay.end()]),
                                 media_type="text/event-stream",
                                 headers=_headers(outcome, plan))
    return JSONResponse(content=_annotated(outcome, plan), headers=_headers(outcome, plan))


def _session(request: Request, body: dict[str, Any], runtime: Runtime) -> str | None:
    """The conversation id: the ``x-tier-router-session`` header; OpenAI's ``user`` field
    (an end user, not a conversation) only with ``policy.session_from: user``."""
    session = request.headers.get("x-tier-router-session")
    if not session and runtime.portfolio.policy.session_from == "user":
        user = body.get("user")
        session = user if isinstance(user, str) else None
    return session or None


async def _sse(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _annotated(outcome: Outcome, plan: Plan) -> dict[str, Any]:
    return {**outcome.completion.body, "tier_router": outcome.summary(plan)}


def _headers(outcome: Outcome, plan: Plan) -> dict[str, str]:
    return {
        "x-tier-router-endpoint": outcome.endpoint.name,
        "x-tier-router-tier": outcome.tier,
        "x-tier-router-reason": plan.reason,
        "x-tier-router-escalations": str(outcome.escalations),
        "x-tier-router-route": route_header(outcome.steps),
        "x-tier-router-request-id": plan.request_id,
    }


async def _stream(gateway: Gateway, runtime: Runtime, plan: Plan, body: dict[str, Any],
                  session: str | None) -> StreamingResponse:
    endpoint, steps, chunks = await gateway.open_stream(runtime, plan, body)
    tier = runtime.portfolio.tier_of(endpoint)
    gateway.remember(session, tier)

    relay = OpenAIStream(body, runtime.portfolio.policy.chars_per_token)

    async def events() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                for out in relay.feed(chunk):
                    yield f"data: {json.dumps(out)}\n\n".encode()
            for out in relay.end():
                yield f"data: {json.dumps(out)}\n\n".encode()
        except Exception as exc:  # broke off mid-stream: always terminated
            message = str(exc) if isinstance(exc, RequestError | BackendError) else (
                f"the stream broke off ({type(exc).__name__})")
            error = {"error": {"message": message, "type": "api_error", "param": None,
                               "code": None}, "id": f"chatcmpl-{uuid.uuid4().hex}"}
            yield f"data: {json.dumps(error)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    headers = {
        "x-tier-router-endpoint": endpoint.name,
        "x-tier-router-tier": tier,
        "x-tier-router-reason": plan.reason,
        "x-tier-router-route": route_header(steps),
        "x-tier-router-request-id": plan.request_id,
        "cache-control": "no-cache",
    }
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
