"""End to end over the plugin's stdio protocol: `python -m main` in the unpacked package.

The plugin daemon starts the plugin this way and writes one JSON request per line to its
stdin; the plugin answers with ``session`` events on stdout (a ``stream`` per message, then
``end``, or ``error``).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import pytest

from conftest import Package, Service


class PluginProcess:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stdout: IO[bytes]) -> None:
        for raw in stdout:
            line = raw.strip()
            if line:
                self.events.put(json.loads(line))

    def send(self, session_id: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """One request; the session's messages up to its end (errors raise)."""
        assert self.proc.stdin is not None
        line = json.dumps({"session_id": session_id, "event": "request", "data": data})
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        messages = []
        deadline = time.monotonic() + 60
        while True:
            event = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            if event.get("event") != "session" or event.get("session_id") != session_id:
                continue  # heartbeats, logs
            kind = event["data"]["type"]
            if kind == "end":
                return messages
            messages.append(event["data"])


@pytest.fixture(scope="module")
def plugin(package: Package) -> Iterator[PluginProcess]:
    proc = subprocess.Popen([sys.executable, "-m", "main"], cwd=package.unpacked,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        process = PluginProcess(proc)
        # the first thing on stdout is the plugin's declaration
        first = process.events.get(timeout=60)
        assert first["name"] == "tier_router" and first["author"] == "tier-router"
        yield process
    finally:
        proc.kill()
        proc.wait()


def tool_request(service: Service, tool: str, params: dict[str, Any],
                 api_key: str | None = None) -> dict[str, Any]:
    credentials = {**service.credentials, **({"api_key": api_key} if api_key else {})}
    return {"type": "tool", "action": "invoke_tool", "user_id": "u1", "provider": "tier_router",
            "tool": tool, "credentials": credentials, "tool_parameters": params}


def test_validate_credentials_over_stdio(plugin: PluginProcess, service: Service) -> None:
    request = {"type": "tool", "action": "validate_tool_credentials", "user_id": "u1",
               "provider": "tier_router", "credentials": service.credentials}
    (answer,) = plugin.send("validate-ok", request)
    assert answer == {"type": "stream", "data": {"result": True}}
    (refused,) = plugin.send("validate-bad", {**request, "credentials": {
        **service.credentials, "api_key": "wrong"}})
    assert refused["type"] == "error"
    assert refused["data"]["error_type"] == "ToolProviderCredentialValidationError"
    assert "the API key was refused" in refused["data"]["message"]


def test_route_and_check_quality_over_stdio(plugin: PluginProcess, service: Service) -> None:
    routed = plugin.send("route-1", tool_request(service, "route_request", {
        "prompt": "Write a haiku about autumn rain."}))
    kinds = [m["data"]["type"] for m in routed]
    assert kinds[0] == "json" and kinds[-1] == "text" and kinds.count("variable") == 9
    variables = {m["data"]["message"]["variable_name"]: m["data"]["message"]["variable_value"]
                 for m in routed if m["data"]["type"] == "variable"}
    decision = routed[0]["data"]["message"]["json_object"]
    assert variables["tier"] == decision["tier"] and variables["tier"] in {
        "simple", "medium", "complex"}
    checked = plugin.send("quality-1", tool_request(service, "check_quality", {
        "prompt": "Write a haiku about autumn rain.", "response": "",
        "tier": variables["tier"] if variables["tier"] != "complex" else "simple"}))
    verdict = {m["data"]["message"]["variable_name"]: m["data"]["message"]["variable_value"]
               for m in checked if m["data"]["type"] == "variable"}
    assert verdict["escalate"] is True and verdict["reasons"] == ["empty"]
    assert verdict["next_tier"]


def test_check_quality_with_empty_numbers_and_record_outcome_over_stdio(
        plugin: PluginProcess, service: Service) -> None:
    checked = plugin.send("quality-empty", tool_request(service, "check_quality", {
        "prompt": "Summarize the plot of Hamlet.", "response": "", "tier": "simple",
        "finish_reason": "", "max_tokens": None, "avg_logprob": ""}))
    verdict = {m["data"]["message"]["variable_name"]: m["data"]["message"]["variable_value"]
               for m in checked if m["data"]["type"] == "variable"}
    assert verdict["escalate"] is True and verdict["reasons"] == ["empty"]
    recorded = plugin.send("outcome-1", tool_request(service, "record_outcome", {
        "prompt": "Summarize the plot of Hamlet.", "tier": "simple",
        "score": 0 if verdict["escalate"] else 1, "answer": "", "request_id": "",
        "source": "check", "avg_logprob": None}))
    kinds = [m["data"]["type"] for m in recorded]
    assert kinds == ["json", "variable", "variable", "variable", "variable", "text"]
    outputs = {m["data"]["message"]["variable_name"]: m["data"]["message"]["variable_value"]
               for m in recorded if m["data"]["type"] == "variable"}
    assert outputs["status"] == "recorded" and outputs["request_id"]
    assert outputs["tier"] == "simple" and outputs["score"] == 0


def test_a_tool_error_reaches_dify_as_a_clear_message(plugin: PluginProcess,
                                                      service: Service) -> None:
    (error,) = plugin.send("route-bad", tool_request(service, "route_request", {
        "prompt": "hello", "max_tier": "huge"}))
    assert error["type"] == "error" and error["data"]["error_type"] == "ServiceError"
    assert error["data"]["message"].startswith("tier-router refused the input (HTTP 422): ")
    assert "max_tier: unknown tier 'huge'" in error["data"]["message"]
