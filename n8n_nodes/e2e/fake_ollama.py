"""Serve the test suite's fake Ollama (tests/doubles.py) on 127.0.0.1 for the n8n end-to-end run.

    PYTHONPATH=<repo> python n8n_nodes/e2e/fake_ollama.py --port 11500 \
        --answer 'tiny:1b=I am not sure.' --answer 'mid:13b=A full answer ...' \
        --tool-call 'agent:1b={"name": "route_request", "arguments": {"prompt": "..."}}' \
        --answer 'agent:1b=Routed.'

Each ``--answer MODEL=TEXT`` scripts what that model says; the double speaks Ollama's real API
(/api/chat with NDJSON streaming, /api/generate, /api/tags, /api/ps). ``--tool-call MODEL=JSON``
makes that model an agent's model: asked without a tool result in the conversation, it calls the
tool (JSON: ``name`` and ``arguments``); once the conversation holds a tool result, it answers
its ``--answer`` text. That makes one AI Agent run with one tool call deterministic.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn

from tests.doubles import Double, Script, fake_ollama


def _has_tool_result(body: dict[str, Any]) -> bool:
    return any(message.get("role") == "tool" for message in body.get("messages", []))


def call_tool_first(double: Double, tool_calls: dict[str, dict[str, Any]]) -> None:
    """Give the models in ``tool_calls`` a tool call first, then their scripted answer."""
    scripted = double.script

    def script(model: str) -> Script:
        answer = scripted(model)
        if model not in tool_calls:
            return answer
        # The double records the request's body before it asks for the model's script.
        if _has_tool_result(double.requests[-1]):
            return answer
        return Script(tool_call=tool_calls[model])

    double.script = script  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answer", action="append", default=[], metavar="MODEL=TEXT")
    parser.add_argument("--tool-call", action="append", default=[], metavar="MODEL=JSON")
    args = parser.parse_args()
    double = fake_ollama()
    for spec in args.answer:
        model, sep, text = spec.partition("=")
        if not sep:
            parser.error(f"--answer {spec!r}: expected MODEL=TEXT")
        double.scripts[model] = Script(content=text)
    tool_calls: dict[str, dict[str, Any]] = {}
    for spec in args.tool_call:
        model, sep, call = spec.partition("=")
        try:
            tool_calls[model] = json.loads(call) if sep else {}
        except json.JSONDecodeError as error:
            parser.error(f"--tool-call {spec!r}: {error}")
        if not isinstance(tool_calls[model].get("name"), str) or not isinstance(
                tool_calls[model].get("arguments"), dict):
            parser.error(f"--tool-call {spec!r}: expected MODEL=JSON with name and arguments")
    call_tool_first(double, tool_calls)
    uvicorn.run(double.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
