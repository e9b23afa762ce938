"""The Ollama-compatible gateway: ``/api/chat``, ``/api/generate``, ``/api/tags``.

Ollama clients (the ``ollama`` SDK, n8n's Ollama Chat Model, Dify's Ollama provider) point at
tier-router instead of at Ollama. The same routing as the OpenAI gateway (``model``: ``auto``,
a tier or an endpoint; the same ``x-tier-router-*`` headers), the same checks, escalation and
failover; streaming (Ollama's default) is NDJSON, its lines made by
:class:`~classifier_service.gateway.streams.ChatLines` (tool calls whole, the token counts in
the last line). Errors use Ollama's ``{"error": "..."}``. ``/api/show``, ``/api/ps`` and
``/api/version`` are in :mod:`classifier_service.api.ollama_info`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from classifier_service.api.deps import RuntimeDep, answers_in, resident_now, state
from classifier_service.api.responses import (
    NOT_LOADED,
    ROUTE_HEADERS,
    Responses,
    gateway_errors,
    json_body,
    merge,
    ollama,
    problem,
)
from classifier_service.errors import BackendError, RequestError
from classifier_service.gateway.chat import as_chunks, buffered, header_options
from classifier_service.gateway.engine import check_model
from classifier_service.gateway.ollama_wire import (
    chat_to_generate,
    chat_to_openai,
    completion_to_chat,
    generate_to_openai,
    now_iso,
)
from classifier_service.gateway.streams import ChatLines
from classifier_service.routing.policy import check_options
from classifier_service.runtime import Runtime

router = APIRouter(prefix="/api", tags=["ollama gateway"],
                   dependencies=[Depends(answers_in("ollama"))])


class OllamaRequest(BaseModel):
    """The fields the gateway reads; every other field is taken as Ollama defines it."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = Field(default=None, description=(
        "`auto` (also null or empty), a tier or an endpoint name (see GET /api/tags)."))
    stream: bool | None = Field(default=None, description="NDJSON unless false.")
    options: dict[str, Any] | None = Field(default=None, description=(
        "Ollama's options (temperature, top_p, seed, stop, num_predict, ...)."))


class OllamaChatRequest(OllamaRequest):
    messages: list[dict[str, Any]] = Field(default_factory=list, description=(
        "Ollama chat messages; none (or none with content) is Ollama's load call."))


class OllamaGenerateRequest(OllamaRequest):
    prompt: str | None = Field(default=None, description="The prompt.")
    system: str | None = Field(default=None, description="The system prompt.")


ERRORS: Responses = merge(
    {200: {"description": "The answer in Ollama's shape with a `tier_router` field; NDJSON "
           "lines unless `stream` is false.",
           "content": {"application/x-ndjson": {"schema": {
               "type": "string", "description": "One Ollama answer object per line."}}}}},
    ollama(400, "The body is not JSON, or a field has the wrong type."),
    gateway_errors("Ollama"),
)


@router.get("/tags", operation_id="ollama_tags", summary="Models (Ollama-compatible)",
            description="`auto`, every tier and every endpoint, as Ollama model entries.",
            responses=NOT_LOADED)
async def tags(runtime: RuntimeDep) -> dict[str, Any]:
    names = ["auto", *runtime.portfolio.tier_names,
             *(e.name for e in runtime.portfolio.all_endpoints())]
    return {"models": [{"name": n, "model": n, "modified_at": now_iso(), "size": 0,
                        "digest": "", "details": {"format": "tier-router", "family": "router"}}
                       for n in names]}


@router.post("/chat", operation_id="ollama_chat", summary="Chat (Ollama-compatible), routed",
             description="Ollama's /api/chat, routed, checked and escalated like "
             "/v1/chat/completions; NDJSON streaming unless `stream` is false.",
             responses=ERRORS,
             openapi_extra={**json_body(OllamaChatRequest), "parameters": ROUTE_HEADERS})
async def chat(request: Request, runtime: RuntimeDep) -> Any:
    with state(request).metrics.gateway_seconds.labels("ollama").time():
        return await _serve(request, runtime, OllamaChatRequest, chat_to_openai,
                            lambda line: line)


@router.post("/generate", operation_id="ollama_generate",
             summary="Generate (Ollama-compatible), routed",
             description="Ollama's /api/generate (prompt and system), routed like /api/chat.",
             responses=ERRORS,
             openapi_extra={**json_body(OllamaGenerateRequest), "parameters": ROUTE_HEADERS})
