"""Labelled examples: reading them from JSONL or CSV, checking them, and the bundled corpus.

A path is a file or a folder (its ``*.jsonl`` and ``*.csv`` files); CSV files are read by
:mod:`.tabular` (delimiter from the header, bad bytes and extra fields reported per row).

A row needs a prompt text and a tier label; a task kind (``category``) is optional, and with a
category map (kind -> tier) a row labelled by kind only gets its tier from the map. Column
names are configurable (:class:`Columns`); by default the text is read from ``prompt`` and,
failing that, ``text``.

Bad rows never raise a traceback: each problem is reported with its file and line, and the row
is skipped (``strict=False``) or loading stops with a :class:`DataError` (``strict=True``).
Problems found: invalid JSON or encoding, no text, no label, a label outside the known tiers,
the same prompt with conflicting labels, and a tier with too few examples to learn from.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from classifier_service.errors import DataError
from tier_router_training.tabular import csv_rows, data_files, header_hint, json_row, read_bytes

DEFAULT_TEXT_COLUMNS = ("prompt", "text")
MIN_EXAMPLES_PER_TIER = 2
RECOMMENDED_PER_TIER = 50
"""Fewer rows than this in a tier get a warning: 55 rows in all cross-validated to 0.45."""
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")


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
    """What loading kept and what it skipped, with file, line and reason per skipped row."""

    rows: int = 0
    kept: int = 0
    duplicates: int = 0
    skipped: list[str] = field(default_factory=list)


def bundled_corpus_dir() -> Path:
    """The project's own labelled corpus, shipped with the package."""
    return Path(str(resources.files("tier_router_training") / "corpus"))


def bundled_corpus_files() -> list[Path]:
    return sorted(bundled_corpus_dir().glob("*.jsonl"))


def load_category_map(path: Path | str) -> dict[str, str]:
    """A kind -> tier mapping from a JSON or YAML file (a flat object of strings)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read the category map: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise DataError(f"{path}: a category map is an object of kind -> tier strings")
    return dict(data)


def load_examples(
    paths: Iterable[Path | str],
    columns: Columns | None = None,
    *,
    strict: bool = False,
    report: LoadReport | None = None,
    tiers: Collection[str] | None = None,
    category_map: Mapping[str, str] | None = None,
    min_per_tier: int = 1,
) -> list[Example]:
    """Read labelled examples from JSONL and CSV files; see the module docstring.

    ``tiers``, when given, is the set of allowed tier labels. Exact duplicates (same prompt,
    same labels) are dropped quietly and counted; the same prompt with another tier is a
    conflict. Tiers with fewer than ``min_per_tier`` examples are a problem too.
    """
    columns = columns or Columns()
    report = report if report is not None else LoadReport()
    files = data_files(paths, SUFFIXES, "labelled data")
    first_seen: dict[str, tuple[Example, str]] = {}
    examples: list[Example] = []
    wheres: list[str] = []

    def problem(message: str) -> None:
        if strict:
            raise DataError(message)
        report.skipped.append(message)

    for path in files:
        for where, row in _rows(path, columns):
            report.rows += 1
            location = f"{path}:{where}"
            try:
                example = _example(row, columns, category_map)
                if tiers is not None and example.tier not in tiers:
                    raise ValueError(
                        f"unknown tier {example.tier!r} (tiers: {', '.join(sorted(tiers))})"
                    )
            except ValueError as exc:
                problem(f"{location}: {exc}")
                continue
            key = example.prompt.strip().lower()
            if key in first_seen:
                earlier, earlier_where = first_seen[key]
                if earlier.tier != example.tier:
                    problem(f"{location}: the same prompt is labelled {earlier.tier!r} at "
                            f"{earlier_where} and {example.tier!r} here")
                else:
                    report.duplicates += 1
                continue
            first_seen[key] = (example, location)
            examples.append(example)
            wheres.append(location)

    counts = Counter(e.tier for e in examples)
    thin = sorted(t for t, n in counts.items() if n < min_per_tier)
    if thin:
        for tier in thin:
            first = wheres[[e.tier for e in examples].index(tier)]
            problem(f"tier {tier!r} has {counts[tier]} example(s); at least {min_per_tier} are "
                    f"needed to learn it (first at {first})")
        examples = [e for e in examples if e.tier not in thin]
    report.kept = len(examples)
    if not examples:
        raise DataError("no usable labelled rows in " + ", ".join(str(p) for p in files))
    return examples


def load_prompts(paths: Iterable[Path | str], columns: Columns | None = None) -> list[str]:
    """The prompt texts of JSONL/CSV files, labelled or not (a reference set of traffic)."""
    columns = columns or Columns()
    prompts: list[str] = []
    files = data_files(paths, SUFFIXES, "prompts")
    for path in files:
        for _, row in _rows(path, columns):
            if isinstance(row, dict):
                text = next((row[c] for c in columns.text if isinstance(row.get(c), str)), None)
                if text is not None and text.strip():
                    prompts.append(text)
    if not prompts:
        raise DataError("no prompts in " + ", ".join(str(p) for p in files))
    return prompts


def sort_key(example: Example) -> tuple[str, str, str]:
    """The canonical order of examples (training is independent of file order)."""
    return (example.prompt, example.tier, example.category or "")


def data_hash(examples: Sequence[Example]) -> str:
    """A stable sha256 of the examples' content, independent of file layout and row order."""
    digest = hashlib.sha256()
    for line in sorted(json.dumps([e.prompt, e.tier, e.category]) for e in examples):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _rows(path: Path, columns: Columns) -> Iterator[tuple[str, object]]:
    """``(where, row)`` pairs; a row that cannot be read is a ``ValueError`` in its place."""
    raw = read_bytes(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        fieldnames, rows = csv_rows(path, raw)
        if not any(c in fieldnames for c in columns.text):
            raise DataError(f"{path}:line 1: no text in column "
                            f"{' or '.join(repr(c) for c in columns.text)}"
                            f"{header_hint(fieldnames) or f' (the header has {fieldnames})'}")
        yield from rows
        return
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        yield json_row(lineno, line)


def recommendations(examples: Sequence[Example]) -> list[str]:
    """Warnings for tiers with fewer rows than :data:`RECOMMENDED_PER_TIER` (with the count
    needed): a model still trains, but its cross-validated scores swing with the split."""
    counts = Counter(e.tier for e in examples)
    return [f"tier {tier!r} has {n} rows; at least {RECOMMENDED_PER_TIER} per tier "
            f"recommended ({RECOMMENDED_PER_TIER - n} more)"
            for tier, n in sorted(counts.items()) if n < RECOMMENDED_PER_TIER]


def _example(row: object, columns: Columns, category_map: Mapping[str, str] | None) -> Example:
    if isinstance(row, ValueError):
        raise row
    if not isinstance(row, dict):
        raise ValueError("expected an object per row")
    text = next((row[c] for c in columns.text if isinstance(row.get(c), str)), None)
    if text is None or not text.strip():
        raise ValueError(f"no text in column {' or '.join(repr(c) for c in columns.text)}")
    category = row.get(columns.category) if columns.category else None
    category = category.strip() if isinstance(category, str) and category.strip() else None
    label = row.get(columns.label)
    if isinstance(label, str) and label.strip():
        tier = label.strip()
    elif category_map is not None and category is not None:
        if category not in category_map:
            raise ValueError(f"no label, and the category map has no tier for kind {category!r}")
        tier = category_map[category]
    else:
        hint = " or a kind from --category-map" if category_map is not None else ""
        raise ValueError(f"no label in column {columns.label!r}{hint}")
    return Example(text, tier, category)
