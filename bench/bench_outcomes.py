"""Learning from outcomes, measured on the development outcome sets in ../shared/data/outcomes.

    python bench/bench_outcomes.py [--splits 20] [--sets mmlu,gsm8k,alpaca] [--data DIR]
                                   [--gateway N] [--no-timing]

Each set is split in halves by prompt, ``--splits`` times at random. The outcome model is trained
and calibrated on one half (hyperparameters by cross-validation inside it; thresholds on its
out-of-fold predictions) and replayed on the other half, whose figures are printed (mean and
range over the splits) beside two baselines calibrated the same way on the same half: a TF-IDF
logistic router (one C, no classifier features, no check) and escalate-by-length (answer length
where the set has answers, else prompt length); for AlpacaEval also the outcome model with a
check that weighs no words, each check's AUC for "7B lost" on the held-out half, and cascadeflow
1.2.0's quality validator (offline, no LLM calls; as shipped and with its confidence thresholded
on the training half). Relative costs: weak 1 / strong 10 (MMLU, GSM8K); 7B 1, 13B 13/7, 70B 10
(params_b).

Rows are read into memory and turned into outcome records there; nothing is written to the repo.
Also times the decision and the check in-process and `train` on 20,000 records. ``--gateway N``
replays the first N AlpacaEval splits through ``tier-router serve`` as well (the shared
replay tool's doubles answer with the held-out half's recorded answers).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from classifier_service.feedback import OutcomeRecord
from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from classifier_service.routing.classifier import TierClassifier
from classifier_service.routing.outcome_model import ClassifierScores, OutcomeModel
from tier_router_training.outcomes.calibrate import choose, operating_points, point_arrays, replay
from tier_router_training.outcomes.fit import FitResult, fit
from tier_router_training.outcomes.records import OutcomeTable
from tier_router_training.outcomes.report import evaluate
from tier_router_training.outcomes.train import calibrate_fit, predict, train_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "outcomes"
SIZES = {"7b": "simple", "13b": "medium", "70b": "complex"}
TWO_COSTS = {"weak": 1.0, "strong": 10.0}
THREE_COSTS = {"simple": 1.0, "medium": 13 / 7, "complex": 10.0}
Target = dict[str, Any]


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def two_tier_records(rows: list[dict[str, Any]]) -> list[list[OutcomeRecord]]:
    return [[OutcomeRecord(r["prompt"], "weak", float(r["weak_score"]), category=r.get("subset")),
             OutcomeRecord(r["prompt"], "strong", float(r["strong_score"]),
                           category=r.get("subset"))] for r in rows]


def alpaca_records(rows: list[dict[str, Any]]) -> list[list[OutcomeRecord]]:
    out = []
    for r in rows:
        recs = [OutcomeRecord(r["prompt"], SIZES[s], float(w), answer=r["answers"][s],
                              finish_reason="stop", source="judge")
                for s, w in r["wins"].items() if w is not None]
        out.append(recs)
    return out


def cascadeflow_scores(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[bool, float]]:
    """(prompt, tier) -> (validator passed, 1 - its confidence), for every recorded answer."""
    from cascadeflow.quality.confidence import ProductionConfidenceEstimator
    from cascadeflow.quality.quality import QualityValidator

    logging.disable(logging.WARNING)
    validator, estimator = QualityValidator(), ProductionConfidenceEstimator()
    out = {}
    for r in rows:
        for size, tier in SIZES.items():
            answer = r["answers"][size]
            conf = estimator.estimate(answer, query=r["prompt"]).final_confidence
            res = validator.validate(answer, r["prompt"], conf)
            out[(r["prompt"], tier)] = (bool(res.passed), 1.0 - float(conf))
    logging.disable(logging.NOTSET)
    return out


def replay_on(ref: OutcomeTable, p_good: np.ndarray, p_bad: np.ndarray, costs: dict[str, float],
              point: dict[str, Any]) -> dict[str, float]:
    rt, ct = point_arrays(point, ref.tiers)
    cost = np.array([costs[t] for t in ref.tiers])
    r = replay(ref.scores, p_good, p_bad, cost, rt, ct)
    q = ref.scores.mean(axis=0)
    out = {"quality": r.quality, "cost": r.cost, "random": float(r.shares @ q),
           "cheap_share": float(r.shares[0]), "top_share": float(r.shares[-1])}
    if len(q) == 2:
        out["pgr"] = float((r.quality - q[0]) / (q[1] - q[0]))
        out["pgr_minus_random"] = out["pgr"] - out["top_share"]
    out["delta_random"] = r.quality - out["random"]
    for i, t in enumerate(ref.tiers):
        out[f"always_{t}"] = float(q[i])
    return out


def check_auc(table: OutcomeTable, p_bad: np.ndarray) -> float:
    """How well p_bad ranks the cheapest tier's answers that lost (score < 0.5) above those that
    did not, on the held-out half: the area under the ROC curve."""
    from sklearn.metrics import roc_auc_score

    lost = table.scores[:, 0] < 0.5
    return float(roc_auc_score(lost, p_bad[:, 0]))


def heuristic(train: OutcomeTable, test: OutcomeTable, costs: dict[str, float], target: Target,
              make: Callable[[OutcomeTable], tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Calibrate fixed scores (p_good, p_bad) on the training half, replay on the test half."""
    cost = np.array([costs[t] for t in train.tiers])
    g, b = make(train)
    pts = operating_points(train.scores, g, b, cost, [False] * len(train.tiers))
    point = choose(pts, train.tiers, train.scores, **target)
    g, b = make(test)
    return replay_on(test, g, b, costs, point)


