"""What the gateway tells observers after a request, and the background tasks they start.

:class:`AnswerHooks` are called by :class:`~classifier_service.gateway.engine.Gateway` on the
response path, so they must only decide and schedule: each runs its work (a judge call, an
fsync) as a task of a :class:`TaskSet`, which the app owns and cancels at shutdown. A hook
that raises is logged by the gateway and never fails the client's request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from classifier_service.gateway.backends import Completion
    from classifier_service.gateway.engine import Outcome, Plan
    from classifier_service.portfolio.model import Endpoint
    from classifier_service.runtime import Runtime


class AnswerHooks(Protocol):
    def answered(self, runtime: Runtime, plan: Plan, request: dict[str, Any],
                 outcome: Outcome) -> None:
        """A non-streamed (or buffered) request was answered; ``outcome`` is what it got."""

    def escalated(self, runtime: Runtime, plan: Plan, request: dict[str, Any],
                  endpoint: Endpoint, tier: str, completion: Completion) -> None:
        """The answer check turned down ``endpoint``'s answer; a higher tier is tried next."""


class TaskSet:
    """Background tasks, kept referenced until done; :meth:`close` cancels what is left."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self) -> None:
        """Until every task started so far (and any they start) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
