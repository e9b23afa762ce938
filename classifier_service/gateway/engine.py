"""The gateway: route a chat request, send it, check the answer, escalate or fail over.

``model`` picks the plan: ``auto`` classifies the last user message and routes it like
``/v1/route``; a tier name starts at that tier; an endpoint name pins that endpoint (its
answers are not checked: the caller chose the model; failover still applies). Either way the
plan is an ordered chain of endpoints: the chosen one, the rest of its tier, then each higher
tier (never above ``max_tier``).

Non-streaming: the answer of each endpoint is checked (:mod:`classifier_service.routing.quality`);
when it should escalate, the next *tier* of the chain is tried, up to
``policy.max_escalations`` times. Failover is separate: a connection error, timeout or 5xx
moves to the next *endpoint*, and the failed endpoint cools down for
``policy.failover_cooldown_s`` before it is tried again. With every endpoint of the chain down,
:class:`NoBackendError` (a 503 in OpenAI's error format), at once.

Streaming: the chain is tried until one endpoint starts answering; its chunks are then passed
on as they come, unchecked (once bytes are sent, an answer cannot be taken back). Buffered
streaming (opt-in, header ``x-tier-router-stream: buffered``) runs the non-streaming path,
checks and escalates, then sends the final answer as a stream: the client keeps its
streaming code and gets checked answers, at the price of the first token arriving last.

A conversation (the ``x-tier-router-session`` header; OpenAI's ``user`` field only with
``policy.session_from: user``) keeps the tier it was first routed to, or escalated to, for
later turns with ``model: auto``. This is per process and best effort: an in-memory map of the
10,000 most recent sessions, keyed by the id when it is at most 64 ASCII characters, else by
its digest (about 1 MB of ids at most).

Limits count the whole conversation: every message's text against ``policy.max_prompt_chars``
(413) and, for ``model: auto``, against the endpoints' ``context_length``; the last user
message alone is classified.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field, replace
from typing import Any

from classifier_service.errors import BackendError, NoBackendError, UnknownModelError
from classifier_service.gateway import logprobs
from classifier_service.gateway.backends import Backends, Completion
from classifier_service.gateway.chat import last_user_text
from classifier_service.gateway.hooks import AnswerHooks
from classifier_service.gateway.limits import conversation_chars, session_key
from classifier_service.metrics import Metrics
from classifier_service.portfolio.model import Endpoint, Portfolio
from classifier_service.routing.answer_check import judge
from classifier_service.routing.classifier import Scores
from classifier_service.routing.policy import RouteOptions, escalation_chain
from classifier_service.runtime import Runtime

SESSION_LIMIT = 10_000
NO_OPTIONS = RouteOptions()

log = logging.getLogger("tier_router.gateway")
AUTO = ("auto", "", "tier-router")  # model names that mean "route it"


@dataclass
class Plan:
    chain: list[Endpoint]
    tier: str
    reason: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """The decision's id: in the answer's ``tier_router`` summary, the
    ``x-tier-router-request-id`` header and the log line; outcome records refer to it."""
    category: str | None = None
    escalate: bool = True
    """False for a pinned endpoint: the caller chose the model; only failover moves on."""
    prompt: str = ""
    scores: Scores | None = None


@dataclass
class Step:
    endpoint: str
    tier: str
    outcome: str  # "answered", "escalated", "failed", "cooling_down"
    detail: list[str] = field(default_factory=list)
    quote: str | None = None
    """A failed endpoint's own error text (may quote the prompt: not logged by default)."""

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "tier": self.tier, "outcome": self.outcome,
                "detail": self.detail}


@dataclass
class Outcome:
    completion: Completion
    endpoint: Endpoint
    tier: str
    steps: list[Step]
    escalations: int

    def summary(self, plan: Plan) -> dict[str, Any]:
        """The ``tier_router`` field of an answer: who answered, the route taken and why."""
        return {"endpoint": self.endpoint.name, "tier": self.tier, "reason": plan.reason,
                "request_id": plan.request_id, "escalations": self.escalations,
                "route": [s.as_dict() for s in self.steps]}