def by_length(table: OutcomeTable) -> tuple[np.ndarray, np.ndarray]:
    n, nt = table.scores.shape
    if all(a is None for row in table.answers for a in row):  # prompt length: long goes up
        g = np.array([[1 / (1 + len(p))] * nt for p in table.prompts])
        return g, np.full((n, nt), np.nan)
    b = np.array([[1 / (1 + len(a or "")) for a in row] for row in table.answers])
    return np.zeros((n, nt)), b  # every prompt starts at the cheapest tier


def calibrated(result: FitResult, costs: dict[str, float], target: Target) -> OutcomeModel:
    """The fitted model with the operating point ``target`` asks for (as train_model does)."""
    meta = dict(result.metadata)
    meta["operating_point"] = calibrate_fit(result, costs, **target)
    meta["router"] = dict(meta["router"], mode=meta["operating_point"]["router_mode"])
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in result.arrays.items()}
    return OutcomeModel(meta, arrays, result.vocabulary, check_vocabulary=result.check_vocabulary)


def one_split(groups: list[list[OutcomeRecord]], tiers: tuple[str, ...], costs: dict[str, float],
              targets: list[Target], seed: int, clf: Callable[[str], ClassifierScores],
              cf: dict[tuple[str, str], tuple[bool, float]] | None
              ) -> list[dict[str, dict[str, float]]]:
    """One random half split: per target, each method's figures on the held-out half."""
    order = np.random.default_rng(seed).permutation(len(groups))
    half = len(groups) // 2
    train_recs = [r for i in order[:half] for r in groups[i]]
    test_recs = [r for i in order[half:] for r in groups[i]]
    train = OutcomeTable.build(train_recs, tiers)
    test = OutcomeTable.build(test_recs, tiers)
    train, test = train.subset(train.complete_rows()), test.subset(test.complete_rows())
    fitted = fit(train_recs, tiers, clf, seed=seed)
    base_fit = fit(train_recs, tiers, None, seed=seed, router_c=(1.0,), use_check=False)
    has_answers = any(a is not None for row in test.answers for a in row)
    plain_fit = fit(train_recs, tiers, clf, seed=seed, word_scales=(0.0,)) if has_answers else None
    out = []
    for target in targets:
        res: dict[str, dict[str, float]] = {}
        model = calibrated(fitted, costs, target)
        g, b = predict(model, test, clf)
        res["outcome model"] = replay_on(test, g, b, costs, model.metadata["operating_point"])
        if len(tiers) == 2:
            rep = evaluate(test.scores, g, b, tiers, costs, None, [False, False])
            res["outcome model"].update({f"pgr@{k}": v - float(k) for k, v in rep["pgr"].items()})
            res["outcome model"]["apgr"] = rep["apgr"]
        if plain_fit is not None:
            res["outcome model"]["check_auc"] = check_auc(test, b)
            plain = calibrated(plain_fit, costs, target)
            g, b = predict(plain, test, clf)
            res["outcome model, no words"] = replay_on(test, g, b, costs,
                                                       plain.metadata["operating_point"])
            res["outcome model, no words"]["check_auc"] = check_auc(test, b)
        base = calibrated(base_fit, costs, target)
        g, b = predict(base, test)
        res["tf-idf logistic"] = replay_on(test, g, b, costs, base.metadata["operating_point"])
        res["by length"] = heuristic(train, test, costs, target, by_length)
        if has_answers:
            res["by length"]["check_auc"] = check_auc(test, by_length(test)[1])
        if cf is not None:
            def cf_make(passed: bool) -> Callable[[OutcomeTable], tuple[np.ndarray, np.ndarray]]:
                def make(t: OutcomeTable) -> tuple[np.ndarray, np.ndarray]:
                    b = np.array([[(0.0 if cf[(p, tier)][0] else 1.0) if passed
                                   else cf[(p, tier)][1] for tier in tiers] for p in t.prompts])
                    return np.zeros(b.shape), b
                return make
            g, b = cf_make(True)(test)
            shipped = {"router_thresholds": dict.fromkeys(tiers, 0.0),
                       "check_thresholds": dict.fromkeys(tiers, 0.5)}
            res["cascadeflow as shipped"] = replay_on(test, g, b, costs, shipped)
            res["cascadeflow thresholded"] = heuristic(train, test, costs, target,
                                                       cf_make(False))
        out.append(res)
    return out


