"""``tier-router label``: outcome records for past prompts, judged pairwise, offline.

For each prompt of ``--prompts`` (JSONL objects or a CSV, with a ``prompt`` field or column),
each tier's first endpoint answers it (or only the two tiers of ``--tiers a,b``); the judge
compares the answers of each pair of neighbouring tiers in both orders
(:mod:`classifier_service.gateway.verdicts`), and two records per pair (``source: judge``)
are appended to ``--out``: the cheaper tier gets the pair's score, the dearer one 1 minus it.
All records of a prompt go in one write, so a prompt is in the file whole or not at all.

Resume: prompts whose hash (SHA-256 of the text) is already in ``--out`` are skipped, so an
interrupted run goes on where it stopped when run again. A prompt that fails (a timeout, a
server error, a verdict that is neither A, B nor tie) writes nothing and is counted; the next
run tries it again. Servers that cannot be reached are named before any work starts.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import itertools
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from classifier_service.cli.common import Commands
from classifier_service.errors import BackendError, DataError, UpstreamRejected
from classifier_service.feedback import (
    OutcomeRecord,
    append_outcomes,
    read_records,
    writable_problem,
)
from classifier_service.portfolio.judge import JudgeSettings
from classifier_service.portfolio.model import Endpoint, Portfolio, load_portfolio

if TYPE_CHECKING:  # the gateway's client (aiohttp) loads only when a label run starts
    from classifier_service.gateway.backends import Backends

CONNECT_TIMEOUT_S = 5.0


def add_label(sub: Commands) -> None:
    label = sub.add_parser(
        "label", help="judge past prompts into outcome records",
        description="Ask each tier (or two, --tiers a,b) to answer each prompt, have a judge "
        "compare neighbouring tiers' answers in both orders, and append outcome records "
        "(source judge) to --out. Run again to resume: prompts already in --out are skipped.")
    label.add_argument("--prompts", type=Path, required=True, metavar="FILE",
                       help="past prompts: JSONL with a 'prompt' field, or CSV with a "
                       "'prompt' column")
    label.add_argument("--portfolio", type=Path, required=True, metavar="FILE",
                       help="the portfolio whose tiers answer")
    label.add_argument("--judge", metavar="ENDPOINT",
                       help="the judge: an endpoint name of the portfolio (default: the "
                       "portfolio's judge section)")
    label.add_argument("--out", type=Path, required=True, metavar="FILE",
                       help="outcome records (JSONL) are appended here")
    label.add_argument("--tiers", metavar="A,B",
                       help="compare only these two tiers (default: every neighbouring pair)")
    label.add_argument("--limit", type=_positive, metavar="N",
                       help="label at most N new prompts this run")
    label.add_argument("--concurrency", type=_positive, default=2, metavar="N",
                       help="prompts labelled at once (default 2)")
    label.add_argument("--timeout", type=_seconds, metavar="S",
                       help="seconds one judge call may take (default: the judge section's "
                       "timeout_s, else 60); tiers get policy.backend_timeout_s")
    label.add_argument("--quiet", action="store_true", help="no progress bar")
    label.set_defaults(handler=_label)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def read_prompts(path: Path) -> tuple[list[str], list[str]]:
    """The prompts of a JSONL or CSV file (in order, each once), and a note per bad row."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from None
    rows: list[tuple[int, Any]] = []
    problems: list[str] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if "prompt" not in (reader.fieldnames or []):
            raise DataError(f"{path}: no 'prompt' column (columns: "
                            f"{', '.join(reader.fieldnames or []) or 'none'})")
        rows = [(n, row) for n, row in enumerate(reader, 2)]
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError:
                problems.append(f"{path}:line {n}: not JSON, skipped")
    prompts: dict[str, str] = {}
    for n, row in rows:
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append(f"{path}:line {n}: no prompt (a non-empty 'prompt' string), skipped")
            continue
        prompts.setdefault(prompt_hash(prompt), prompt)
    return list(prompts.values()), problems


def done_hashes(path: Path) -> set[str]:
    """Hashes of the prompts ``path`` already holds judge records for."""
    if not path.exists():
        return set()
    records, _ = read_records(path)
    return {prompt_hash(r["prompt"]) for _, r in records
            if isinstance(r.get("prompt"), str) and r.get("source") == "judge"}


def judge_of(portfolio: Portfolio, name: str | None, path: Path) -> Endpoint:
    if name is None:
        endpoint = portfolio.judge_endpoint()
        if endpoint is None:
            raise DataError(f"{path}: no judge section; name the judge with --judge ENDPOINT")
        return endpoint
    try:
        return portfolio.endpoint(name)
    except KeyError:
        known = ", ".join(e.name for e in portfolio.all_endpoints())
        raise DataError(f"unknown judge endpoint {name!r} (endpoints of {path}: {known})"
                        ) from None


