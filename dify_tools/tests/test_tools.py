"""The tools and the provider, loaded by the SDK and invoked in-process against a real service."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from dify_plugin import ToolProvider
from dify_plugin.core.plugin_registration import PluginRegistration
from dify_plugin.errors.tool import ToolProviderCredentialValidationError

from conftest import PROVIDER, Service, invoke, stored_outcome


def provider(registration: PluginRegistration) -> ToolProvider:
    cls = registration.get_tool_provider_cls(PROVIDER)
    assert cls is not None
    return cls()


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


@pytest.mark.parametrize("empty", ["", " ", None])
def test_check_quality_empty_optional_numbers_are_unset(registration: PluginRegistration,
                                                        service: Service,
                                                        empty: str | None) -> None:
    """Dify passes an optional number left empty as None (its cast of "") or as ""."""
    base = {"prompt": "Explain the trade-offs of remote work for a startup.",
            "response": "Remote work saves office costs and widens hiring, but it makes "
                        "onboarding and informal",
            "tier": "simple", "finish_reason": "length"}
    unset = invoke(registration, "check_quality", service.credentials, base)
    empty_numbers = invoke(registration, "check_quality", service.credentials,
                           {**base, "max_tokens": empty, "avg_logprob": empty})
    assert empty_numbers["json"] == unset["json"]
    assert "truncated" in unset["variables"]["reasons"]  # no cap given: cut off


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


# -- record_outcome ---------------------------------------------------------------------------


def test_record_outcome_posts_the_record_and_emits_its_variables(
        registration: PluginRegistration, service: Service) -> None:
    prompt = "Is this review positive or negative? 'The soup was cold.'"
    routed = invoke(registration, "route_request", service.credentials, {"prompt": prompt})
    request_id = routed["variables"]["request_id"]
    out = invoke(registration, "record_outcome", service.credentials, {
        "prompt": prompt, "tier": routed["variables"]["tier"], "score": "1",
        "answer": "Negative.", "request_id": request_id, "source": "user",
        "finish_reason": "stop", "avg_logprob": -0.1, "category": "classification",
        "endpoint": routed["variables"]["endpoint"]})
    (answer,) = out["json"]
    assert answer == {"status": "recorded", "request_id": request_id}
    assert out["variables"] == {"status": "recorded", "request_id": request_id,
                                "tier": "simple", "score": 1.0}
    assert set(out["variables"]) == declared(registration, "record_outcome")
    assert out["text"] == [f"recorded score 1 for tier simple (request {request_id})"]
    stored = stored_outcome(service, request_id)
    stored.pop("ts")
    assert stored == {"prompt": prompt, "tier": "simple", "score": 1.0, "answer": "Negative.",
                      "finish_reason": "stop", "avg_logprob": -0.1,
                      "category": "classification",
                      "endpoint": routed["variables"]["endpoint"], "request_id": request_id,
                      "source": "user"}


def test_record_outcome_leaves_empty_optional_inputs_out(registration: PluginRegistration,
                                                         service: Service) -> None:
    """A node with its optional inputs left empty, as Dify passes them ("" or None)."""
    out = invoke(registration, "record_outcome", service.credentials, {
        "prompt": "Summarize the plot of Hamlet.", "tier": "medium", "score": 0.5,
        "answer": "", "request_id": "", "source": None, "finish_reason": "",
        "avg_logprob": "", "category": None, "endpoint": " "})
    variables = out["variables"]
    assert variables["status"] == "recorded" and variables["score"] == 0.5
    assert variables["request_id"] == out["json"][0]["request_id"] and variables["request_id"]
    stored = stored_outcome(service, variables["request_id"])
    # only what was given, and the service's defaults: no empty fields
    assert set(stored) == {"ts", "prompt", "tier", "score", "request_id", "source"}
    assert (stored["tier"], stored["score"], stored["source"]) == ("medium", 0.5, "user")


def test_record_outcome_sends_only_the_inputs_that_are_set() -> None:
    from tools.record_outcome import outcome_body

    assert outcome_body({"prompt": "hi", "tier": " simple ", "score": "0", "answer": "  ",
                         "source": "", "avg_logprob": None, "request_id": "r-1"}) == {
        "prompt": "hi", "tier": "simple", "score": 0.0, "request_id": "r-1"}
    assert outcome_body({"prompt": "hi", "tier": "simple", "score": 0.25,
                         "answer": " An answer.\n", "source": "judge"}) == {
        "prompt": "hi", "tier": "simple", "score": 0.25, "answer": " An answer.\n",
        "source": "judge"}


@pytest.mark.parametrize(("params", "needle"), [
    ({"tier": "simple", "score": 1}, "The input 'prompt' is empty"),
    ({"prompt": "hi", "score": 1}, "The input 'tier' is empty"),
    ({"prompt": "hi", "tier": "simple"}, "The input 'score' is empty"),
    ({"prompt": "hi", "tier": "simple", "score": ""}, "The input 'score' is empty"),
    ({"prompt": "hi", "tier": "simple", "score": "good"},
     "The input 'score' must be a number, not 'good'"),
    ({"prompt": "hi", "tier": "simple", "score": 1.5}, "The input 'score' must be at most 1"),
    ({"prompt": "hi", "tier": "simple", "score": -0.5},
     "The input 'score' must be at least 0"),
    ({"prompt": "hi", "tier": "simple", "score": 1, "source": "robot"},
     "The input 'source' must be one of user, judge, check, not 'robot'"),
    ({"prompt": "hi", "tier": "simple", "score": 1, "avg_logprob": 0.3},
     "The input 'avg_logprob' must be at most 0"),
])
def test_record_outcome_bad_inputs_are_named(registration: PluginRegistration,
                                             closed_port_url: str, params: dict[str, Any],
                                             needle: str) -> None:
    """Refused before any call: the service URL here has nothing listening."""
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")) as caught:
        invoke(registration, "record_outcome", {"service_url": closed_port_url}, params)
    assert type(caught.value).__name__ == "InputError"


def test_record_outcome_service_refusals_are_clear(registration: PluginRegistration,
                                                  service: Service) -> None:
    with pytest.raises(Exception, match=r"tier-router refused the input \(HTTP 422\): ") as bad:
        invoke(registration, "record_outcome", service.credentials,
               {"prompt": "hi", "tier": "gold", "score": 1})
    assert type(bad.value).__name__ == "ServiceError" and "gold" in str(bad.value)
    with pytest.raises(Exception, match="the API key was refused"):
        invoke(registration, "record_outcome", {**service.credentials, "api_key": "nope"},
               {"prompt": "hi", "tier": "simple", "score": 1})


class _RateLimited(BaseHTTPRequestHandler):
    """Answers every POST as a rate-limited tier-router does: 429, Retry-After, detail."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"detail": "too many feedback records"}).encode()
        self.send_response(429)
        self.send_header("Retry-After", "7")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_record_outcome_rate_limited_says_when_to_retry(
        registration: PluginRegistration) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RateLimited)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(Exception, match=(
                r"tier-router is rate limiting POST /v1/feedback \(HTTP 429: too many feedback "
                r"records\); retry after 7 s\.")) as caught:
            invoke(registration, "record_outcome", {"service_url": url},
                   {"prompt": "hi", "tier": "simple", "score": 1})
        assert type(caught.value).__name__ == "ServiceError"
    finally:
        server.shutdown()
        server.server_close()
