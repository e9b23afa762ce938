"""The ``check_quality`` tool: prompt + answer -> escalate, reasons, score, next tier."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage

from tier_router_client import TierRouterClient
from tools.inputs import InputError, number, text


def quality_variables(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """The typed outputs declared in check_quality.yaml's ``output_schema``."""
    nxt = verdict.get("next_endpoint") or {}
    return {
        "escalate": bool(verdict["escalate"]),
        "reasons": list(verdict.get("reasons", [])),
        "score": float(verdict["score"]),
        "tier": verdict.get("tier", ""),
        "next_tier": verdict.get("next_tier") or "",
        "next_endpoint": nxt.get("name", ""),
        "next_model": nxt.get("model", ""),
        "category": verdict.get("category") or "",
    }


class CheckQualityTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        answer = tool_parameters.get("response")
        if answer is None:
            raise InputError("The input 'response' is missing: connect the LLM node's text.")
        body: dict[str, Any] = {
            "prompt": text(tool_parameters, "prompt", required=True, allow_empty=True),
            # an empty answer is a legitimate thing to check: it escalates as "empty"
            "response": text(tool_parameters, "response", allow_empty=True) or "",
        }
        for name in ("tier", "finish_reason"):
            value = text(tool_parameters, name)
            if value:
                body[name] = value
        max_tokens = number(tool_parameters, "max_tokens", whole=True, above=0)
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        avg_logprob = number(tool_parameters, "avg_logprob", at_most=0)
        if avg_logprob is not None:
            body["avg_logprob"] = avg_logprob
        client = TierRouterClient.from_credentials(self.runtime.credentials)
        verdict = client.check_quality(body)
        outputs = quality_variables(verdict)
        yield self.create_json_message(verdict)
        for name, value in outputs.items():
            yield self.create_variable_message(name, value)
        if not outputs["escalate"]:
            summary = f"the answer passes (score {outputs['score']:.2f})"
        elif outputs["next_tier"]:
            summary = (f"escalate to {outputs['next_tier']} ({', '.join(outputs['reasons'])}; "
                       f"score {outputs['score']:.2f})")
        else:
            summary = (f"the answer is weak ({', '.join(outputs['reasons'])}; score "
                       f"{outputs['score']:.2f}) but {outputs['tier']} is the top tier")
        yield self.create_text_message(summary)
