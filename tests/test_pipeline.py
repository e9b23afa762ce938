from __future__ import annotations

import numpy as np

from tier_router_training.pipeline import fold_splits


def test_fold_splits_partition_the_rows_stratified_and_repeatably() -> None:
    tiers = ["simple"] * 10 + ["medium"] * 15 + ["complex"] * 5
    splits = fold_splits(tiers, folds=5, seed=7)
    assert len(splits) == 5
    tests = np.concatenate([test for _, test in splits])
    assert sorted(tests.tolist()) == list(range(len(tiers)))  # each row tested exactly once
    for train, test in splits:
        assert set(train.tolist()).isdisjoint(test.tolist())
        assert sorted([*train.tolist(), *test.tolist()]) == list(range(len(tiers)))
        assert sorted(tiers[i] for i in test) == ["complex"] + ["medium"] * 3 + ["simple"] * 2
    again = fold_splits(tiers, folds=5, seed=7)
    assert all((a[1] == b[1]).all() for a, b in zip(splits, again, strict=True))
    other = fold_splits(tiers, folds=5, seed=8)
    assert any((a[1] != b[1]).any() for a, b in zip(splits, other, strict=True))
