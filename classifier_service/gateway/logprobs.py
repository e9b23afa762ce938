"""Token logprobs for the learned answer check: asked of the servers, read, and kept from
clients that did not ask for them.

When the loaded outcome model's check was trained on answers with ``avg_logprob``, the gateway
asks each server for ``logprobs: true, top_logprobs: 1`` (OpenAI-compatible servers: vLLM,
llama.cpp's server; Ollama's ``/api/chat`` takes the same two fields and answers a top-level
``logprobs`` list, which :mod:`.ollama_wire` turns into OpenAI's shape). The mean of the
answer's token logprobs (``choices[0].logprobs.content[].logprob``) feeds the check. A client
that asked for logprobs itself gets them as the server sent them; for one that did not they are
removed from the answer.
"""

from __future__ import annotations

import math
from typing import Any


def client_asked(request: dict[str, Any]) -> bool:
    return request.get("logprobs") is True


def ask(request: dict[str, Any]) -> dict[str, Any]:
    """The request with logprobs asked for (one alternative per token: the least to send)."""
    return {**request, "logprobs": True, "top_logprobs": 1}


def avg_logprob(body: dict[str, Any]) -> float | None:
    """The mean token logprob of the first choice; None when the server sent none."""
    try:
        tokens = body["choices"][0]["logprobs"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(tokens, list):
        return None
    values = [float(t["logprob"]) for t in tokens if isinstance(t, dict)
              and isinstance(t.get("logprob"), int | float) and not isinstance(
                  t.get("logprob"), bool) and math.isfinite(float(t["logprob"]))]
    return sum(values) / len(values) if values else None


def strip(body: dict[str, Any]) -> None:
    """Remove every choice's ``logprobs`` (in place): the client did not ask for them."""
    for choice in body.get("choices") or []:
        if isinstance(choice, dict):
            choice.pop("logprobs", None)
