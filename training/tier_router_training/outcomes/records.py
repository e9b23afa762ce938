"""The table of prompts by tier that fitting and calibration read, built from
:class:`classifier_service.feedback.OutcomeRecord` (the one record type)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from classifier_service.feedback import OutcomeRecord

FloatArray = npt.NDArray[np.float64]


@dataclass
class OutcomeTable:
    """Prompts (rows) by tiers (columns): score and answer where a record exists, NaN / None not.

    Several records of one prompt at one tier are averaged (their answers: the first kept),
    each weighed by its ``source``'s entry in ``source_weights`` (default 1; 0 leaves the
    source out), e.g. ``{"check": 0.3}`` so that the answer check's escalations (weak labels)
    count less than a person's or a judge's score of the same answer.
    """

    tiers: tuple[str, ...]
    prompts: list[str]
    scores: FloatArray  # (prompts, tiers), NaN where no record
    answers: list[list[str | None]]
    finish: list[list[str | None]]
    logprobs: list[list[float | None]]
    counts: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))

    @classmethod
    def build(cls, records: Iterable[OutcomeRecord], tiers: Sequence[str],
              source_weights: Mapping[str, float] | None = None) -> OutcomeTable:
        weights = source_weights or {}
        order = {t: i for i, t in enumerate(tiers)}
        index: dict[str, int] = {}
        sums: list[list[float]] = []
        counts: list[list[float]] = []
        answers: list[list[str | None]] = []
        finish: list[list[str | None]] = []
        logprobs: list[list[float | None]] = []
        for rec in records:
            col = order.get(rec.tier)
            if col is None:
                raise ValueError(f"record tier {rec.tier!r} is not one of {list(tiers)}")
            if not 0.0 <= rec.score <= 1.0:
                raise ValueError(f"record score {rec.score!r} is outside 0-1")
            weight = float(weights.get(rec.source, 1.0))
            if weight <= 0:
                continue
            row = index.get(rec.prompt)
            if row is None:
                row = index[rec.prompt] = len(sums)
                sums.append([0.0] * len(tiers))
                counts.append([0.0] * len(tiers))
                answers.append([None] * len(tiers))
                finish.append([None] * len(tiers))
                logprobs.append([None] * len(tiers))
            sums[row][col] += weight * rec.score
            counts[row][col] += weight
            if answers[row][col] is None and rec.answer is not None:
                answers[row][col] = rec.answer
                finish[row][col] = rec.finish_reason
                logprobs[row][col] = rec.avg_logprob
        c = np.array(counts, dtype=np.float64).reshape(-1, len(tiers))
        s = np.array(sums, dtype=np.float64).reshape(-1, len(tiers))
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.where(c > 0, s / np.maximum(c, 1), np.nan)
        return cls(tuple(tiers), list(index), scores, answers, finish, logprobs, c)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> OutcomeTable:
        r = [int(i) for i in rows]
        return OutcomeTable(self.tiers, [self.prompts[i] for i in r], self.scores[r],
                            [self.answers[i] for i in r], [self.finish[i] for i in r],
                            [self.logprobs[i] for i in r], self.counts[r])

    def complete_rows(self) -> npt.NDArray[np.intp]:
        """Rows with a score at every tier: the ones a cascade can be replayed on."""
        return np.flatnonzero(~np.isnan(self.scores).any(axis=1))