def summarise(name: str, runs: list[dict[str, dict[str, float]]], keys: list[str]) -> None:
    print(f"\n== {name}: {len(runs)} splits, held-out halves: mean (sd) [min, max]")
    for method in runs[0]:
        cells = []
        for k in keys:
            vals = [r[method][k] for r in runs if k in r[method]]
            if vals:
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{k} {statistics.mean(vals):+.3f} ({sd:.3f}) "
                             f"[{min(vals):+.3f}, {max(vals):+.3f}]")
        print(f"  {method:<24} " + "; ".join(cells))


def timings(mmlu: list[dict[str, Any]], alpaca: list[dict[str, Any]],
            clf: Callable[[str], ClassifierScores], out: Path) -> None:
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(mmlu), 10_000)
    recs = [rec for k, i in enumerate(picks)
            for rec in two_tier_records([dict(mmlu[i], prompt=f"{mmlu[i]['prompt']}\n#{k}")])[0]]
    start = time.perf_counter()
    train_model(recs, ("weak", "strong"), TWO_COSTS, out / "mmlu-20k", classifier=clf,
                max_share={"strong": 0.3})
    print(f"\ntrain on {len(recs):,} records (classifier features, CV, calibrate, save): "
          f"{time.perf_counter() - start:.1f} s")
    groups = alpaca_records(alpaca)
    model, _ = train_model([r for g in groups for r in g], tuple(THREE_COSTS), THREE_COSTS,
                           out / "alpaca", classifier=clf, match_tier="medium")
    # Every call on a prompt the model has not scored yet: its cache of router logits would
    # otherwise answer repeats (the gateway's check does reuse its decision's).
    prompts = [f"{r['prompt']} ({k})" for k in range(5) for r in alpaca]
    scored = [clf(p) for p in prompts]
    decide, both, classify = [], [], []
    for p, s in zip(prompts, scored, strict=True):
        t0 = time.perf_counter()
        model.decide(p, s)
        t1 = time.perf_counter()
        model._logits.clear()
        t2 = time.perf_counter()
        model.decide(p, clf(p))
        t3 = time.perf_counter()
        clf(p)
        t4 = time.perf_counter()
        model._logits.clear()
        decide.append(t1 - t0)
        both.append(t3 - t2)
        classify.append(t4 - t3)
    long_answers = [a[:2400] for r in alpaca for a in r["answers"].values() if len(a) >= 2400]
    checks = []
    for i in range(2000):
        k = i % len(prompts)
        t0 = time.perf_counter()
        model.check(prompts[k], long_answers[i % len(long_answers)], "simple", "stop", None,
                    scored[k])
        checks.append(time.perf_counter() - t0)
    print(f"decide p50 {statistics.median(decide) * 1e3:.3f} ms (given classifier scores); "
          f"with the classifier's scoring {statistics.median(both) * 1e3:.3f} ms (the "
          f"classifier alone {statistics.median(classify) * 1e3:.3f} ms)")
    print(f"learned check p50 for a 2,400-char answer ({len(long_answers)} recorded answers "
          f"cut to 2,400): {statistics.median(checks) * 1e3:.3f} ms")


REPLAY = DATA.parents[1] / "tools" / "replay_alpaca.py"
REPLAY_LINE = re.compile(r"always-13B (?P<m>[\d.]+).*?answered by (?P<shares>\{[^}]*\}).*?"
                         r"quality (?P<q>[\d.]+); random router with the same mix (?P<r>[\d.]+)",
                         re.DOTALL)


