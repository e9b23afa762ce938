"""The ``route_request`` tool: prompt -> tier, confidence, category, endpoint, fallback."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage

from tier_router_client import TierRouterClient
from tools.inputs import text


def route_variables(decision: Mapping[str, Any]) -> dict[str, Any]:
    """The typed outputs declared in route_request.yaml's ``output_schema``."""
    endpoint = decision.get("endpoint") or {}
    return {
        "tier": decision["tier"],
        "confidence": float(decision["confidence"]),
        "category": decision.get("category") or "",
        "endpoint": endpoint.get("name", ""),
        "model": endpoint.get("model", ""),
        "base_url": endpoint.get("base_url", ""),
        "fallback": [ep["name"] for ep in decision.get("fallback", [])],
        "reason": decision.get("reason", ""),
        "request_id": decision.get("request_id", ""),
    }


class RouteRequestTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        body: dict[str, Any] = {"prompt": text(tool_parameters, "prompt", required=True,
                                               allow_empty=True)}
        for name in ("agent", "min_tier", "max_tier"):
            value = text(tool_parameters, name)
            if value:
                body[name] = value
        client = TierRouterClient.from_credentials(self.runtime.credentials)
        decision = client.route(body)
        outputs = route_variables(decision)
        yield self.create_json_message(decision)
        for name, value in outputs.items():
            yield self.create_variable_message(name, value)
        category = f", task kind {outputs['category']}" if outputs["category"] else ""
        yield self.create_text_message(
            f"tier {outputs['tier']} (confidence {outputs['confidence']:.2f}{category}): "
            f"endpoint {outputs['endpoint']}, model {outputs['model']}; "
            f"{decision.get('reason_detail', outputs['reason'])}")
