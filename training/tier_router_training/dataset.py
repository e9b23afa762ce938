"""Labelled examples: reading them from JSONL or CSV, and the bundled corpus.

A row needs a prompt text and a tier label; a task kind (``category``) is optional. Column
names are configurable (:class:`Columns`); by default the text is read from ``prompt`` and,
failing that, ``text``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from classifier_service.errors import DataError

DEFAULT_TEXT_COLUMNS = ("prompt", "text")


@dataclass(frozen=True)
class Example:
    prompt: str
    tier: str
    category: str | None = None


@dataclass(frozen=True)
class Columns:
    """Which fields of a row hold the text, the tier and the (optional) task kind."""

    text: Sequence[str] = DEFAULT_TEXT_COLUMNS
    label: str = "tier"
    category: str | None = "category"


@dataclass
class LoadReport:
    """What loading kept and what it skipped, with the reason per skipped row."""

    rows: int = 0
    kept: int = 0
    duplicates: int = 0
    skipped: list[str] = field(default_factory=list)


def bundled_corpus_dir() -> Path:
    """The project's own labelled corpus, shipped with the package."""
    return Path(str(resources.files("tier_router_training") / "corpus"))


def bundled_corpus_files() -> list[Path]:
    return sorted(bundled_corpus_dir().glob("*.jsonl"))


def load_examples(
    paths: Iterable[Path | str],
    columns: Columns | None = None,
    *,
    strict: bool = False,
    report: LoadReport | None = None,
) -> list[Example]:
    """Read labelled examples from JSONL and CSV files, dropping exact duplicate prompts.

    A bad row (no text, no label, not an object) raises :class:`DataError` when ``strict``,
    and is otherwise skipped and noted in ``report``.
    """
    columns = columns or Columns()
    report = report if report is not None else LoadReport()
    seen: set[str] = set()
    examples: list[Example] = []
    for path in paths:
        path = Path(path)
        for where, row in _rows(path):
            report.rows += 1
            try:
                example = _example(row, columns)
            except ValueError as exc:
                message = f"{path}:{where}: {exc}"
                if strict:
                    raise DataError(message) from None
                report.skipped.append(message)
                continue
            key = example.prompt.strip().lower()
            if key in seen:
                report.duplicates += 1
                continue
            seen.add(key)
            examples.append(example)
    report.kept = len(examples)
    if not examples:
        raise DataError("no usable labelled rows in " + ", ".join(str(p) for p in paths))
    return examples


def data_hash(examples: Sequence[Example]) -> str:
    """A stable sha256 of the examples' content, independent of file layout and row order."""
    digest = hashlib.sha256()
    for line in sorted(json.dumps([e.prompt, e.tier, e.category]) for e in examples):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _rows(path: Path) -> Iterator[tuple[str, object]]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        yield f"line {lineno}", json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield f"line {lineno}", ValueError(f"invalid JSON: {exc.msg}")
        elif suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                for rowno, record in enumerate(reader, 2):
                    yield f"line {rowno}", record
        else:
            raise DataError(f"{path}: unsupported file type {suffix!r} (use .jsonl or .csv)")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _example(row: object, columns: Columns) -> Example:
    if isinstance(row, ValueError):
        raise row
    if not isinstance(row, dict):
        raise ValueError("expected an object per row")
    text = next((row[c] for c in columns.text if isinstance(row.get(c), str)), None)
    if text is None or not text.strip():
        raise ValueError(f"no text in column {' or '.join(repr(c) for c in columns.text)}")
    label = row.get(columns.label)
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"no label in column {columns.label!r}")
    category = row.get(columns.category) if columns.category else None
    if category is not None and (not isinstance(category, str) or not category.strip()):
        category = None
    return Example(text, label.strip(), category.strip() if category else None)