def route_header(steps: list[Step]) -> str:
    """``x-tier-router-route``: each endpoint tried and its outcome."""
    return ",".join(f"{s.endpoint}:{s.outcome}" for s in steps)


class Gateway:
    def __init__(self, backends: Backends, metrics: Metrics, *, log_prompts: bool = False
                 ) -> None:
        self.backends = backends
        self.metrics = metrics
        self.log_prompts = log_prompts
        self._cooldown: dict[str, float] = {}
        self._failure: dict[str, str] = {}  # the last failure of each endpoint, for its steps
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self.hooks: list[AnswerHooks] = []
        """Told of each answer and escalation (judge sampling, check records); never block."""

    # -- planning -------------------------------------------------------------------------

    def plan(self, runtime: Runtime, model: str, messages: Any,
             options: RouteOptions = NO_OPTIONS, *, session: str | None = None,
             resident: Collection[str] | None = None) -> Plan:
        """The chain of endpoints for ``model``; counted in the decision metrics.

        ``options`` come checked (:func:`~classifier_service.routing.policy.check_options`):
        the API checks them once per request."""
        start = time.perf_counter()
        plan = self._plan(runtime, model, messages, options, session=session,
                          resident=resident)
        self.metrics.decided(plan.tier, plan.reason, time.perf_counter() - start)
        return plan

    def _plan(self, runtime: Runtime, model: str, messages: Any, options: RouteOptions, *,
              session: str | None, resident: Collection[str] | None) -> Plan:
        portfolio = runtime.portfolio
        prompt = last_user_text(messages)
        chars = conversation_chars(messages)
        runtime.check_chars(chars, "the conversation")
        max_tier = options.max_tier
        if model in AUTO:
            sticky = self._sessions.get(session_key(session)) if session else None
            if sticky is not None and portfolio.has_tier(sticky):
                floor = _sticky_floor(portfolio, sticky, options.min_tier, max_tier)
                options = replace(options, min_tier=floor)
            routed = runtime.route_checked(prompt or " ", options, resident, chars)
            decision = routed.decision
            reason = "session" if sticky is not None else decision.reason
            return Plan([decision.endpoint, *decision.fallback], decision.tier, reason,
                        category=routed.scores.top_category, prompt=prompt,
                        scores=routed.scores)
        scores = runtime.classifier.score(prompt) if prompt else None
        category = scores.top_category if scores is not None else None
        order = runtime.balancer.snapshot()
        if portfolio.has_tier(model):
            start = order(model)[0]
            return Plan(escalation_chain(portfolio, start, max_tier, order), model, "model",
                        category=category, prompt=prompt, scores=scores)
        endpoint = named_endpoint(portfolio, model)
        return Plan(escalation_chain(portfolio, endpoint, max_tier, order),
                    portfolio.tier_of(endpoint), "model", category=category, escalate=False,
                    prompt=prompt, scores=scores)

    def remember(self, session: str | None, tier: str) -> None:
        if not session:
            return
        key = session_key(session)
        self._sessions[key] = tier
        self._sessions.move_to_end(key)
        while len(self._sessions) > SESSION_LIMIT:
            self._sessions.popitem(last=False)

    # -- sending --------------------------------------------------------------------------

    def _log(self, plan: Plan, steps: list[Step], request: dict[str, Any],
             answer: str | None) -> None:
        """One line per answered request: who answered and the route; text only if allowed."""
        if not log.isEnabledFor(logging.INFO):  # the fields cost more than the check
            return
        fields = _summary_fields(plan, steps)
        if self.log_prompts:
            fields["prompt"] = last_user_text(request.get("messages"))
            if answer is not None:
                fields["answer"] = answer
        log.info("answered by %s (%s)", fields["endpoint"], fields["route"],
                 extra={"fields": fields})

    def _cooling(self, endpoint: Endpoint) -> bool:
        until = self._cooldown.get(endpoint.name)
        return until is not None and until > time.monotonic()

    def _fail(self, endpoint: Endpoint, cooldown_s: float, problem: str) -> None:
        self._cooldown[endpoint.name] = time.monotonic() + cooldown_s
        self._failure[endpoint.name] = problem
        self.metrics.failovers.labels(endpoint.name).inc()

    def _cooling_step(self, endpoint: Endpoint, tier: str) -> Step:
        """A step for an endpoint skipped while it cools down, with why it failed last."""
        last = self._failure.get(endpoint.name)
        return Step(endpoint.name, tier, "cooling_down", [last] if last else [])

    async def complete(self, runtime: Runtime, plan: Plan, request: dict[str, Any]
                       ) -> Outcome:
        portfolio = runtime.portfolio
        policy = portfolio.policy
        steps: list[Step] = []
        escalations = 0
        index = 0
        chain = plan.chain
        learned = runtime.outcome is not None and runtime.outcome.has_check and plan.escalate
        ask = (learned and runtime.outcome is not None and runtime.outcome.uses_logprobs
               and not logprobs.client_asked(request))
        sent = logprobs.ask(request) if ask else request
        while index < len(chain):
            endpoint = chain[index]
            tier = portfolio.tier_of(endpoint)
            if self._cooling(endpoint):
                steps.append(self._cooling_step(endpoint, tier))
                index += 1
                continue
            try:
                with runtime.balancer.busy(endpoint.name):
                    completion = await self.backends.complete(endpoint, sent,
                                                              policy.backend_timeout_s)
            except BackendError as exc:
                self._fail(endpoint, policy.failover_cooldown_s, exc.problem)
                steps.append(Step(endpoint.name, tier, "failed", [exc.problem], exc.quote))
                index += 1
                continue
            self._cooldown.pop(endpoint.name, None)
            self._failure.pop(endpoint.name, None)
            mean_logprob = logprobs.avg_logprob(completion.body) if learned else None
            if ask:
                logprobs.strip(completion.body)
            verdict = None
            if plan.escalate and not completion.has_tool_calls:
                verdict = judge(runtime.outcome, portfolio.quality, plan.prompt,
                                completion.content, tier, scores=plan.scores,
                                finish_reason=completion.finish_reason,
                                max_tokens=_cap(request), avg_logprob=mean_logprob)
                self.metrics.checked(verdict.escalate, verdict.reasons)
            higher = next((i for i in range(index + 1, len(chain))
                           if portfolio.tier_of(chain[i]) != tier), None)
            if (verdict is not None and verdict.escalate and higher is not None
                    and escalations < policy.max_escalations):
                self.metrics.fallbacks.labels(endpoint.name).inc()
                self._notify("escalated", runtime, plan, request, endpoint, tier, completion)
                steps.append(Step(endpoint.name, tier, "escalated", verdict.detail()))
                escalations += 1
                index = higher
                continue
            steps.append(Step(endpoint.name, tier, "answered",
                              verdict.detail() if verdict else []))
            self._log(plan, steps, request, completion.content)
            outcome = Outcome(completion, endpoint, tier, steps, escalations)
            self._notify("answered", runtime, plan, request, outcome)
            return outcome
        raise self._all_down(steps)

    def _notify(self, event: str, *args: Any) -> None:
        """Each hook's ``event`` method; one that raises is logged, the request goes on."""
        for hook in self.hooks:
            try:
                getattr(hook, event)(*args)
            except Exception:
                log.exception("a gateway hook failed on %s", event,
                              extra={"fields": {"event": "hook_failed"}})

    def _all_down(self, steps: list[Step]) -> NoBackendError:
        """The 503 when no endpoint of the chain could answer, logged with every reason."""
        error = NoBackendError(_all_down(steps, quotes=True))
        log.warning("%s", _all_down(steps, quotes=self.log_prompts),
                    extra={"fields": {"event": "all_down", "route": route_header(steps)}})
        return error

    async def open_stream(self, runtime: Runtime, plan: Plan, request: dict[str, Any]
                          ) -> tuple[Endpoint, list[Step], AsyncIterator[dict[str, Any]]]:
        """The first endpoint of the chain that starts streaming, and its chunks."""
        portfolio = runtime.portfolio
        steps: list[Step] = []
        for endpoint in plan.chain:
            tier = portfolio.tier_of(endpoint)
            if self._cooling(endpoint):
                steps.append(self._cooling_step(endpoint, tier))
                continue
            chunks = self.backends.stream(endpoint, request,
                                          portfolio.policy.backend_timeout_s)
            try:
                try:
                    first = await chunks.__anext__()
                except StopAsyncIteration:  # data: [DONE] before any chunk: not an answer
                    raise BackendError(endpoint.name, "ended its stream before any chunk"
                                       ) from None
            except BackendError as exc:
                self._fail(endpoint, portfolio.policy.failover_cooldown_s, exc.problem)
                steps.append(Step(endpoint.name, tier, "failed", [exc.problem], exc.quote))
                continue
            steps.append(Step(endpoint.name, tier, "answered"))
            self._log(plan, steps, request, None)
            return endpoint, steps, self._relay(first, chunks, runtime, endpoint)
        raise self._all_down(steps)

    async def _relay(self, first: dict[str, Any], rest: AsyncIterator[dict[str, Any]],
                     runtime: Runtime, endpoint: Endpoint) -> AsyncIterator[dict[str, Any]]:
        """The first chunk, then the rest; the endpoint counts as busy until the stream ends.
        A stream that breaks off after it started fails the endpoint like any other error
        (cooldown, failover metric, a log line); the client gets an error event."""
        with runtime.balancer.busy(endpoint.name):
            yield first
            try:
                async for chunk in rest:
                    yield chunk
            except BackendError as exc:
                self._fail(endpoint, runtime.portfolio.policy.failover_cooldown_s, exc.problem)
                log.warning("stream from %s broke off: %s", endpoint.name, exc.problem,
                            extra={"fields": {"event": "stream_broken",
                                              "endpoint": endpoint.name}})
                raise


