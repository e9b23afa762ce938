"""Limits that count the whole conversation, and the session map's bytes (README, "The
OpenAI-compatible gateway")."""

from __future__ import annotations

from fastapi.testclient import TestClient

from classifier_service.gateway.engine import SESSION_LIMIT
from classifier_service.gateway.limits import conversation_chars
from classifier_service.runtime import Runtime

SHORT = "Is this review positive or negative? 'Great phone.'"


def _conversation(chars: int) -> list[dict[str, object]]:
    """``chars`` characters spread over system, assistant and tool turns, then a short
    last user message."""
    part = "word " * (chars // 15)
    return [{"role": "system", "content": part},
            {"role": "user", "content": [{"type": "text", "text": part}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": part}}]},
            {"role": "tool", "tool_call_id": "c1", "content": ""},
            {"role": "user", "content": SHORT}]


def test_every_message_counts_towards_the_size_limit(client: TestClient) -> None:
    messages = _conversation(70_000)  # over policy.max_prompt_chars (64000)
    assert conversation_chars(messages) > 64_000
    openai = client.post("/v1/chat/completions", json={"model": "auto", "messages": messages})
    assert openai.status_code == 413, openai.text
    assert "the conversation has" in openai.json()["error"]["message"]
    part = "word " * 5_000  # Ollama's messages: text content only
    ollama = [{"role": r, "content": part} for r in ("system", "user", "assistant")]
    chat = client.post("/api/chat", json={"model": "simple", "messages": [
        *ollama, {"role": "user", "content": SHORT}]})
    assert chat.status_code == 413 and "max_prompt_chars" in chat.json()["error"]


def test_every_message_counts_towards_the_context(client: TestClient,
                                                  runtime: Runtime) -> None:
    """A short question at the end of a 24,000-character conversation (about 6,000 tokens)
    goes to an endpoint whose context holds the whole conversation."""
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    messages = _conversation(24_000)
    plan = gateway.plan(runtime, "auto", messages)
    assert plan.chain[0].context_length * 4 >= conversation_chars(messages)
    alone = gateway.plan(runtime, "auto", [{"role": "user", "content": SHORT}])
    assert alone.chain[0].context_length < plan.chain[0].context_length


def test_sessions_are_bounded_in_bytes_not_only_in_count(client: TestClient,
                                                         runtime: Runtime) -> None:
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    ids = [f"{i}-" + "s" * 2_000_000 for i in range(100)]  # 100 ids of 2 MB each
    for session in ids:
        gateway.remember(session, "complex")
    kept = sum(len(key) for key in gateway._sessions)
    assert kept <= 100 * 33, f"{kept} characters kept for 100 sessions"
    # a long id still works as a session: its tier sticks
    plan = gateway.plan(runtime, "auto", [{"role": "user", "content": SHORT}],
                        session=ids[7])
    assert plan.reason == "session" and plan.tier == "complex"
    short = "user-42"
    gateway.remember(short, "medium")
    assert short in gateway._sessions and len(gateway._sessions) <= SESSION_LIMIT
