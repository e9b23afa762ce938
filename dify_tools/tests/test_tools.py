"""The tools and the provider, loaded by the SDK and invoked in-process against a real service."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from dify_plugin import DifyPluginEnv, Tool, ToolProvider
from dify_plugin.core.plugin_registration import PluginRegistration
from dify_plugin.entities.tool import ToolInvokeMessage
from dify_plugin.errors.tool import ToolProviderCredentialValidationError

from conftest import PLUGIN_DIR, Service

PROVIDER = "tier_router"
MessageType = ToolInvokeMessage.MessageType


@pytest.fixture(scope="module")
def registration() -> Iterator[PluginRegistration]:
    """The plugin as the SDK loads it for `python -m main`: manifest, YAML, classes."""
    with contextlib.chdir(PLUGIN_DIR):
        yield PluginRegistration(DifyPluginEnv())


def provider(registration: PluginRegistration) -> ToolProvider:
    cls = registration.get_tool_provider_cls(PROVIDER)
    assert cls is not None
    return cls()


def invoke(registration: PluginRegistration, tool: str, credentials: dict[str, str],
           params: dict[str, Any]) -> dict[str, Any]:
    """Run one tool; its JSON message, variables and text, as Dify would receive them."""
    cls = registration.get_tool_cls(PROVIDER, tool)
    assert cls is not None and issubclass(cls, Tool)
    messages = list(cls.from_credentials(credentials, user_id="test").invoke(dict(params)))
    out: dict[str, Any] = {"json": [], "variables": {}, "text": []}
    for message in messages:
        if message.type == MessageType.JSON:
            out["json"].append(message.message.json_object)  # type: ignore[union-attr]
        elif message.type == MessageType.VARIABLE:
            variable = message.message
            out["variables"][variable.variable_name] = variable.variable_value  # type: ignore[union-attr]
        elif message.type == MessageType.TEXT:
            out["text"].append(message.message.text)  # type: ignore[union-attr]
    return out


def declared(registration: PluginRegistration, tool: str) -> set[str]:
    config = registration.tools_mapping[PROVIDER][2][tool][0]
    assert config.output_schema is not None
    return set(config.output_schema["properties"])


def test_credentials_are_checked_against_the_portfolio(registration: PluginRegistration,
                                                       service: Service) -> None:
    provider(registration).validate_credentials(service.credentials)
    # the gateway's URL (…/v1), as people enter it for OpenAI clients, works too
    provider(registration).validate_credentials({**service.credentials,
                                                 "service_url": service.url + "/v1/"})


@pytest.mark.parametrize(("credentials", "needle"), [
    ({"api_key": "wrong-key"}, "the API key was refused (HTTP 401"),
    ({"api_key": ""}, "no API key was sent (HTTP 401"),
    ({"service_url": ""}, "The service URL is empty"),
    ({"service_url": "127.0.0.1:8700"}, "is not an http:// or https:// URL"),
])
def test_bad_credentials_fail_with_a_clear_message(registration: PluginRegistration,
                                                   service: Service,
                                                   credentials: dict[str, str],
                                                   needle: str) -> None:
    with pytest.raises(ToolProviderCredentialValidationError, match=needle.replace("(", r"\(")):
        provider(registration).validate_credentials({**service.credentials, **credentials})


def test_credentials_for_a_closed_port_or_another_server_fail(registration: PluginRegistration,
                                                              service: Service,
                                                              closed_port_url: str) -> None:
    with pytest.raises(ToolProviderCredentialValidationError, match="Cannot reach tier-router"):
        provider(registration).validate_credentials({"service_url": closed_port_url})
    with pytest.raises(ToolProviderCredentialValidationError, match="HTTP 404"):
        provider(registration).validate_credentials({**service.credentials,
                                                     "service_url": service.url + "/nowhere"})


def test_route_request_emits_json_typed_variables_and_text(registration: PluginRegistration,
                                                           service: Service) -> None:
    out = invoke(registration, "route_request", service.credentials,
                 {"prompt": "Is this review positive or negative? 'The soup was cold.'"})
    (decision,) = out["json"]
    variables = out["variables"]
    assert set(variables) == declared(registration, "route_request")
    assert variables["tier"] == decision["tier"] == "simple"
    assert variables["confidence"] == pytest.approx(decision["confidence"])
    assert 0 < variables["confidence"] <= 1
    assert variables["category"] == decision["category"] == "classification"
    assert variables["endpoint"] == decision["endpoint"]["name"]
    assert variables["model"] == decision["endpoint"]["model"]
    assert variables["fallback"] == [ep["name"] for ep in decision["fallback"]]
    assert variables["request_id"] == decision["request_id"] and variables["request_id"]
    assert out["text"][0].startswith("tier simple (confidence ")


def test_route_request_passes_agent_and_bounds(registration: PluginRegistration,
                                               service: Service) -> None:
    research = invoke(registration, "route_request", service.credentials,
                      {"prompt": "What is 2 + 2?", "agent": "research", "min_tier": "",
                       "max_tier": None})
    assert research["variables"]["tier"] == "complex"
    assert research["variables"]["reason"] == "agent"
    capped = invoke(registration, "route_request", service.credentials,
                    {"prompt": "Design and prove a distributed consensus protocol.",
                     "max_tier": "simple"})
    assert capped["variables"]["tier"] == "simple"
    assert capped["json"][0]["adjustments"] == ["max_tier"]


def test_check_quality_escalates_a_weak_answer(registration: PluginRegistration,
                                               service: Service) -> None:
    out = invoke(registration, "check_quality", service.credentials, {
        "prompt": "Explain why the sky is blue.", "response": "I'm not sure, I don't know.",
        "tier": "simple", "finish_reason": "stop", "max_tokens": 512.0, "avg_logprob": "-0.2"})
    variables = out["variables"]
    assert set(variables) == declared(registration, "check_quality")
    assert variables["escalate"] is True and "uncertain" in variables["reasons"]
    assert variables["next_tier"] == "medium" and variables["next_endpoint"]
    assert 0 <= variables["score"] < 0.6
    assert out["text"] == [f"escalate to medium ({', '.join(variables['reasons'])}; "
                           f"score {variables['score']:.2f})"]


def test_check_quality_passes_a_good_answer_and_handles_the_top_tier(
        registration: PluginRegistration, service: Service) -> None:
    good = invoke(registration, "check_quality", service.credentials, {
        "prompt": "Is this review positive or negative? 'Loved it!'", "response": "Positive."})
    assert good["variables"]["escalate"] is False
    assert good["variables"]["next_tier"] == "" and good["variables"]["next_endpoint"] == ""
    empty = invoke(registration, "check_quality", service.credentials, {
        "prompt": "Summarize the plot of Hamlet.", "response": "", "tier": "complex"})
    assert empty["variables"]["escalate"] is True and "empty" in empty["variables"]["reasons"]
    assert empty["variables"]["next_tier"] == ""  # complex is the top tier
    assert "complex is the top tier" in empty["text"][0]


@pytest.mark.parametrize(("tool", "params", "needle"), [
    ("route_request", {"prompt": "   "}, "prompt: Value error, prompt must not be empty"),
    ("route_request", {}, "The input 'prompt' is empty"),
    ("route_request", {"prompt": "hi", "max_tier": "huge"}, "HTTP 422"),
    ("check_quality", {"prompt": "hi"}, "The input 'response' is missing"),
    ("check_quality", {"prompt": "hi", "response": "ok", "avg_logprob": "high"},
     "The input 'avg_logprob' must be a number, not 'high'"),
    ("check_quality", {"prompt": "hi", "response": "ok", "avg_logprob": 0.5},
     "The input 'avg_logprob' must be at most 0"),
    ("check_quality", {"prompt": "hi", "response": "ok", "max_tokens": 12.5},
     "The input 'max_tokens' must be a whole number"),
    ("check_quality", {"prompt": "hi", "response": "ok", "tier": "gold"}, "gold"),
])
def test_bad_inputs_become_clear_tool_errors(registration: PluginRegistration,
                                             service: Service, tool: str,
                                             params: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError if "input" in needle else Exception) as caught:
        invoke(registration, tool, service.credentials, params)
    assert needle in str(caught.value)
    assert type(caught.value).__name__ in {"InputError", "ServiceError"}


def test_tool_errors_name_the_service_problem(registration: PluginRegistration,
                                              service: Service, closed_port_url: str) -> None:
    with pytest.raises(Exception, match="the API key was refused") as refused:
        invoke(registration, "route_request", {**service.credentials, "api_key": "nope"},
               {"prompt": "hello"})
    assert type(refused.value).__name__ == "ServiceError"
    with pytest.raises(Exception, match=f"Cannot reach tier-router at {closed_port_url}"):
        invoke(registration, "check_quality", {"service_url": closed_port_url},
               {"prompt": "hello", "response": "hi"})
