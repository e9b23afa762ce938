"""The gateway test stack: the service over real uvicorn in front of a fake Ollama and a fake
OpenAI-compatible server (the ``stack`` fixture of conftest.py builds it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openai import OpenAI
from openai.types.chat import ChatCompletion

if TYPE_CHECKING:
    from tests.doubles import Double  # it imports conftest, which imports this module

ESSAY = ("Remote work widens the hiring pool and saves office rent, but it slows informal "
         "learning and asks managers to write more down. Many teams settle on two office "
         "days a week, which keeps most of the benefits while limiting the costs.")


@dataclass
class Stack:
    url: str
    ollama: Double
    openai: Double
    client: OpenAI


def portfolio(ollama_url: str, openai_url: str, dead_url: str) -> str:
    return f"""
version: 1
tiers:
  - name: simple
    endpoints:
      - {{name: small-a, api: ollama, base_url: "{ollama_url}", model: small-a,
         context_length: 2048, keep_alive: "-1"}}
      - {{name: small-b, api: ollama, base_url: "{ollama_url}", model: small-b,
         context_length: 2048, keep_alive: "10m"}}
  - name: medium
    endpoints:
      - {{name: mid, api: ollama, base_url: "{ollama_url}", model: mid, context_length: 4096}}
  - name: complex
    endpoints:
      - {{name: big, api: openai, base_url: "{openai_url}/v1", model: big-model,
         context_length: 8192}}
specialists:
  - {{name: ghost, api: openai, base_url: "{dead_url}/v1", model: ghost, tier: medium}}
agents:
  support: {{tier: simple}}
policy: {{max_escalations: 2, failover_cooldown_s: 60, backend_timeout_s: 2}}
"""


def ask(stack: Stack, prompt: str, **kw: Any) -> ChatCompletion:
    reply: ChatCompletion = stack.client.chat.completions.create(
        model=str(kw.pop("model", "auto")), messages=[{"role": "user", "content": prompt}],
        **kw)
    return reply


def route_of(reply: ChatCompletion) -> dict[str, object]:
    info: dict[str, object] = reply.model_extra["tier_router"]  # type: ignore[index]
    return info
