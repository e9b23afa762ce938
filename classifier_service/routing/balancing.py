"""Load sharing inside a tier: which of its endpoints to prefer for the next request.

Each tier chooses in its portfolio entry (``balance``):

- ``first`` (default): the endpoints in the order listed; the others are failover;
- ``round_robin``: the preferred endpoint rotates with every request;
- ``least_busy``: the endpoint with the fewest requests in flight through this process's
  gateway comes first (ties in listed order).

The rest of the tier follows in the same order, as the fallback chain's first steps.
Counters live in the process: with several workers each shares its own traffic.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from classifier_service.portfolio.model import Endpoint, Portfolio


class Balancer:
    def __init__(self, portfolio: Portfolio) -> None:
        self._portfolio = portfolio
        self._turns = {tier.name: itertools.count() for tier in portfolio.tiers}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def snapshot(self) -> Callable[[str], list[Endpoint]]:
        """An order for one request: each tier's turn is taken once, when first asked."""
        seen: dict[str, list[Endpoint]] = {}

        def order(tier: str) -> list[Endpoint]:
            if tier not in seen:
                seen[tier] = self.order(tier)
            return seen[tier]

        return order

    def order(self, tier: str) -> list[Endpoint]:
        """The tier's endpoints, preferred first (a round-robin tier takes its next turn)."""
        spec = self._portfolio.tiers[self._portfolio.tier_index(tier)]
        endpoints = list(spec.endpoints)
        if len(endpoints) == 1 or spec.balance == "first":
            return endpoints
        if spec.balance == "round_robin":
            turn = next(self._turns[tier]) % len(endpoints)
            return endpoints[turn:] + endpoints[:turn]
        with self._lock:
            busy = dict(self._in_flight)
        return sorted(endpoints, key=lambda ep: busy.get(ep.name, 0))  # stable: listed order

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    @contextmanager
    def busy(self, name: str) -> Iterator[None]:
        """Count a request in flight to ``name`` while the block runs."""
        with self._lock:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[name] -= 1
