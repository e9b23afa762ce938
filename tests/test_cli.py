from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from classifier_service.cli import main


def test_help_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "classifier_service", "--help"],
                            capture_output=True, text=True, timeout=60, check=True)
    for command in ("serve", "train", "route", "check", "evaluate", "calibrate", "plan",
                    "models", "schedule"):
        assert command in result.stdout


def test_installed_script_runs() -> None:
    script = Path(sys.executable).parent / "tier-router"  # installed beside this interpreter
    result = subprocess.run([str(script), "serve", "--help"], capture_output=True, text=True,
                            timeout=60, check=True)
    for flag in ("--host", "--port", "--portfolio", "--model"):
        assert flag in result.stdout


def test_route_prints_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "write a limerick about a sleepy cat", "--max-tier", "medium"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tier"] == "medium"
    assert data["adjustments"] == ["max_tier"]


def test_route_reports_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "hi", "--min-tier", "giant"]) == 2
    assert "unknown tier 'giant'" in capsys.readouterr().err
    assert main(["route", "   "]) == 2
    assert "empty" in capsys.readouterr().err


def test_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "tiers simple, medium, complex" in out and "confidence threshold" in out


def test_route_errors_name_the_flags_not_the_body(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "hi", "--min-tier", "giant"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tier-router: error: --min-tier: unknown tier 'giant'")
    assert "body." not in err
    assert main(["route", "hi", "--min-tier", "complex", "--max-tier", "simple"]) == 2
    err = capsys.readouterr().err
    assert "--min-tier 'complex' is above --max-tier 'simple'" in err and "min_tier" not in err
    assert main(["route", "   "]) == 2
    err = capsys.readouterr().err
    assert err == "tier-router: error: PROMPT: prompt must not be empty or whitespace\n"


def test_route_loads_neither_the_web_stack_nor_training() -> None:
    probe = ("import sys\nfrom classifier_service.cli import main\n"
             "assert main(['route', 'hi']) == 0\n"
             "print(sorted(m for m in ('fastapi', 'aiohttp', 'httpx', 'uvicorn', 'matplotlib', "
             "'tier_router_training') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_serve_help_lists_the_environment_variables() -> None:
    from classifier_service.settings import Settings

    result = subprocess.run([sys.executable, "-m", "classifier_service", "serve", "--help"],
                            capture_output=True, text=True, timeout=60, check=True)
    for name in Settings.model_fields:
        assert f"TIER_ROUTER_{name.upper()} " in result.stdout
    assert "TIER_ROUTER_API_KEYS" in result.stdout.split("environment variables")[1]