def tier_pairs(portfolio: Portfolio, tiers: str | None) -> list[tuple[str, str]]:
    if tiers is None:
        names = portfolio.tier_names
        if len(names) < 2:
            raise DataError("the portfolio has one tier: there is nothing to compare")
        return list(itertools.pairwise(names))
    chosen = [t.strip() for t in tiers.split(",")]
    if len(chosen) != 2 or chosen[0] == chosen[1]:
        raise DataError(f"--tiers {tiers!r}: name two different tiers, e.g. simple,complex")
    for tier in chosen:
        if not portfolio.has_tier(tier):
            raise DataError(f"--tiers: unknown tier {tier!r} (tiers: "
                            f"{', '.join(portfolio.tier_names)})")
    low, high = sorted(chosen, key=portfolio.tier_index)
    return [(low, high)]


async def unreachable(endpoints: list[Endpoint]) -> list[str]:
    """A line for each server that does not accept a connection."""
    problems: list[str] = []
    for endpoint in {e.base_url: e for e in endpoints}.values():
        url = urlsplit(endpoint.base_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, writer = await asyncio.open_connection(url.hostname, port)
            writer.close()
            await writer.wait_closed()
        except TimeoutError:
            problems.append(f"{endpoint.name} at {endpoint.base_url}: no answer in "
                            f"{CONNECT_TIMEOUT_S:g} s")
        except ConnectionRefusedError:
            problems.append(f"{endpoint.name} at {endpoint.base_url}: connection refused")
        except OSError as exc:
            problems.append(f"{endpoint.name} at {endpoint.base_url}: {exc}")
    return problems


@dataclass
class Run:
    portfolio: Portfolio
    judge: Endpoint
    settings: JudgeSettings
    pairs: list[tuple[str, str]]
    out: Path
    written: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def endpoints(self) -> dict[str, Endpoint]:
        tiers = {t for pair in self.pairs for t in pair}
        return {t.name: t.endpoints[0] for t in self.portfolio.tiers if t.name in tiers}

    async def label(self, backends: Backends, prompt: str) -> None:
        from classifier_service.gateway.verdicts import JudgeFailed, judge_pair

        endpoints = self.endpoints()
        request = {"messages": [{"role": "user", "content": prompt}], "stream": False}
        timeout = self.portfolio.policy.backend_timeout_s
        try:
            try:
                answers = dict(zip(endpoints, await asyncio.gather(
                    *(backends.complete(e, request, timeout) for e in endpoints.values())),
                    strict=True))
            except (BackendError, UpstreamRejected) as exc:
                raise JudgeFailed(f"a tier could not answer: {exc}") from None
            records: list[OutcomeRecord] = []
            for low, high in self.pairs:
                verdict = await judge_pair(backends, self.judge, self.settings, prompt,
                                           answers[low].content, answers[high].content)
                for tier, score in ((low, verdict.score_x), (high, verdict.score_y)):
                    records.append(OutcomeRecord(
                        prompt, tier, score, answer=answers[tier].content,
                        finish_reason=answers[tier].finish_reason,
                        endpoint=endpoints[tier].name, source="judge"))
            try:
                await asyncio.to_thread(append_outcomes, self.out, records)
            except OSError as exc:
                raise DataError(f"cannot write {self.out}: {exc.strerror or exc}") from None
            self.written += len(records)
        except JudgeFailed as exc:
            self.failures[exc.reason] += 1


async def label_all(run: Run, prompts: list[str], concurrency: int, quiet: bool) -> None:
    from tier_router_training.progress import Progress

    problems = await unreachable([run.judge, *run.endpoints().values()])
    if problems:
        raise DataError("cannot reach " + "; ".join(problems))
    progress = Progress(len(prompts), "prompts labelled", enabled=not quiet)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for prompt in prompts:
        queue.put_nowait(prompt)
    from classifier_service.gateway.backends import Backends

    backends = Backends.open(run.portfolio.policy.backend_timeout_s)

    async def worker() -> None:
        while not queue.empty():
            await run.label(backends, queue.get_nowait())
            progress.advance()

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await backends.close()


def _label(args: argparse.Namespace) -> int:
    portfolio = load_portfolio(args.portfolio)
    judge = judge_of(portfolio, args.judge, args.portfolio)
    base = portfolio.judge or JudgeSettings(endpoint=judge.name)
    settings = base.model_copy(update={"timeout_s": args.timeout}) if args.timeout else base
    pairs = tier_pairs(portfolio, args.tiers)
    prompts, problems = read_prompts(args.prompts)
    for problem in problems[:20]:
        print(f"tier-router: warning: {problem}", file=sys.stderr)
    unwritable = writable_problem(args.out, folder=False)
    if unwritable is not None:
        raise DataError(f"--out: {unwritable}")
    done = done_hashes(args.out)
    todo = [p for p in prompts if prompt_hash(p) not in done]
    if args.limit is not None:
        todo = todo[:args.limit]
    run = Run(portfolio, judge, settings, pairs, args.out)
    asyncio.run(label_all(run, todo, args.concurrency, args.quiet))
    failed = sum(run.failures.values())
    print(f"labelled {len(todo) - failed} prompts ({run.written} records) into {args.out}; "
          f"{len(prompts) - len(todo)} skipped (already there or over --limit), {failed} failed")
    for reason, count in run.failures.most_common(5):
        print(f"  {count} x {reason}")
    if failed:
        print("run the same command again to retry the failed prompts", file=sys.stderr)
    return 1 if failed else 0
