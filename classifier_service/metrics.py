"""Prometheus metrics of the service, and their exposition on ``GET /metrics``.

One :class:`Metrics` per app, on its own registry (tests build many apps in one process).
With several worker processes (``tier-router serve --workers N``) the parent sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start; every worker then writes its counters
and histograms to files there, and whichever worker answers ``/metrics`` adds them all up.

What is counted:

=========================================  =================================================
``tier_router_decisions_total``            routing decisions, by ``tier`` and ``reason``
                                           (``/v1/route``, batches, gateway plans)
``tier_router_quality_checks_total``       answer checks by ``outcome`` (pass, escalate)
``tier_router_escalations_total``          each ``signal`` of a check that said escalate
``tier_router_fallbacks_total``            gateway answers of an ``endpoint`` that failed the
                                           check, after which a higher tier was tried
``tier_router_failovers_total``            errors of an ``endpoint`` (unreachable, timeout,
                                           5xx) after which the next endpoint was tried
``tier_router_model_reloads_total``        reloads by ``outcome`` (ok, refused)
``tier_router_judge_total``                judge samples by ``outcome`` (judged,
                                           skipped_budget, skipped_busy, failed)
``tier_router_check_records_total``        escalations written as outcome records, by
                                           ``outcome`` (written, dropped, failed)
``tier_router_routing_seconds``            time to score and decide one prompt
``tier_router_gateway_seconds``            a gateway request end to end, by ``gateway``
                                           (openai, ollama), backends included
=========================================  =================================================

Other collectors (the GPU monitor's gauges) are added with :meth:`Metrics.add_collector`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

ROUTING_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
GATEWAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._extra: list[Collector] = []
        r = self.registry
        self.decisions = Counter("tier_router_decisions", "Routing decisions.",
                                 ["tier", "reason"], registry=r)
        self.quality_checks = Counter("tier_router_quality_checks", "Answer quality checks.",
                                      ["outcome"], registry=r)
        self.escalations = Counter("tier_router_escalations",
                                   "Signals of quality checks that said escalate.",
                                   ["signal"], registry=r)
        self.fallbacks = Counter("tier_router_fallbacks",
                                 "Answers that failed the check; a higher tier was tried.",
                                 ["endpoint"], registry=r)
        self.failovers = Counter("tier_router_failovers",
                                 "Endpoint errors after which the next endpoint was tried.",
                                 ["endpoint"], registry=r)
        self.reloads = Counter("tier_router_model_reloads", "Model and portfolio reloads.",
                               ["outcome"], registry=r)
        self.judge = Counter("tier_router_judge", "Judge samples, by outcome.", ["outcome"],
                             registry=r)
        self.check_records = Counter("tier_router_check_records",
                                     "Escalations written as outcome records, by outcome.",
                                     ["outcome"], registry=r)
        self.routing_seconds = Histogram("tier_router_routing_seconds",
                                         "Time to score and decide one prompt.",
                                         buckets=ROUTING_BUCKETS, registry=r)
        self.gateway_seconds = Histogram("tier_router_gateway_seconds",
                                         "Gateway requests end to end, backends included.",
                                         ["gateway"], buckets=GATEWAY_BUCKETS, registry=r)

    def decided(self, tier: str, reason: str, seconds: float | None = None) -> None:
        self.decisions.labels(tier, reason).inc()
        if seconds is not None:
            self.routing_seconds.observe(seconds)

    def checked(self, escalate: bool, reasons: Iterable[str]) -> None:
        self.quality_checks.labels("escalate" if escalate else "pass").inc()
        if escalate:
            for signal in reasons:
                self.escalations.labels(signal).inc()

    def add_collector(self, collector: Collector) -> None:
        """A collector read at every scrape, in this process only (not summed over workers)."""
        self._extra.append(collector)
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The text format of every metric; summed over all workers in multi-process mode."""
        if not os.environ.get(MULTIPROC_ENV):
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        for collector in self._extra:
            merged.register(collector)
        return generate_latest(merged)
