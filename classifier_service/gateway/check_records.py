"""The answer check's escalations as weak outcome records (``source: check``).

With ``policy.record_escalations: true`` in the portfolio, each time the gateway moves up a tier
because the check turned an answer down, one record goes to the outcomes folder: the prompt,
the tier and endpoint whose answer was turned down, ``score: 0``, the answer and its finish
reason, the request id, ``source: check``. It is a weak label (the check can be wrong), which
training can weigh apart by its ``source``. Off by default: the records hold prompt and answer
text.

The write (an fsync) runs in a background task, never on the response path; at most
:data:`MAX_PENDING` writes wait at once, past that a record is dropped
(``tier_router_check_records_total{outcome="dropped"}``; ``written`` and ``failed`` count
the rest).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from classifier_service.errors import TooLargeError
from classifier_service.feedback import LogUnavailable, OutcomeLog, OutcomeRecord
from classifier_service.gateway.backends import Completion
from classifier_service.gateway.chat import last_user_text
from classifier_service.gateway.engine import Outcome, Plan
from classifier_service.gateway.hooks import TaskSet
from classifier_service.metrics import Metrics
from classifier_service.portfolio.model import Endpoint
from classifier_service.runtime import Runtime

MAX_PENDING = 64
log = logging.getLogger("tier_router.check_records")


class EscalationRecorder:
    """The gateway hook that writes the check's escalations as outcome records."""

    def __init__(self, metrics: Metrics, outcomes: OutcomeLog, tasks: TaskSet) -> None:
        self.metrics = metrics
        self.outcomes = outcomes
        self.tasks = tasks
        self.pending = 0

    def answered(self, runtime: Runtime, plan: Plan, request: dict[str, Any],
                 outcome: Outcome) -> None:
        return None

    def escalated(self, runtime: Runtime, plan: Plan, request: dict[str, Any],
                  endpoint: Endpoint, tier: str, completion: Completion) -> None:
        if not runtime.portfolio.policy.record_escalations:
            return
        prompt = last_user_text(request.get("messages"))
        if not prompt.strip():
            return
        if self.pending >= MAX_PENDING:
            self.metrics.check_records.labels("dropped").inc()
            return
        request_id = plan.request_id or str(completion.body.get("id") or "") or None
        record = OutcomeRecord(prompt, tier, 0.0, answer=completion.content,
                               finish_reason=completion.finish_reason, category=plan.category,
                               endpoint=endpoint.name, request_id=request_id, source="check")
        self.pending += 1
        self.tasks.spawn(self._write(record))

    async def _write(self, record: OutcomeRecord) -> None:
        try:
            await asyncio.to_thread(self.outcomes.append, [record])
        except (LogUnavailable, TooLargeError) as exc:
            self.metrics.check_records.labels("failed").inc()
            log.warning("escalation record not written: %s", exc,
                        extra={"fields": {"event": "check_record_failed",
                                          "request_id": record.request_id}})
        else:
            self.metrics.check_records.labels("written").inc()
        finally:
            self.pending -= 1
