"""The error answers of the HTTP API, as documented in OpenAPI (``responses=`` per route).

Three error shapes exist: FastAPI's ``{"detail": ...}`` on tier-router's own operations
(a string, or for 422 FastAPI's list of validation errors), OpenAI's ``{"error": {...}}`` on
``/v1/chat/completions`` and Ollama's ``{"error": "..."}`` on ``/api/*``. Each operation lists
the statuses it can answer; the schemas here are what those answers carry.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from classifier_service.errors import (
    AuthError,
    ErrorStyle,
    InvalidRequestError,
    RequestError,
    Unauthorized,
)


class Detail(BaseModel):
    """FastAPI's error body with a message."""

    detail: str


class FieldError(BaseModel):
    """One problem, located as FastAPI locates validation errors, e.g. ``["body", "min_tier"]``."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class Invalid(BaseModel):
    """FastAPI's validation-error body; tier-router's own 422 answers use it too."""

    detail: list[FieldError]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """OpenAI's error body."""

    error: OpenAIErrorBody


class OllamaError(BaseModel):
    """Ollama's error body."""

    error: str = Field(description="What went wrong.")


Responses = dict[int | str, dict[str, Any]]


def detail(description: str) -> dict[str, Any]:
    """A ``{"detail": "..."}`` answer."""
    return {"model": Detail, "description": description}


BODY_LIMIT = "the body is larger than TIER_ROUTER_MAX_BODY_BYTES"


def too_large(description: str | None = None) -> Responses:
    """A 413: ``description``, or the body over the service's size limit (any POST)."""
    what = f"{description} Or {BODY_LIMIT}." if description else f"{BODY_LIMIT.capitalize()}."
    return {413: detail(what)}


def invalid(description: str) -> Responses:
    """A 422 in FastAPI's validation-error shape."""
    return {422: {"model": Invalid, "description": description}}


# A body refused before any handler (api/body_policy.py) or that FastAPI cannot parse at all.
BAD_BODY: Responses = {400: detail("The body cannot be parsed: not UTF-8 text, nested deeper "
                                   "than 100 levels, or an integer with too many digits.")}
NOT_LOADED: Responses = {503: detail("The model and the portfolio are not loaded yet.")}
API_KEY: Responses = {401: detail("A missing or unknown API key.")}


def openai(status: int, description: str) -> Responses:
    return {status: {"model": OpenAIError, "description": description}}


def ollama(status: int, description: str) -> Responses:
    return {status: {"model": OllamaError, "description": description}}


def gateway_errors(api: Literal["OpenAI", "Ollama"]) -> Responses:
    """The 404, 413, 422 and 503 both gateways answer, in ``api``'s error shape."""
    shape: type[BaseModel] = OpenAIError if api == "OpenAI" else OllamaError
    return {
        404: {"model": shape, "description": "Unknown `model`."},
        413: {"model": shape | Detail,
              "description": "The last user message is longer than policy.max_prompt_chars or "
                             f"than any allowed context ({api}'s error shape). Or {BODY_LIMIT}."},
        422: {"model": shape, "description": "Unknown tier in a header, or min above max."},
        503: {"model": shape | Detail,
              "description": f"Every endpoint of the chain is down ({api}'s error shape), or "
                             "the model is not loaded yet."},
    }


def merge(*parts: Responses) -> Responses:
    merged: Responses = {}
    for part in parts:
        merged.update(part)
    return merged


def problem(exc: ValidationError) -> str:
    """The first problem of a body that fails its model, as ``field: message``."""
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting the JSON body of a route that reads it itself."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


def header(name: str, description: str) -> dict[str, Any]:
    """An optional string header parameter, for ``openapi_extra``."""
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": {"type": "string"}}


ROUTE_HEADERS = [
    header("x-tier-router-agent", "Agent name (as `agent` of /v1/route)."),
    header("x-tier-router-min-tier", "Lowest tier allowed; empty means unset."),
    header("x-tier-router-max-tier", "Highest tier allowed; empty means unset."),
    header("x-tier-router-session", "Conversation id: later `auto` turns keep its tier."),
    header("x-tier-router-stream", "`buffered`: check and escalate, then stream the answer; "
           "`direct`: stream as it comes. Unset: the portfolio's policy.buffer_streams."),
]

# One server-sent event (the shape FastAPI and OpenAPI 3.2 give an SSE item).
SSE_EVENT = {"type": "object", "required": ["data"], "properties": {
    "data": {"type": "string", "description": "A chat.completion.chunk as JSON, or [DONE]."},
    "event": {"type": "string"}, "id": {"type": "string"}}}


# -- the answers themselves: the app's exception handler renders every RequestError here ----


def openai_error(status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if 400 <= status < 500 else "api_error"
    return JSONResponse(status_code=status, headers=headers, content={
        "error": {"message": message, "type": kind, "param": None, "code": code}})


def ollama_error(status: int, message: str,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


def error_answer(exc: RequestError, style: ErrorStyle) -> JSONResponse:
    """``exc`` in the error shape of the API that was called."""
    headers = {"www-authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    if style == "openai":
        code = "invalid_api_key" if isinstance(exc, AuthError) else None
        return openai_error(exc.status_code, _message(exc), code, headers)
    if style == "ollama":
        return ollama_error(exc.status_code, _message(exc), headers)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail()},
                        headers=headers)


def _message(exc: RequestError) -> str:
    if isinstance(exc, InvalidRequestError):
        return f"{exc.loc[-1]}: {exc.msg}"
    return str(exc)