def check_model(portfolio: Portfolio, model: str) -> None:
    """404 unless ``model`` is ``auto``, a tier or an endpoint of the portfolio."""
    if model not in AUTO and not portfolio.has_tier(model):
        named_endpoint(portfolio, model)


def named_endpoint(portfolio: Portfolio, model: str) -> Endpoint:
    try:
        return portfolio.endpoint(model)
    except KeyError:
        known = ["auto", *portfolio.tier_names, *(e.name for e in portfolio.all_endpoints())]
        raise UnknownModelError(
            f"model {model!r} does not exist; use one of: {', '.join(known)}"
        ) from None


def _summary_fields(plan: Plan, steps: list[Step]) -> dict[str, Any]:
    last = steps[-1]
    return {"event": "gateway", "request_id": plan.request_id, "endpoint": last.endpoint,
            "tier": last.tier, "reason": plan.reason, "route": route_header(steps),
            "escalations": sum(s.outcome == "escalated" for s in steps)}


def _cap(request: dict[str, Any]) -> int | None:
    """The length cap the caller set, if it is a usable number."""
    for key in ("max_tokens", "max_completion_tokens"):
        value = request.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _sticky_floor(portfolio: Portfolio, sticky: str, min_tier: str | None,
                  max_tier: str | None) -> str:
    """The session's tier as a lower bound, within the caller's own bounds."""
    floor = max((t for t in (sticky, min_tier) if t), key=portfolio.tier_index)
    if max_tier is not None and portfolio.tier_index(floor) > portfolio.tier_index(max_tier):
        return max_tier
    return floor


def _all_down(steps: list[Step], *, quotes: bool) -> str:
    """Each endpoint tried and why it failed; with ``quotes``, the servers' own error text
    (for the client, and for the log only with prompt logging on)."""
    tried = "; ".join(f"{s.endpoint}: {', '.join(s.detail) or s.outcome}"
                      + (" (cooling down)" if s.outcome == "cooling_down" and s.detail else "")
                      + (f": {s.quote}" if quotes and s.quote else "") for s in steps)
    return f"no endpoint could answer ({tried or 'none available'})"