def gateway_splits(alpaca: list[dict[str, Any]], splits: int,
                   clf: Callable[[str], ClassifierScores], replay: Path) -> None:
    """The first ``splits`` random halves again, through the real gateway: a model folder
    trained and calibrated (``--match-tier medium``) on one half, served by ``tier-router
    serve`` in front of three doubles that replay the other half's recorded answers
    (../shared/tools/replay_alpaca.py), every prompt sent once with ``model: auto``."""
    import shutil
    import subprocess
    import sys
    import tempfile

    binary = shutil.which("tier-router")
    if binary is None or not replay.is_file():
        print(f"\nthrough the gateway: skipped (needs tier-router on PATH and {replay})")
        return
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(splits):
            order = np.random.default_rng(seed).permutation(len(alpaca))
            half = len(alpaca) // 2
            train_rows = [alpaca[i] for i in order[:half]]
            rows = Path(tmp) / f"rows-{seed}.jsonl"
            rows.write_text("".join(json.dumps(alpaca[i]) + "\n" for i in order[half:]))
            model = Path(tmp) / f"model-{seed}"
            train_model([r for g in alpaca_records(train_rows) for r in g], tuple(THREE_COSTS),
                        THREE_COSTS, model, classifier=clf, match_tier="medium",
                        classifier_dir=bundled_model_dir())
            out = subprocess.run([sys.executable, str(replay), "--rows", str(rows), "--model",
                                  str(model), "--bin", binary], capture_output=True, text=True,
                                 timeout=600, check=False).stdout
            found = REPLAY_LINE.search(out)
            if found is None:
                print(f"split {seed}: the replay printed no figures:\n{out}")
                continue
            shares = json.loads(found["shares"].replace("'", '"'))
            quality = float(found["q"])
            runs.append({"vs_always13B": quality - float(found["m"]), "cheap_share": shares["7b"],
                         "delta_random": quality - float(found["r"]), "quality": quality})
    if runs:
        summarise(f"alpaca --match-tier medium through the gateway (replay_alpaca.py), first "
                  f"{len(runs)} splits", [{"outcome model": r} for r in runs],
                  ["quality", "vs_always13B", "cheap_share", "delta_random"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--sets", default="mmlu,gsm8k,alpaca")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--gateway", type=int, default=0, metavar="N",
                    help="also replay the first N AlpacaEval splits through tier-router serve")
    a = ap.parse_args()
    clf = TierClassifier(load_artifact(bundled_model_dir())).score
    sets = a.sets.split(",")
    mmlu = read_rows(a.data / "routellm-mmlu-dev.jsonl")
    alpaca = [r for r in read_rows(a.data / "alpacaeval-llama2-chat-dev.jsonl")
              if None not in r["wins"].values()]
    pgr_keys = ["pgr_minus_random", "pgr", "top_share", "pgr@0.30", "apgr"]
    for name, file, target in (("mmlu", "routellm-mmlu-dev.jsonl", 0.15),
                               ("gsm8k", "routellm-gsm8k-dev.jsonl", 0.03)):
        if name in sets:
            groups = two_tier_records(mmlu if name == "mmlu" else read_rows(a.data / file))
            runs = [one_split(groups, ("weak", "strong"), TWO_COSTS,
                              [{"max_share": {"strong": 0.3}}], s, clf, None)[0]
                    for s in range(a.splits)]
            summarise(f"{name} --max-share strong=0.3 (target PGR - random >= +{target})",
                      runs, pgr_keys)
    if "alpaca" in sets:
        try:
            cf = cascadeflow_scores(alpaca)
        except ImportError:
            print("cascadeflow not installed")
            cf = None
        targets: list[tuple[str, Target]] = [
            ("--match-tier medium (most on 7B, quality >= always-13B by 1 SE)",
             {"match_tier": "medium"}),
            ("--match-tier medium --objective cost (cheapest by params_b cost)",
             {"match_tier": "medium", "objective": "cost"}),
            ("--min-share simple=0.65 (best quality with >= 65% on 7B)",
             {"min_share": {"simple": 0.65}}),
            ("--match-tier medium --min-share simple=0.65",
             {"match_tier": "medium", "min_share": {"simple": 0.65}})]
        groups = alpaca_records(alpaca)
        per_split = [one_split(groups, tuple(THREE_COSTS), THREE_COSTS,
                               [t for _, t in targets], s, clf, cf) for s in range(a.splits)]
        for k, (label, _) in enumerate(targets):
            runs = [split[k] for split in per_split]
            for r in runs:
                for m in r.values():
                    m["vs_always13B"] = m["quality"] - m["always_medium"]
            summarise(f"alpaca {label}; targets vs_always13B >= +0.02 with cheap_share >= 0.65, "
                      "delta_random >= +0.05", runs,
                      ["quality", "vs_always13B", "cheap_share", "delta_random", "cost",
                       "check_auc"])
    if "alpaca" in sets and a.gateway:
        gateway_splits(alpaca, a.gateway, clf, REPLAY)
    if not a.no_timing:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            timings(mmlu, alpaca, clf, Path(tmp))


if __name__ == "__main__":
    main()
