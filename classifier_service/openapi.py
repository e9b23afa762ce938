"""The OpenAPI document, stated for the portfolio and model that serve now.

FastAPI derives the document from the code, but part of the contract comes from the portfolio:
the tier names (``min_tier``, ``max_tier``, ``tier``, ``final_tier``, ...), the endpoint names
(``model`` of the gateways, the admin ``{endpoint}``), ``policy.max_prompt_chars`` (a longer
prompt is a 413) and ``policy.max_batch``. The portfolio is loaded in ``lifespan`` and can change
on reload, so :func:`install` makes ``app.openapi()`` take FastAPI's document and add those
facts for the runtime loaded at the time of the call (as enums, ``maxLength`` and
``maxItems``); the result is kept until a reload swaps the runtime. Before anything is loaded
the document is FastAPI's, with plain strings.

Tier enums list ``""`` and ``null`` too: both mean "not set" in the flat request bodies.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from classifier_service.runtime import Runtime

Document = dict[str, Any]

# Request-body fields (component schema -> fields) that name a tier of the portfolio.
TIER_FIELDS = {
    "RouteRequest": ("min_tier", "max_tier"),
    "QualityRequest": ("tier",),
    "FeedbackRequest": ("tier", "tier_used", "final_tier", "label"),
}
# Request bodies whose ``prompt`` is held to ``policy.max_prompt_chars``.
PROMPT_BODIES = ("RouteRequest", "QualityRequest", "FeedbackRequest")
# Operations that read their JSON body themselves (documented inline); ``model`` names a tier,
# an endpoint or ``auto``.
GATEWAY_PATHS = ("/v1/chat/completions", "/api/chat", "/api/generate")
TIER_HEADERS = ("x-tier-router-min-tier", "x-tier-router-max-tier")
MODEL_ACTION_PATH = "/v1/admin/models/{endpoint}/{action}"


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the runtime in ``app.state.runtime``."""
    generic = app.openapi  # FastAPI's own, which builds the document once and keeps it
    stated: tuple[Runtime, Document] | None = None

    def openapi() -> Document:
        nonlocal stated
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        if runtime is None:
            return generic()
        if stated is None or stated[0] is not runtime:
            stated = (runtime, for_runtime(generic(), runtime))
        return stated[1]

    setattr(app, "openapi", openapi)  # noqa: B010 (mypy: assigning to a method)


def for_runtime(document: Document, runtime: Runtime) -> Document:
    """A copy of ``document`` with the portfolio's names and limits stated."""
    doc = copy.deepcopy(document)
    portfolio = runtime.portfolio
    policy = portfolio.policy
    tiers: list[str | None] = [*portfolio.tier_names, "", None]
    endpoints = [e.name for e in portfolio.all_endpoints()]
    models: list[str | None] = ["auto", "tier-router", *portfolio.tier_names, *endpoints, "", None]
    schemas: dict[str, Document] = doc.get("components", {}).get("schemas", {})

    for name, fields in TIER_FIELDS.items():
        for field in fields:
            _update(schemas, name, field, enum=tiers)
    for name in PROMPT_BODIES:
        _update(schemas, name, "prompt", maxLength=policy.max_prompt_chars)
    for path in GATEWAY_PATHS:
        operation = doc.get("paths", {}).get(path, {}).get("post", {})
        inline = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        _update({"body": inline.get("schema", {})}, "body", "model", enum=models)
    _update(schemas, "BatchRequest", "items", maxItems=policy.max_batch)
    _update(schemas, "FeedbackBatchRequest", "records", maxItems=policy.max_batch)

    for item in doc.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter["name"] in TIER_HEADERS:
                    parameter["schema"]["enum"] = [*portfolio.tier_names, ""]
    action = doc.get("paths", {}).get(MODEL_ACTION_PATH, {}).get("post")
    if action is not None:
        ollama = [e.name for e in portfolio.all_endpoints() if e.api == "ollama"]
        for parameter in action.get("parameters", []):
            if parameter["name"] == "endpoint" and ollama:  # none: any name is a 422
                parameter["schema"]["enum"] = ollama
    return doc


def _update(schemas: dict[str, Document], name: str, field: str, **facts: Any) -> None:
    properties = schemas.get(name, {}).get("properties", {})
    if field in properties:
        properties[field].update(facts)

