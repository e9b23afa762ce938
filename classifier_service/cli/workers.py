"""The parent of ``serve --workers N``: uvicorn's supervisor, with two changes.

- SIGHUP reloads every worker in place instead of restarting it: a restart closes connections
  that a stopping worker accepted but had not read yet.
- A replacement worker that fails to start (its model or portfolio does not load, and neither
  does the snapshot of the current generation) does not stop the service while another worker
  still serves: the parent logs that it goes on with the rest and tries again every
  :data:`RETRY_S` seconds. uvicorn itself stops the parent on any start-up failure, which is
  right only when no worker is serving (a broken start).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from socket import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn import Config

log = logging.getLogger("tier_router")

RETRY_S = 5.0


def run_workers(config: Config, sockets: list[socket]) -> None:
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import Multiprocess, Process

    class Supervisor(Multiprocess):
        def __init__(self, config: Config, sockets: list[socket]) -> None:
            super().__init__(config, sockets)
            self.retry_at: dict[int, float] = {}

        def handle_hup(self) -> None:
            for index, process in enumerate(self.processes):
                if process.pid is not None and index not in self.retry_at:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGHUP)

        def _start(self, index: int) -> None:
            process = Process(self.config, self.sockets)
            process.start()
            self.processes[index] = process

        def keep_subprocess_alive(self) -> None:
            if self.should_exit.is_set():
                return
            timeout = self.config.timeout_worker_healthcheck
            for index, process in enumerate(self.processes):
                if index in self.retry_at:
                    if time.monotonic() >= self.retry_at[index]:
                        del self.retry_at[index]
                        self._start(index)
                    continue
                if process.is_alive(timeout=timeout):
                    continue
                process.kill()
                process.join()
                if self.should_exit.is_set():
                    return
                if process.exitcode == STARTUP_FAILURE:
                    serving = [p for i, p in enumerate(self.processes)
                               if i != index and i not in self.retry_at
                               and p.is_alive(timeout=timeout)]
                    if not serving:
                        log.error("worker [%s] failed to start and no worker is serving: "
                                  "stopping", process.pid)
                        self.should_exit.set()
                        return
                    log.error("worker [%s] failed to start (its model or portfolio does not "
                              "load); serving with %d of %d workers, trying again in %g s",
                              process.pid, len(serving), len(self.processes), RETRY_S)
                    self.retry_at[index] = time.monotonic() + RETRY_S
                    continue
                log.info("worker [%s] died; starting another", process.pid)
                self._start(index)

    Supervisor(config, sockets).run()
