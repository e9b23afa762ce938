"""Schemathesis against the service's own OpenAPI document.

A real ``tier-router serve`` subprocess on loopback, with test-double Ollama and OpenAI servers
behind its portfolio, fuzzed by the ``schemathesis run`` CLI with every check except
``positive_data_acceptance`` (cross-field rules such as ``min_tier`` above ``max_tier`` cannot
be said in a schema, so a schema-valid body may rightly get a 422). Every operation is
included, the admin ones too: the portfolio's endpoints are the doubles, so ``load`` and
``unload`` only touch them, and ``reload`` with generated paths must answer 422, never 500.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_PORTFOLIO
from tests.doubles import fake_ollama, fake_openai, running
from tests.test_server import start, stop

SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = int(os.environ.get("TIER_ROUTER_FUZZ_EXAMPLES", "100"))
API_KEY, ADMIN_KEY = "fuzz-api-key", "fuzz-admin-key"
SEED = os.environ.get("TIER_ROUTER_FUZZ_SEED", "7")


def fuzz_portfolio(path: Path, ollama_url: str, openai_url: str) -> Path:
    """The bundled portfolio with its endpoints moved to the doubles' ports."""
    text = DEFAULT_PORTFOLIO.read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:11434", ollama_url)
    text = text.replace("http://127.0.0.1:8001/v1", f"{openai_url}/v1")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    ollama, openai = fake_ollama(), fake_openai()
    with running(ollama.app) as ollama_url, running(openai.app) as openai_url:
        portfolio = fuzz_portfolio(tmp_path / "portfolio.yaml", ollama_url, openai_url)
        monkeypatch.setenv("TIER_ROUTER_FEEDBACK_LOG", str(tmp_path / "feedback.jsonl"))
        monkeypatch.setenv("TIER_ROUTER_OUTCOMES_DIR", str(tmp_path / "outcomes"))
        # With keys, schemathesis' ignored_auth check has something to check: each operation
        # that declares bearer auth must refuse a request without a key or with a wrong one.
        monkeypatch.setenv("TIER_ROUTER_API_KEYS", API_KEY)
        monkeypatch.setenv("TIER_ROUTER_ADMIN_KEYS", ADMIN_KEY)
        monkeypatch.chdir(tmp_path)  # relative paths a fuzzed reload names resolve here
        proc, url = start("--portfolio", str(portfolio), "--log-level", "warning")
        try:
            yield url
        finally:
            stop(proc)


def test_schemathesis_finds_no_failing_check(service: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [*SCHEMATHESIS, "--config-file", str(CONFIG), "run", f"{service}/openapi.json",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", str(MAX_EXAMPLES), "--seed", SEED,
         "--header", f"Authorization: Bearer {ADMIN_KEY}",  # an admin key opens everything
         "--generation-database", "none", "--workers", "1",
         "--request-timeout", "30", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False,
    )
    print(result.stdout)  # shown by pytest -s (the counts of a passing run)
    assert result.returncode == 0, f"schemathesis failed:\n{result.stdout}\n{result.stderr}"
