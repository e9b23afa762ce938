"""Production benchmark: tier-router against an embedding router, HTTP load, gateway, training.

    python -m bench.bench_production [--sections classifier,http,gateway,training]
                                     (from the repository root; the embedding router needs
                                     the bench extra: see bench/embedding_router.py)

Prints, section by section, on the prompts of ``shared/data/dolly-dev.jsonl`` (read only):

1. classifier: tier macro-F1, 5-fold cross-validated on the same folds
   (:func:`tier_router_training.pipeline.fold_splits`) for tier-router's recipe and for the
   embedding router (all-MiniLM-L6-v2 + logistic regression; its C is picked on those same
   folds, which flatters it); then per-decision latency, one prompt at a time, in-process:
   tier-router's ``Runtime.route`` (compiled scorer + policy, the service's path, shipped
   model) against encode + predict; and the ratio. Goal: >= 100x faster at equal or better
   macro-F1; the verdict is printed.
2. http: ``POST /v1/route`` throughput and p50/p99 with wrk at 1, 16 and 64 connections
   against ``tier-router serve`` on 127.0.0.1 (uvicorn, 1 and 2 workers). Skipped with a
   message when wrk is missing.
3. gateway: :func:`bench.bench_gateway.measure_gateway`.
4. training: :func:`bench.bench_training.training_time`.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from bench.bench_gateway import measure_gateway
from bench.bench_latency import percentiles, time_each
from bench.bench_training import DEFAULT_DATA, ORDER, SEEDS, training_time
from bench.embedding_router import (
    EmbeddingRouter,
    EmbeddingUnavailableError,
    embed_cached,
    fit_classifier,
    load_encoder,
)
from bench.service_process import tier_router_server
from bench.wrk_load import WRK_HINT, find_wrk, run_wrk, write_bodies
from classifier_service.portfolio.model import bundled_portfolio_path
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.runtime import Runtime
from tier_router_training.dataset import Example, load_examples
from tier_router_training.pipeline import Recipe, cross_validate, fold_splits, sort_examples

SECTIONS = ("classifier", "http", "gateway", "training")
SPEEDUP_GOAL = 100.0
C_GRID = (1.0, 4.0, 16.0)
FOLDS = 5
WIDTH = 58


@dataclass(frozen=True)
class Quality:
    name: str
    f1s: list[float]
    accuracy: float

    @property
    def macro_f1(self) -> float:
        return statistics.mean(self.f1s)


def row(name: str, *cells: str) -> str:
    return f"{name:<{WIDTH}}" + "".join(f"{c:>10}" for c in cells)


def heading(title: str) -> None:
    print(f"\n== {title}", flush=True)


def tier_router_quality(examples: Sequence[Example], seeds: Sequence[int]) -> list[Quality]:
    out = []
    for name, recipe in (("tier-router, default recipe", Recipe()),
                         ("tier-router, --class-weight balanced",
                          Recipe(class_weight="balanced"))):
        runs = [cross_validate(examples, ORDER, folds=FOLDS, recipe=recipe, seed=s)
                for s in seeds]
        out.append(Quality(name, [cv.macro_f1 for cv in runs],
                           statistics.mean(cv.accuracy for cv in runs)))
    return out


def embedding_quality(
    x: np.ndarray, tiers: Sequence[str], seeds: Sequence[int], class_weight: str | None
) -> tuple[Quality, float]:
    """Cross-validated quality of the logistic regression on embeddings, at its best C."""
    labels = np.asarray(tiers)
    best: tuple[Quality, float] | None = None
    for c in C_GRID:
        f1s, accs = [], []
        for seed in seeds:
            predicted = np.empty(len(labels), dtype=object)
            for train_idx, test_idx in fold_splits(tiers, FOLDS, seed):
                model = fit_classifier(x[train_idx], labels[train_idx].tolist(), c, class_weight)
                predicted[test_idx] = model.predict(x[test_idx])
            pred = predicted.astype(str)
            f1s.append(float(f1_score(labels, pred, labels=ORDER, average="macro")))
            accs.append(float((pred == labels).mean()))
        weight = ", balanced" if class_weight else ""
        quality = Quality(f"embedding + LR{weight} (C={c:g}, best of {len(C_GRID)})", f1s,
                          statistics.mean(accs))
        if best is None or quality.macro_f1 > best[0].macro_f1:
            best = (quality, c)
    assert best is not None
    return best


def classifier_section(args: argparse.Namespace, examples: list[Example]) -> None:
    seeds = SEEDS[: args.shuffles]
    prompts = [e.prompt for e in examples]
    tiers = [e.tier for e in examples]
    heading(f"1. classifier: tier macro-F1 on {args.data.name} ({len(examples)} distinct "
            f"prompts), {FOLDS}-fold CV on the same folds, {len(seeds)} shuffle(s)")
    print(row("router", "macro-F1", "accuracy"), flush=True)
    ours = tier_router_quality(examples, seeds)
    for q in ours:
        print(row(q.name, f"{q.macro_f1:.4f}", f"{q.accuracy:.4f}"), flush=True)

    try:
        encoder = load_encoder(args.threads)
    except EmbeddingUnavailableError as exc:
        print(row("embedding router", "skipped"))
        print(f"   {exc}")
        encoder = None
    theirs: list[tuple[Quality, float, str | None]] = []
    x = np.zeros((0, 0))
    if encoder is not None:
        start = time.perf_counter()
        x, cached = embed_cached(encoder, prompts, None if args.no_cache else args.cache_dir)
        encode_s = time.perf_counter() - start
        for weight in (None, "balanced"):
            quality, c = embedding_quality(x, tiers, seeds, weight)
            theirs.append((quality, c, weight))
            print(row(quality.name, f"{quality.macro_f1:.4f}", f"{quality.accuracy:.4f}"),
                  flush=True)
        print(f"   (embeddings of the {len(prompts)} prompts: {encode_s:.1f} s, "
              f"{'read from the cache' if cached else 'encoded in batches of 64'}; "
              f"PyTorch and BLAS threads {encoder.threads})")

    rng = random.Random(20261129)
    sample = rng.sample(prompts, min(len(prompts), args.latency_prompts + 20))
    warm, timed = sample[:20], sample[20:]
    heading(f"per-decision latency, one prompt at a time, in-process, the same "
            f"{len(timed)} prompts")
    print(row("router", "p50 ms", "p99 ms", "mean ms"))
    runtime = Runtime.load(bundled_portfolio_path(), bundled_model_dir())
    for prompt in warm:
        runtime.route(prompt)
    our_ms = time_each(runtime.route, timed)
    p50, p99 = percentiles(our_ms)
    print(row(f"tier-router Runtime.route (model {runtime.model_version})", f"{p50:.3f}",
              f"{p99:.3f}", f"{statistics.mean(our_ms):.3f}"), flush=True)
    if encoder is None:
        print(row("embedding router (encode + predict)", "skipped"))
        return
    best_quality, best_c, best_weight = max(theirs, key=lambda t: t[0].macro_f1)
    router = EmbeddingRouter(encoder, fit_classifier(x, tiers, best_c, best_weight))
    for prompt in warm:
        router.decide(prompt)
    their_ms = time_each(router.decide, timed)
    e50, e99 = percentiles(their_ms)
    print(row("embedding router (encode one prompt + LR predict)", f"{e50:.3f}",
              f"{e99:.3f}", f"{statistics.mean(their_ms):.3f}"))
    ratio = e50 / p50
    print(row("ratio embedding / tier-router", f"{ratio:.0f}x", f"{e99 / p99:.0f}x",
              f"{statistics.mean(their_ms) / statistics.mean(our_ms):.0f}x"))

    best_ours = max(ours, key=lambda q: q.macro_f1)
    speed_ok = ratio >= SPEEDUP_GOAL
    f1_ok = best_ours.macro_f1 >= best_quality.macro_f1
    heading("goal: >= 100x faster per decision, at equal or better macro-F1")
    print(f"speed:    {'MET' if speed_ok else 'NOT MET'}: p50 {p50:.3f} ms against "
          f"{e50:.3f} ms, {ratio:.0f}x (goal >= {SPEEDUP_GOAL:.0f}x)")
    print(f"macro-F1: {'MET' if f1_ok else 'NOT MET'}: {best_ours.macro_f1:.4f} "
          f"({best_ours.name}) against {best_quality.macro_f1:.4f} ({best_quality.name})")
    print(f"overall:  {'MET' if speed_ok and f1_ok else 'NOT MET'}", flush=True)


def http_section(args: argparse.Namespace, examples: list[Example]) -> None:
    heading(f"2. HTTP: POST /v1/route with wrk, {args.duration} s per row, 1 wrk thread, "
            f"keep-alive, distinct prompts")
    wrk = find_wrk(args.wrk)
    if wrk is None:
        where = f" at {args.wrk}" if args.wrk else " on PATH"
        print(f"skipped: no wrk{where}. {WRK_HINT}")
        return
    print(row("server", "conns", "req/s", "p50 ms", "p99 ms", "errors"))
    with tempfile.TemporaryDirectory() as tmp:
        bodies = write_bodies([e.prompt for e in examples], Path(tmp) / "bodies.jsonl")
        for workers in args.workers:
            name = f"uvicorn, {workers} worker{'s' if workers > 1 else ''}"
            try:
                with tier_router_server(workers) as url:
                    run_wrk(wrk, url, bodies, 16, 2)  # warm-up, not counted
                    for connections in args.connections:
                        r = run_wrk(wrk, url, bodies, connections, args.duration)
                        print(row(name, str(connections), f"{r.throughput:.0f}",
                                  f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", str(r.errors)),
                              flush=True)
            except RuntimeError as exc:
                print(row(name, "failed"))
                print(f"   {exc}")


def gateway_section(args: argparse.Namespace) -> None:
    heading(f"3. gateway overhead over a direct backend call, {args.gateway_requests} "
            "sequential requests each, interleaved (python -m bench.bench_gateway)")
    timings = measure_gateway(args.gateway_requests)
    base = statistics.median(timings.direct)
    print(row("path", "p50 ms", "p99 ms", "over. p50"))
    for name, samples in timings.rows():
        p50, p99 = percentiles(samples)
        print(row(name, f"{p50:.2f}", f"{p99:.2f}", f"{p50 - base:.2f}"), flush=True)


def training_section(args: argparse.Namespace, examples: list[Example]) -> None:
    heading("4. training time (python bench/bench_training.py)")
    seconds, cv_f1 = training_time(examples, args.train_rows)
    print(row("what", "seconds", "cv F1"))
    print(row(f"tier-router train, {args.train_rows} prompts (5-fold CV + fit + save)",
              f"{seconds:.1f}", f"{cv_f1:.3f}"))


def sections(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {unknown or text!r}; choose from {', '.join(SECTIONS)}")
    return chosen


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from exc
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=sections, default=list(SECTIONS),
                        help=f"comma-separated, default all: {','.join(SECTIONS)}")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--shuffles", type=int, choices=range(1, len(SEEDS) + 1), default=1,
                        help="repeat the 5-fold CV over this many fold shuffles (default 1)")
    parser.add_argument("--latency-prompts", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch and BLAS threads in the classifier section (default 1: "
                             "one decision per core, as the service makes them; more threads "
                             "on a busy 2-core machine made encoding 5-10x slower)")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path.home() / ".cache" / "tier-router" / "bench",
                        help="where embeddings of the data are kept between runs")
    parser.add_argument("--no-cache", action="store_true", help="always encode afresh")
    parser.add_argument("--wrk", type=Path, default=None, help="the wrk binary (default: PATH)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk row")
    parser.add_argument("--connections", type=int_list, default=[1, 16, 64])
    parser.add_argument("--workers", type=int_list, default=[1, 2],
                        help="uvicorn worker counts to serve with (default 1,2)")
    parser.add_argument("--gateway-requests", type=int, default=1000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data: no such file: {args.data}")

    examples = sort_examples(load_examples([args.data]))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"tier-router production benchmark: Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {load}, {sys.platform}")
    started = time.perf_counter()
    if "classifier" in args.sections:
        with threadpool_limits(limits=args.threads):
            classifier_section(args, examples)
    if "http" in args.sections:
        http_section(args, examples)
    if "gateway" in args.sections:
        gateway_section(args)
    if "training" in args.sections:
        training_section(args, examples)
    print(f"\n(run took {time.perf_counter() - started:.0f} s; load average now "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())})")


if __name__ == "__main__":
    main()
