"""Judge sampling: outcome records without hand labels, off the response path.

With a portfolio ``judge:`` section whose ``sample_rate`` is above 0, that share of answered
non-streaming (and buffered-stream) requests is judged after the client has its answer: a
background task asks the next tier up for its own answer to the same request, has the judge
compare the two in both orders (:mod:`classifier_service.gateway.verdicts`), and writes two
outcome records with ``source: judge`` to the outcomes folder, one per tier: the answering
tier gets the pair's score, the tier above gets 1 minus it. Requests answered by the top tier,
and requests that offer tools, are not sampled (nothing above to compare with; answers that
may be tool calls, not text).

Bounds, read from the portfolio at each request (a reload changes them):

- ``max_concurrent``: samples judged at once; a sample over the cap is skipped
  (``tier_router_judge_total{outcome="skipped_busy"}``).
- ``daily_budget``: samples started per UTC day (failed ones count: they cost calls); once
  spent, samples are skipped (``skipped_budget``) until UTC midnight. Per process.
- ``timeout_s``: each judge call; the tier above gets ``policy.backend_timeout_s``.

A sample whose tier above fails, whose judge times out or answers nonsense, or whose records
cannot be written writes nothing, is counted (``failed``) and logged (no prompt or answer
text unless ``TIER_ROUTER_LOG_PROMPTS``). Judged samples count as ``judged``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from classifier_service.errors import BackendError, TooLargeError, UpstreamRejected
from classifier_service.feedback import LogUnavailable, OutcomeLog, OutcomeRecord
from classifier_service.gateway.backends import Backends, Completion
from classifier_service.gateway.chat import last_user_text
from classifier_service.gateway.engine import Outcome, Plan
from classifier_service.gateway.hooks import TaskSet
from classifier_service.gateway.verdicts import JudgeFailed, judge_pair, render_request
from classifier_service.metrics import Metrics
from classifier_service.portfolio.judge import JudgeSettings
from classifier_service.portfolio.model import Endpoint
from classifier_service.runtime import Runtime

log = logging.getLogger("tier_router.judge")


def _now() -> datetime:
    return datetime.now(UTC)


class JudgeSampler:
    """The gateway hook that samples answered requests for the judge."""

    def __init__(self, backends: Backends, metrics: Metrics, outcomes: OutcomeLog,
                 tasks: TaskSet, *, log_prompts: bool = False,
                 clock: Callable[[], datetime] = _now,
                 draw: Callable[[], float] = random.random) -> None:
        self.backends = backends
        self.metrics = metrics
        self.outcomes = outcomes
        self.tasks = tasks
        self.log_prompts = log_prompts
        self.clock = clock
        self.draw = draw
        self.in_flight = 0
        self._day: date | None = None
        self._spent = 0

    def spent_today(self) -> int:
        return self._spent if self._day == self.clock().date() else 0

    def answered(self, runtime: Runtime, plan: Plan, request: dict[str, Any],
                 outcome: Outcome) -> None:
        portfolio = runtime.portfolio
        settings = portfolio.judge
        if (settings is None or settings.sample_rate <= 0 or outcome.completion.has_tool_calls
                or request.get("tools")):
            return
        above = portfolio.next_tier(outcome.tier)
        if above is None or self.draw() >= settings.sample_rate:
            return
        today = self.clock().date()
        if today != self._day:
            self._day, self._spent = today, 0
        if self._spent >= settings.daily_budget:
            self.metrics.judge.labels("skipped_budget").inc()
            return
        if self.in_flight >= settings.max_concurrent:
            self.metrics.judge.labels("skipped_busy").inc()
            return
        judge = portfolio.judge_endpoint()
        if judge is None:
            return
        self._spent += 1
        self.in_flight += 1
        self.tasks.spawn(self._sample(runtime, plan, request, outcome, settings, judge, above))

    def escalated(self, runtime: Runtime, plan: Plan, request: dict[str, Any],
                  endpoint: Endpoint, tier: str, completion: Completion) -> None:
        return None

    async def _sample(self, runtime: Runtime, plan: Plan, request: dict[str, Any],
                      outcome: Outcome, settings: JudgeSettings, judge: Endpoint,
                      above: str) -> None:
        request_id = plan.request_id or str(outcome.completion.body.get("id") or "") or None
        other = runtime.balancer.snapshot()(above)[0]
        try:
            try:
                with runtime.balancer.busy(other.name):
                    theirs = await self.backends.complete(
                        other, {**request, "stream": False},
                        runtime.portfolio.policy.backend_timeout_s)
            except (BackendError, UpstreamRejected) as exc:
                raise JudgeFailed(f"the tier above ({above}) could not answer: {exc}"
                                  ) from None
            ours = outcome.completion.content
            verdict = await judge_pair(self.backends, judge, settings,
                                       render_request(request.get("messages")), ours,
                                       theirs.content)
            prompt = last_user_text(request.get("messages"))
            if not prompt.strip():
                raise JudgeFailed("the request has no user text to record")
            records = [
                OutcomeRecord(prompt, outcome.tier, verdict.score_x, answer=ours,
                              finish_reason=outcome.completion.finish_reason,
                              category=plan.category, endpoint=outcome.endpoint.name,
                              request_id=request_id, source="judge"),
                OutcomeRecord(prompt, above, verdict.score_y, answer=theirs.content,
                              finish_reason=theirs.finish_reason, category=plan.category,
                              endpoint=other.name, request_id=request_id, source="judge"),
            ]
            try:
                await asyncio.to_thread(self.outcomes.append, records)
            except (LogUnavailable, TooLargeError) as exc:
                raise JudgeFailed(str(exc)) from None
        except JudgeFailed as exc:
            self.metrics.judge.labels("failed").inc()
            fields: dict[str, Any] = {"event": "judge_failed", "reason": exc.reason,
                                      "request_id": request_id, "tier": outcome.tier}
            if self.log_prompts:
                fields["prompt"] = last_user_text(request.get("messages"))
                if exc.reply is not None:
                    fields["reply"] = exc.reply
            log.warning("judge sample failed: %s", exc.reason, extra={"fields": fields})
        else:
            self.metrics.judge.labels("judged").inc()
            log.info("judged %s against %s: %.1f (%s, %s)", outcome.tier, above,
                     verdict.score_x, verdict.first, verdict.second,
                     extra={"fields": {"event": "judged", "request_id": request_id,
                                       "tier": outcome.tier, "score": verdict.score_x}})
        finally:
            self.in_flight -= 1
