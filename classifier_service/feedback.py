"""The feedback log: one JSON line per outcome, durable before the caller hears "ok".

Each record is written with a single ``write`` on a file opened for appending, then fsynced,
so an acknowledged record survives a crash and records from several workers never interleave.
A process killed mid-write can leave at most one torn last line: readers skip a last line
without its newline, and the next append starts on a fresh line.

Privacy: a record carries the prompt only when the caller sends it. Records with prompts turn
into training rows (``tier-router train --feedback LOG``); records without are still counted
outcomes. Whoever sends prompts decides that the log may hold user text.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class FeedbackLog:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and fsync it; returns only once it is on disk."""
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if _ends_torn(fd):
                    data = b"\n" + data
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)


def _ends_torn(fd: int) -> bool:
    """Whether the file's last byte is not a newline (a write cut short by a crash)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def read_records(path: Path | str) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """``(line, record)`` pairs of a feedback log, and a note per unreadable line."""
    path = Path(path)
    records: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete = lines[:-1] if not raw.endswith(b"\n") else lines
    if not raw.endswith(b"\n") and lines[-1].strip():
        problems.append(f"{path}:line {len(lines)}: torn last line (an interrupted write), "
                        "skipped")
    for lineno, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            problems.append(f"{path}:line {lineno}: not a JSON record, skipped")
            continue
        if isinstance(record, dict):
            records.append((lineno, record))
        else:
            problems.append(f"{path}:line {lineno}: not a JSON object, skipped")
    return records, problems
