"""Outcome records from files, for training (``tier-router train --outcomes FILE|DIR``).

A path is a JSONL file, a CSV file (the delimiter, ``,`` ``;`` or tab, is the one its header
line holds most; numbers as text; an empty cell is unset), or a folder: every ``*.jsonl`` and
``*.csv`` directly in it, sorted by name (the service's outcomes folder, one file per process).
Each row is checked as the service checks ``POST /v1/feedback``
(:meth:`OutcomeRecord.from_json`): invalid JSON, not UTF-8, an empty prompt, a score missing,
not a number, non-finite or outside 0-1, an unknown tier or source.

Bad rows are treated as ``train`` treats bad labelled rows (see :mod:`.dataset`): each is
reported with its file and line, and skipped (``on_bad_row="skip"``, listed in the
:class:`LoadReport`) or the first one stops loading with a :class:`DataError`
(``"stop"``; the CLI exits 2). A torn last line of a JSONL file (a crash, or a writer still
appending) is always skipped and listed, never a stop. Records with source ``check`` (weak
outcomes of the answer check) are kept with their source, for training to weigh apart.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Literal

from classifier_service.errors import DataError
from classifier_service.feedback import OutcomeRecord, split_lines
from tier_router_training.dataset import LoadReport
from tier_router_training.tabular import csv_rows, data_files, header_hint, json_row, read_bytes

BadRow = Literal["skip", "stop"]
SUFFIXES = (".jsonl", ".ndjson", ".csv", ".tsv")


def outcome_files(paths: Iterable[Path | str]) -> list[Path]:
    """The files the paths name: files as given, folders by their ``*.jsonl``/``*.csv``."""
    return data_files(paths, SUFFIXES, "outcomes")


def read_outcomes(
    paths: Iterable[Path | str],
    tiers: Collection[str] | None = None,
    on_bad_row: BadRow = "skip",
    report: LoadReport | None = None,
) -> tuple[list[OutcomeRecord], LoadReport]:
    """Outcome records of JSONL/CSV files and folders, and what was kept and skipped."""
    if on_bad_row not in ("skip", "stop"):
        raise ValueError(f"on_bad_row must be 'skip' or 'stop', not {on_bad_row!r}")
    report = report if report is not None else LoadReport()
    files = outcome_files(paths)
    records: list[OutcomeRecord] = []
    for path in files:
        for where, row in _rows(path, report):
            report.rows += 1
            try:
                if isinstance(row, ValueError):
                    raise row
                if not isinstance(row, dict):
                    raise ValueError("expected an object per row")
                records.append(OutcomeRecord.from_json(row, tiers))
            except ValueError as exc:
                message = f"{path}:{where}: {exc}"
                if on_bad_row == "stop":
                    raise DataError(message) from None
                report.skipped.append(message)
    report.kept = len(records)
    if not records:
        raise DataError("no usable outcome records in " + ", ".join(str(p) for p in files))
    return records, report


def _rows(path: Path, report: LoadReport) -> Iterator[tuple[str, object]]:
    """``(where, row)`` pairs; a row that cannot be read is a ``ValueError`` in its place."""
    raw = read_bytes(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        yield from _csv_rows(path, raw)
        return
    lines, torn = split_lines(path, raw)
    report.skipped.extend(torn)  # a crash mid-write, or a writer still appending: not a stop
    for lineno, line in lines:
        yield json_row(lineno, line)


def _csv_rows(path: Path, raw: bytes) -> Iterator[tuple[str, object]]:
    fieldnames, rows = csv_rows(path, raw)
    if "prompt" not in fieldnames:
        raise DataError(f"{path}:line 1: a CSV of outcomes needs a header with prompt, tier "
                        f"and score columns (found {fieldnames}){header_hint(fieldnames)}")
    yield from rows
