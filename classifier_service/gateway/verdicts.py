"""Pairwise judging: a judge model compares two answers to one request, in both orders.

The judge prompt is fixed (:data:`JUDGE_SYSTEM`, :data:`JUDGE_USER`): the request, answer A,
answer B, and the instruction to reply with one token, ``A``, ``B`` or ``tie``. The reply is
parsed strictly (:func:`parse_verdict`): surrounding white space and one trailing full stop
are dropped, case is ignored; anything else is nonsense and the pair is not scored.

Position bias (judges tend to prefer the first, or the second, answer) is cancelled by asking
twice with the answers swapped (:func:`judge_pair`). The two verdicts score answer X
(:func:`combine`): both orders prefer X: 1; both prefer Y: 0; the orders disagree, or either
says tie: 0.5. A judge that always says ``A`` thus scores every pair 0.5: it learns nothing,
rather than something wrong.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from classifier_service.errors import BackendError, UpstreamRejected
from classifier_service.gateway.backends import Backends
from classifier_service.portfolio.judge import JudgeSettings
from classifier_service.portfolio.model import Endpoint

JUDGE_SYSTEM = (
    "You are an impartial judge. You compare two answers to the same request and decide "
    "which one serves the request better: correct, complete where completeness matters, and "
    "following the request's instructions. Length alone is no merit, and the order in which "
    "the answers are shown means nothing. Reply with exactly one token: A if answer A is "
    "better, B if answer B is better, tie if they are equally good or equally bad.")
JUDGE_USER = ("[Request]\n{request}\n\n[Answer A]\n{a}\n\n[Answer B]\n{b}\n\n"
              "Which answer is better? Reply with A, B or tie only.")
VERDICTS = ("A", "B", "tie")


class JudgeFailed(Exception):
    """The judge gave no usable verdict: ``reason`` says why (never any prompt text);
    ``reply`` holds what it answered, when it answered nonsense."""

    def __init__(self, reason: str, reply: str | None = None) -> None:
        self.reason = reason
        self.reply = reply
        super().__init__(reason)


@dataclass(frozen=True)
class PairVerdict:
    """The score of answer X against answer Y, and the judge's verdict in each order
    (first: X shown as A; second: X shown as B)."""

    score_x: float
    first: str
    second: str

    @property
    def score_y(self) -> float:
        return 1.0 - self.score_x


def parse_verdict(text: str) -> str | None:
    """``A``, ``B`` or ``tie`` from a judge's reply, or None for anything else."""
    word = text.strip()
    if word.endswith("."):
        word = word[:-1]
    for verdict in VERDICTS:
        if word.lower() == verdict.lower():
            return verdict
    return None


def combine(first: str, second: str) -> float:
    """X's score from the verdict with X as A (``first``) and with X as B (``second``)."""
    as_a = {"A": 1.0, "B": 0.0, "tie": 0.5}[first]
    as_b = {"A": 0.0, "B": 1.0, "tie": 0.5}[second]
    return as_a if as_a == as_b else 0.5


def judge_request(settings: JudgeSettings, request: str, a: str, b: str) -> dict[str, Any]:
    """The chat request the judge gets for one order (its model is the endpoint's)."""
    return {**settings.extra_body,
            "messages": [{"role": "system", "content": JUDGE_SYSTEM},
                         {"role": "user", "content": JUDGE_USER.format(request=request,
                                                                      a=a, b=b)}],
            "max_tokens": settings.max_tokens, "temperature": 0, "stream": False}


def render_request(messages: Any) -> str:
    """The conversation as the judge reads it: the text of a single message as it is; several
    messages one per paragraph, each after its role."""
    if not isinstance(messages, list):
        return ""
    parts: list[tuple[str, str]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
        parts.append((str(message.get("role") or "user"), str(content or "")))
    if len(parts) == 1:
        return parts[0][1]
    return "\n\n".join(f"{role}: {text}" for role, text in parts)


async def ask_judge(backends: Backends, judge: Endpoint, settings: JudgeSettings,
                    request: str, a: str, b: str) -> str:
    """One verdict; :class:`JudgeFailed` on a timeout, a server error or nonsense."""
    body = judge_request(settings, request, a, b)
    try:
        async with asyncio.timeout(settings.timeout_s):
            completion = await backends.complete(judge, body, settings.timeout_s)
    except TimeoutError:
        raise JudgeFailed(f"the judge {judge.name} timed out after {settings.timeout_s:g} s"
                          ) from None
    except (BackendError, UpstreamRejected) as exc:
        raise JudgeFailed(f"the judge {exc}") from None
    verdict = parse_verdict(completion.content)
    if verdict is None:
        raise JudgeFailed(f"the judge {judge.name} answered neither A, B nor tie",
                          completion.content[:200])
    return verdict


async def judge_pair(backends: Backends, judge: Endpoint, settings: JudgeSettings,
                     request: str, x: str, y: str) -> PairVerdict:
    """X against Y, asked in both orders at once; the first failure cancels the other."""
    try:
        async with asyncio.TaskGroup() as group:
            first = group.create_task(ask_judge(backends, judge, settings, request, x, y))
            second = group.create_task(ask_judge(backends, judge, settings, request, y, x))
    except* JudgeFailed as failures:
        raise failures.exceptions[0] from None
    return PairVerdict(combine(first.result(), second.result()), first.result(),
                       second.result())
