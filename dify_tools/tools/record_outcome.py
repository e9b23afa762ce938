"""The ``record_outcome`` tool: how good an answer was -> one outcome record in tier-router."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage

from tier_router_client import TierRouterClient
from tools.inputs import InputError, number, text

SOURCES = ("user", "judge", "check")
#: Optional text fields of the record, sent only when set.
OPTIONAL_TEXT = ("answer", "finish_reason", "category", "endpoint", "request_id")


def outcome_body(params: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /v1/feedback`` record for the tool's inputs; empty inputs are left out."""
    prompt = text(params, "prompt", required=True, allow_empty=True)
    tier = text(params, "tier", required=True)
    score = number(params, "score", required=True, at_least=0, at_most=1)
    body: dict[str, Any] = {"prompt": prompt, "tier": tier, "score": float(score or 0)}
    for name in OPTIONAL_TEXT:  # Dify passes "" for an optional input left empty
        value = text(params, name, allow_empty=name == "answer")  # the answer as it was
        if value is not None and value.strip():
            body[name] = value
    avg_logprob = number(params, "avg_logprob", at_most=0)
    if avg_logprob is not None:
        body["avg_logprob"] = float(avg_logprob)
    source = text(params, "source")
    if source is not None:
        if source not in SOURCES:
            raise InputError(f"The input 'source' must be one of {', '.join(SOURCES)}, "
                             f"not {source!r}.")
        body["source"] = source
    return body


class RecordOutcomeTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        body = outcome_body(tool_parameters)
        client = TierRouterClient.from_credentials(self.runtime.credentials)
        answer = client.record_outcome(body)
        outputs = {
            "status": str(answer.get("status", "")),
            "request_id": str(answer.get("request_id") or body.get("request_id", "")),
            "tier": body["tier"],
            "score": body["score"],
        }
        yield self.create_json_message(answer)
        for name, value in outputs.items():
            yield self.create_variable_message(name, value)
        yield self.create_text_message(
            f"recorded score {outputs['score']:g} for tier {outputs['tier']}"
            + (f" (request {outputs['request_id']})" if outputs["request_id"] else ""))
