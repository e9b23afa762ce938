"""The outcome log: one JSON line per observed outcome, durable before the caller hears "ok".

Two kinds of record are written here:

- **Outcome records** (:class:`OutcomeRecord`): a prompt, the tier whose model answered, and a
  score 0-1 (1 good enough / won, 0 not, 0.5 a tie, or graded), with optional answer details.
  They go to an outcomes *folder*, one file per process (``outcomes-<hostname>-<pid>.jsonl``),
  so replicas and workers on a shared volume never write the same file and need no locks
  (:class:`OutcomeLog`). A file that reaches its size cap is left as it is and the process goes
  on in ``outcomes-<hostname>-<pid>.part0001.jsonl``, ``.part0002``, ... (names sort in the
  order written); readers take every ``*.jsonl`` of the folder.
- **Feedback records** (the older form: ``request_id``, ``final_tier`` or ``label``) go to one
  file (:class:`FeedbackLog`); past its size cap appends are refused (507), since the service
  does not rename a file its operator named.

Each append is a single ``write`` on a file opened for appending, then fsynced, so an
acknowledged record survives a crash and records from several workers never interleave. A
process killed mid-write can leave at most one torn last line: readers skip a last line
without its newline, and the next append starts on a fresh line.

Privacy: an outcome record carries the prompt (it is what training learns from); a feedback
record carries it only when the caller sends it. Whoever sends prompts decides that the log
may hold user text.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifier_service.errors import InvalidRequestError, RequestError, TooLargeError

SOURCES = ("user", "judge", "check")
"""Where a score came from: a person or a downstream check, a judge model, the answer check."""
OUTCOME_FIELDS = ("prompt", "tier", "score", "answer", "finish_reason", "avg_logprob",
                  "category", "endpoint", "request_id", "source")
DEFAULT_MAX_RECORD_BYTES = 256 * 1024
DEFAULT_MAX_OUTCOME_FILE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FEEDBACK_LOG_BYTES = 1024 * 1024 * 1024


class OutcomeError(ValueError):
    """A field of an outcome record is missing or invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class LogUnavailable(RequestError):
    """The log cannot be written (HTTP 503): the path and the operating system's error."""

    status_code = 503


class LogFull(RequestError):
    """The feedback log reached its size cap (HTTP 507)."""

    status_code = 507


@dataclass(frozen=True)
class OutcomeRecord:
    """One observed answer: how good ``tier``'s answer to ``prompt`` was (``score`` 0-1)."""

    prompt: str
    tier: str
    score: float
    answer: str | None = None
    finish_reason: str | None = None
    avg_logprob: float | None = None
    category: str | None = None
    endpoint: str | None = None
    request_id: str | None = None
    source: str = "user"

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object; unset optional fields are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any],
                  tiers: Collection[str] | None = None) -> OutcomeRecord:
        """Validate a JSON object (or a CSV row: numbers as text, ``""`` for unset).

        Raises :class:`OutcomeError` naming the first bad field. Unknown keys (``ts``) are
        ignored. ``tiers``, when given, are the tier names allowed.
        """
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise OutcomeError("prompt", "missing or empty (the prompt text is required)")
        if not _encodable(prompt):
            raise OutcomeError("prompt", "not valid Unicode text (a lone surrogate)")
        tier = _optional_text(data, "tier")
        if tier is None:
            raise OutcomeError("tier", "missing (the portfolio tier whose model answered)")
        if tiers is not None and tier not in tiers:
            raise OutcomeError("tier", f"unknown tier {tier!r} (tiers: {', '.join(tiers)})")
        score = _number(data, "score")
        if score is None:
            raise OutcomeError("score", "missing (a number from 0 to 1)")
        if not 0.0 <= score <= 1.0:
            raise OutcomeError("score", f"{score} is outside 0-1")
        source = _optional_text(data, "source") or "user"
        if source not in SOURCES:
            raise OutcomeError("source", f"unknown source {source!r} (one of "
                                         f"{', '.join(SOURCES)})")
        return cls(prompt=prompt, tier=tier, score=score, answer=_optional_text(data, "answer"),
                   finish_reason=_optional_text(data, "finish_reason"),
                   avg_logprob=_number(data, "avg_logprob"),
                   category=_optional_text(data, "category"),
                   endpoint=_optional_text(data, "endpoint"),
                   request_id=_optional_text(data, "request_id"), source=source)


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OutcomeError(name, "must be a string")
    if not _encodable(value):
        raise OutcomeError(name, "not valid Unicode text (a lone surrogate)")
    return value.strip() if name != "answer" else value


