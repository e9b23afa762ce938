"""Training rows from the service's feedback log (``tier-router train --feedback LOG``).

A record becomes a row when it carries the prompt; its label is the human ``label`` when
given, else ``final_tier`` (the tier that answered well, after any escalation). Records
without a prompt are outcomes only and are not rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from classifier_service.errors import DataError
from classifier_service.feedback import read_records
from tier_router_training.dataset import Example, LoadReport


def load_feedback_examples(
    paths: Sequence[Path | str],
    report: LoadReport,
    *,
    tiers: Collection[str] | None = None,
    strict: bool = False,
) -> list[Example]:
    examples: list[Example] = []
    for path in paths:
        try:
            records, problems = read_records(path)
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc}") from None
        for message in problems:
            if strict:
                raise DataError(message)
            report.skipped.append(message)
        for lineno, record in records:
            report.rows += 1
            prompt = record.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                continue  # an outcome without its text: not a training row
            label = record.get("label") or record.get("final_tier")
            problem = None
            if not isinstance(label, str) or not label:
                problem = "no label or final_tier"
            elif tiers is not None and label not in tiers:
                problem = f"unknown tier {label!r}"
            if problem:
                message = f"{path}:line {lineno}: {problem}"
                if strict:
                    raise DataError(message)
                report.skipped.append(message)
                continue
            assert isinstance(label, str)
            examples.append(Example(prompt, label))
    return examples
