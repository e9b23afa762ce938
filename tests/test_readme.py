"""Every shell and YAML snippet of the README runs as written, or says why it cannot here.

The ```sh blocks run with bash in a temporary folder (``set -euo pipefail``), with this
environment's ``tier-router`` first on ``PATH``, ``XDG_STATE_HOME`` in the folder, and the data
files the training block names (``my_tasks.jsonl``, ``holdout.jsonl``, ``traffic.jsonl``).
Blocks that talk to ``localhost:8700`` go to a real ``tier-router serve`` started here on a free
port; a ``tier-router serve`` line inside a block is started in the background, checked to
answer ``/healthz`` and stopped. The ```yaml blocks load: a whole portfolio with
``parse_portfolio``, a fragment (top-level portfolio keys only) merged into the bundled
portfolio, anything else (Prometheus' configuration) as YAML.

A block that needs what a test machine lacks (Ollama, Docker, a cluster, the network) carries
``<!-- readme-test: skip (REASON) -->`` on the line before it; the skipped blocks are printed
(``pytest -rP tests/test_readme.py`` shows them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from classifier_service.portfolio.model import Portfolio, bundled_portfolio_path, parse_portfolio
from tests.conftest import free_port, write_jsonl
from tests.support.processes import serve, stop, wait_for
from tests.support.rows import small_rows

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^(?P<indent> *)```(?P<lang>sh|yaml)\n(?P<body>.*?)^(?P=indent)```",
                   re.M | re.S)
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.*)\)\s*-->")
SERVER = re.compile(r"(?:localhost|127\.0\.0\.1):8700")
SERVE_LINE = re.compile(r"^tier-router serve\b.*$", re.M)


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    body: str
    skip: str | None

    def __str__(self) -> str:
        first = self.body.strip().splitlines()[0]
        return f"README.md:{self.line} ({self.lang}) {first[:60]}"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = [x for x in text[:match.start()].splitlines() if x.strip()]
        marker = SKIP.search(before[-1]) if before else None
        found.append(Block(line, match.group("lang"), textwrap.dedent(match.group("body")),
                           marker.group("reason") if marker else None))
    return found


ALL = blocks()
SH = [b for b in ALL if b.lang == "sh" and b.skip is None]
YAML = [b for b in ALL if b.lang == "yaml" and b.skip is None]


def test_the_readme_has_runnable_blocks_and_lists_what_it_skips() -> None:
    skipped = [b for b in ALL if b.skip is not None]
    print("README blocks skipped here:")
    for block in skipped:
        print(f"  {block}: {block.skip}")
    assert SH and YAML
    assert all(b.skip.startswith("needs") for b in skipped if b.skip)  # a reason, not a shrug
    assert "evaluate --data ../shared" not in README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("readme")
    rows = small_rows()
    write_jsonl(work / "my_tasks.jsonl", rows)
    write_jsonl(work / "holdout.jsonl", [{**r, "prompt": f"please: {r['prompt']}"}
                                         for r in rows])
    write_jsonl(work / "traffic.jsonl", [{"prompt": r["prompt"]} for r in rows
                                         if r["tier"] != "complex"])
    return work


@pytest.fixture(scope="module")
def environment(folder: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "XDG_STATE_HOME": str(folder / "state"), "TIER_ROUTER_PORT": str(free_port())}


@pytest.fixture(scope="module")
def server(folder: Path, environment: dict[str, str]) -> Any:
    proc, url = serve(log=folder / "server.log", env={"XDG_STATE_HOME": environment[
        "XDG_STATE_HOME"]})
    yield url
    stop(proc)


def run_sh(body: str, folder: Path, env: dict[str, str]) -> str:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{body}\n--- stdout\n{result.stdout}\n--- stderr\n" \
                                   f"{result.stderr}"
    return result.stdout


def start_serve(line: str, folder: Path, env: dict[str, str]) -> None:
    """A ``tier-router serve`` line: started in the background, answers, stopped."""
    log = folder / "serve-line.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=folder, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{env['TIER_ROUTER_PORT']}/healthz"

    def healthy() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return proc.poll() is not None  # it exited: stop waiting, fail below
    try:
        assert wait_for(healthy, timeout=90) and proc.poll() is None, \
            f"{line!r} did not start: {log.read_text(encoding='utf-8')}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", SH, ids=str)
def test_shell_block_runs(block: Block, folder: Path, environment: dict[str, str],
                          request: pytest.FixtureRequest) -> None:
    body = block.body
    if SERVER.search(body):
        url: str = request.getfixturevalue("server")
        body = SERVER.sub(url.removeprefix("http://"), body)
    serve_line = SERVE_LINE.search(body)
    before = body[:serve_line.start()] if serve_line else body
    out = run_sh(before, folder, environment) if before.strip() else ""
    if "curl" in before:
        answer = json.loads(out)  # the service answered with JSON, not an error
        assert isinstance(answer, dict) and "error" not in answer and "detail" not in answer
    if serve_line:
        assert not body[serve_line.end():].strip(), "put the serve line last in its block"
        start_serve(serve_line.group(0).split("#")[0].strip(), folder, environment)


PORTFOLIO_KEYS = set(Portfolio.model_fields)


@pytest.mark.parametrize("block", YAML, ids=str)
def test_yaml_block_loads(block: Block) -> None:
    data = yaml.safe_load(block.body)
    assert isinstance(data, dict)
    if "tiers" in data:
        parse_portfolio(block.body, f"README.md:{block.line}")
    elif set(data) <= PORTFOLIO_KEYS:
        bundled = yaml.safe_load(bundled_portfolio_path().read_text(encoding="utf-8"))
        parse_portfolio(yaml.safe_dump({**bundled, **data}), f"README.md:{block.line}")
    else:  # not a portfolio: Prometheus' configuration
        assert set(data) & {"scrape_configs", "rule_files"}, f"unknown YAML at {block}"


def test_the_ollama_quickstart_pulls_the_bundled_models() -> None:
    portfolio = parse_portfolio(bundled_portfolio_path().read_text(encoding="utf-8"))
    wanted = {e.model for e in portfolio.all_endpoints() if e.api == "ollama"}
    pulled = {m.group(1) for b in ALL for m in re.finditer(r"^ollama pull (\S+)$", b.body,
                                                            re.M)}
    assert wanted == pulled