def _number(data: Mapping[str, Any], name: str) -> float | None:
    """A finite number, or ``None`` for unset; a numeric string counts (CSV, Dify)."""
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise OutcomeError(name, "must be a number")
    try:
        number = float(value)
    except ValueError:
        raise OutcomeError(name, f"{str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise OutcomeError(name, "must be a finite number")
    return number


def encode(record: Mapping[str, Any]) -> bytes:
    """One JSON line; text that is not valid Unicode (a lone surrogate) is a 422."""
    try:
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    except UnicodeEncodeError:
        field = next((k for k, v in record.items() if isinstance(v, str)
                      and not _encodable(v)), "body")
        raise InvalidRequestError(("body", field), "not valid Unicode text (a lone "
                                  "surrogate)", None) from None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def writable_problem(path: Path, *, folder: bool) -> str | None:
    """Why ``path`` (a file, or with ``folder`` a directory) could not be written, or None.

    Creates nothing: the path, or its nearest existing parent, must be a writable directory
    (or, for an existing file, a writable regular file).
    """
    probe = path
    if probe.exists():
        if folder and not probe.is_dir():
            return f"{path}: [Errno 20] Not a directory"
        if not folder:
            if not probe.is_file():
                return f"{path}: not a regular file"
            return None if os.access(probe, os.W_OK) else f"{path}: [Errno 13] Permission denied"
        return None if os.access(probe, os.W_OK | os.X_OK) else (
            f"{path}: [Errno 13] Permission denied")
    parent = probe.parent if not folder else probe
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path}: [Errno 20] Not a directory ({parent} is a file)"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path}: [Errno 13] Permission denied (on {parent})"
    return None


def _append(path: Path, data: bytes) -> None:
    """One write of ``data`` at the end of ``path``, then fsync (a fresh line after a tear)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
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


def _check_size(line: bytes, max_record_bytes: int) -> None:
    if len(line) > max_record_bytes:
        raise TooLargeError(f"the record is {len(line)} bytes as JSON; the limit "
                            f"(TIER_ROUTER_FEEDBACK_MAX_RECORD_BYTES) is {max_record_bytes}")


class FeedbackLog:
    """The feedback log: one file; refuses appends (507) once it holds ``max_bytes``."""

    def __init__(self, path: Path | str, *, max_bytes: int = DEFAULT_MAX_FEEDBACK_LOG_BYTES,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_record_bytes = max_record_bytes
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        """Why the log could not be written now (for readiness), or None."""
        return writable_problem(self.path, folder=False)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and fsync it; returns only once it is on disk."""
        data = encode(record)
        _check_size(data, self.max_record_bytes)
        with self._lock:
            try:
                size = self.path.stat().st_size if self.path.exists() else 0
                if size + len(data) > self.max_bytes:
                    raise LogFull(f"the feedback log {self.path} holds {size} bytes; the limit "
                                  f"(TIER_ROUTER_FEEDBACK_LOG_MAX_BYTES) is {self.max_bytes}: "
                                  "move it away (train from it) to record more")
                _append(self.path, data)
            except OSError as exc:
                raise LogUnavailable(f"cannot write the feedback log {self.path}: "
                                     f"{exc.strerror or exc}") from None


