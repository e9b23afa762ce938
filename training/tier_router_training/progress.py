"""A small progress bar on standard error for long training runs.

On a terminal it redraws one line (``[#####.....] 3/5 cross-validation``); elsewhere (CI,
logs) it prints a plain line per step, so logs stay readable. Silent when ``enabled`` is
false.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24


class Progress:
    def __init__(self, total: int, label: str, *, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self._tty = self.stream.isatty()
        if enabled:
            self._draw()

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        if self.enabled:
            self._draw()

    def _draw(self) -> None:
        filled = WIDTH * self.done // self.total
        bar = "#" * filled + "." * (WIDTH - filled)
        elapsed = time.monotonic() - self.started
        line = f"[{bar}] {self.done}/{self.total} {self.label} ({elapsed:.1f}s)"
        if self._tty:
            end = "\n" if self.done >= self.total else ""
            self.stream.write("\r" + line + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