async def generate(request: Request, runtime: RuntimeDep) -> Any:
    with state(request).metrics.gateway_seconds.labels("ollama").time():
        return await _serve(request, runtime, OllamaGenerateRequest, generate_to_openai,
                            chat_to_generate)


async def _serve(request: Request, runtime: Runtime, schema: type[OllamaRequest],
                 to_openai: Callable[[dict[str, Any]], dict[str, Any]],
                 shape: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    started_ns = time.perf_counter_ns()
    try:
        body = await request.json()
    except ValueError:
        raise RequestError("the body is not valid JSON") from None
    try:
        schema.model_validate(body)
    except ValidationError as exc:
        raise RequestError(problem(exc)) from None
    model = body.get("model") or "auto"
    # checked even for Ollama's load call, which routes nothing; once per request
    check_model(runtime.portfolio, model)
    options = check_options(runtime.portfolio, **header_options(request.headers))
    openai_request = to_openai(body)
    if not openai_request["messages"] or not any(
            m.get("content") for m in openai_request["messages"]):
        # Ollama's "load the model" call: nothing to route, nothing to answer.
        return shape({"model": model, "created_at": now_iso(),
                      "message": {"role": "assistant", "content": ""}, "done": True,
                      "done_reason": "load"})
    session = request.headers.get("x-tier-router-session")
    gateway = state(request).gateway
    plan = gateway.plan(runtime, model, openai_request["messages"], options, session=session,
                        resident=resident_now(request))
    check_stream = buffered(request.headers, runtime.portfolio.policy.buffer_streams)
    chars_per_token = runtime.portfolio.policy.chars_per_token
    if body.get("stream", True) and not check_stream:
        # Ollama's last line carries the token counts: ask OpenAI-compatible servers for them
        streamed = {**openai_request, "stream_options": {"include_usage": True}}
        endpoint, _, chunks = await gateway.open_stream(runtime, plan, streamed)
        gateway.remember(session, runtime.portfolio.tier_of(endpoint))
        relay = ChatLines(openai_request, chars_per_token, model, started_ns)

        async def lines() -> AsyncIterator[bytes]:
            """Ollama's NDJSON; the last line always has ``done: true``, with an ``error``
            field when the backend broke off mid-stream."""
            try:
                async for chunk in chunks:
                    for line in relay.feed(chunk):
                        yield (json.dumps(shape(line)) + "\n").encode()
                for line in relay.end():
                    yield (json.dumps(shape(line)) + "\n").encode()
            except Exception as exc:  # broke off mid-stream: always terminated
                message = str(exc) if isinstance(exc, RequestError | BackendError) else (
                    f"the stream broke off ({type(exc).__name__})")
                yield (json.dumps(_final(shape, model, "error") | {"error": message})
                       + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson",
                                 headers={"x-tier-router-endpoint": endpoint.name,
                                          "x-tier-router-request-id": plan.request_id})
    outcome = await gateway.complete(runtime, plan, openai_request)
    gateway.remember(session, outcome.tier)
    headers = {"x-tier-router-endpoint": outcome.endpoint.name, "x-tier-router-tier": outcome.tier,
               "x-tier-router-request-id": plan.request_id}
    if body.get("stream", True):  # buffered: the checked answer, sent as a stream
        relay = ChatLines(openai_request, chars_per_token, model, started_ns)
        checked = [shape(line) for chunk in as_chunks(outcome.completion)
                   for line in relay.feed(chunk)]
        checked += [shape(line) for line in relay.end()]

        async def buffered_lines() -> AsyncIterator[bytes]:
            for line in checked:
                yield (json.dumps(line) + "\n").encode()

        return StreamingResponse(buffered_lines(), media_type="application/x-ndjson",
                                 headers=headers)
    answer = shape(completion_to_chat(outcome.completion.body, model))
    answer["tier_router"] = outcome.summary(plan)
    return JSONResponse(content=answer, headers=headers)


def _final(shape: Callable[[dict[str, Any]], dict[str, Any]], model: str, reason: str
           ) -> dict[str, Any]:
    """A stream's closing line: ``done: true`` with an empty message."""
    return shape({"model": model, "created_at": now_iso(),
                  "message": {"role": "assistant", "content": ""}, "done": True,
                  "done_reason": reason})