class OutcomeLog:
    """The outcomes folder: this process appends to its own file, rotating at ``max_file_bytes``.

    The file name is taken at the first append (after a fork, a worker gets its own pid).
    """

    def __init__(self, folder: Path | str, *,
                 max_file_bytes: int = DEFAULT_MAX_OUTCOME_FILE_BYTES,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.folder = Path(folder)
        self.max_file_bytes = max_file_bytes
        self.max_record_bytes = max_record_bytes
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._index = 0

    def problem(self) -> str | None:
        """Why the folder could not be written now (for readiness), or None."""
        return writable_problem(self.folder, folder=True)

    def _stem(self) -> str:
        host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
        return f"outcomes-{host}-{os.getpid()}"

    def _name(self, index: int) -> Path:
        suffix = f".part{index:04d}" if index else ""
        return self.folder / f"{self._stem()}{suffix}.jsonl"

    def current_path(self) -> Path:
        """The file the next append goes to (this process's, after any rotation)."""
        if self._pid != os.getpid():  # first use in this process: continue its last file
            self._pid, self._index = os.getpid(), 0
            pattern = re.compile(re.escape(self._stem()) + r"(?:\.part(\d+))?\.jsonl")
            if self.folder.is_dir():
                for entry in self.folder.iterdir():
                    match = pattern.fullmatch(entry.name)
                    if match:
                        self._index = max(self._index, int(match.group(1) or 0))
        return self._name(self._index)

    def append(self, records: Iterable[OutcomeRecord], ts: str | None = None) -> Path:
        """Append records (one write, one fsync); returns the file written.

        ``ts`` defaults to now (UTC). It blocks for the fsync: code on the event loop (a
        gateway recording its check's escalations as ``source="check"`` records) calls it
        in a thread, e.g. ``await asyncio.to_thread(log.append, records)``.
        """
        ts = ts or datetime.now(UTC).isoformat(timespec="milliseconds")
        lines = [encode({"ts": ts, **r.to_json()}) for r in records]
        for line in lines:
            _check_size(line, self.max_record_bytes)
        data = b"".join(lines)
        with self._lock:
            try:
                path = self.current_path()
                size = path.stat().st_size if path.exists() else 0
                if size and size + len(data) > self.max_file_bytes:
                    self._index += 1
                    path = self._name(self._index)
                _append(path, data)
            except OSError as exc:
                raise LogUnavailable(f"cannot write the outcomes folder {self.folder}: "
                                     f"{exc.strerror or exc}") from None
        return path


def append_outcomes(path: Path | str, records: Iterable[OutcomeRecord],
                    ts: str | None = None) -> None:
    """Append records to one file (``tier-router label``'s output): one write, then fsync, so
    the records of one prompt are all there or none are."""
    ts = ts or datetime.now(UTC).isoformat(timespec="milliseconds")
    _append(Path(path), b"".join(encode({"ts": ts, **r.to_json()}) for r in records))


def _ends_torn(fd: int) -> bool:
    """Whether the file's last byte is not a newline (a write cut short by a crash)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def split_lines(path: Path, raw: bytes) -> tuple[list[tuple[int, bytes]], list[str]]:
    """The complete, non-blank lines of a log, numbered, and a note for a torn last line."""
    lines = raw.split(b"\n")
    problems: list[str] = []
    if not raw.endswith(b"\n"):
        if lines[-1].strip():
            problems.append(f"{path}:line {len(lines)}: torn last line (an interrupted "
                            "write), skipped")
        lines = lines[:-1]
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    return numbered, problems


def read_records(path: Path | str) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """``(line, record)`` pairs of a feedback log, and a note per unreadable line."""
    path = Path(path)
    records: list[tuple[int, dict[str, Any]]] = []
    lines, problems = split_lines(path, path.read_bytes())
    for lineno, line in lines:
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
