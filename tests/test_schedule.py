"""Schedules: which windows open when, the dry run, and the in-service scheduler."""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.cli import main
from classifier_service.errors import PortfolioError
from classifier_service.portfolio.model import parse_portfolio
from classifier_service.portfolio.schedule import active, events
from classifier_service.settings import Settings
from tests.doubles import fake_ollama, running

BERLIN = ZoneInfo("Europe/Berlin")


def portfolio_text(url: str = "http://127.0.0.1:9", schedules: str = "") -> str:
    return f"""
version: 1
tiers:
  - name: simple
    endpoints: [{{name: support, api: ollama, base_url: "{url}", model: support-7b}}]
  - name: medium
    endpoints: [{{name: batch, api: ollama, base_url: "{url}", model: batch-13b}}]
  - name: complex
    endpoints: [{{name: big, api: openai, base_url: "{url}/v1", model: big}}]
schedules:
{schedules or '''  - {name: day, timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri],
     start: "08:00", end: "18:00", load: [support], unload: [batch]}
  - {name: night, timezone: Europe/Berlin, start: "18:00", end: "08:00",
     load: [batch], unload: [support]}'''}
"""


SCHEDULES = parse_portfolio(portfolio_text()).schedules


def test_windows_open_on_their_days_in_their_zone() -> None:
    start = datetime(2026, 11, 30, 0, 0, tzinfo=BERLIN)  # a Monday
    found = events(SCHEDULES, start, start + timedelta(days=7))
    day = [e.at for e in found if e.schedule == "day"]
    night = [e.at for e in found if e.schedule == "night"]
    assert len(day) == 5 and len(night) == 7  # weekdays only / every evening
    assert day[0] == datetime(2026, 11, 30, 8, 0, tzinfo=BERLIN)
    assert day[0].astimezone(UTC).hour == 7  # CET is UTC+1
    assert found[0].load == ("support",) and found[0].unload == ("batch",)


def test_daylight_saving_time_moves_the_utc_hour() -> None:
    start = datetime(2026, 3, 27, 0, 0, tzinfo=BERLIN)  # clocks go forward on 29 March
    found = [e for e in events(SCHEDULES, start, start + timedelta(days=4))
             if e.schedule == "night"]
    assert [e.at.astimezone(UTC).hour for e in found] == [17, 17, 16, 16]


def test_which_windows_are_open() -> None:
    def names(when: datetime) -> list[str]:
        return [s.name for s in active(SCHEDULES, when)]

    assert names(datetime(2026, 12, 1, 12, 0, tzinfo=BERLIN)) == ["day"]
    assert names(datetime(2026, 12, 1, 23, 0, tzinfo=BERLIN)) == ["night"]
    assert names(datetime(2026, 12, 2, 3, 0, tzinfo=BERLIN)) == ["night"]  # across midnight
    assert names(datetime(2026, 12, 5, 12, 0, tzinfo=BERLIN)) == []  # Saturday noon


@pytest.mark.parametrize(
    ("schedules", "message"),
    [
        ('  - {name: a, start: "08:00", end: "09:00", load: [nobody]}',
         "schedules.0.load: unknown endpoint 'nobody'"),
        ('  - {name: a, start: "08:00", end: "09:00", unload: [big]}',
         "schedules.0.unload: 'big' is not an Ollama endpoint"),
        ('  - {name: a, timezone: Mars/Olympus, start: "08:00", end: "09:00"}',
         "unknown time zone 'Mars/Olympus'"),
        ('  - {name: a, start: "25:00", end: "09:00"}', "schedules.0.start"),
        ('  - {name: a, days: [someday], start: "08:00", end: "09:00"}', "schedules.0.days.0"),
        ('  - {name: a, start: "08:00", end: "09:00"}\n  - {name: a, start: "10:00", end: "11:00"}',
         "duplicate schedule name 'a'"),
    ],
)
def test_invalid_schedules(schedules: str, message: str) -> None:
    with pytest.raises(PortfolioError, match=message):
        parse_portfolio(portfolio_text(schedules=schedules), "p.yaml")


def test_dry_run_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(portfolio_text(), encoding="utf-8")
    assert main(["schedule", "--portfolio", str(path), "--from", "2026-12-01T12:00+01:00",
                 "--days", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "open at 2026-12-01T12:00+01:00: day"
    assert out[1].startswith("Tue 2026-12-01 18:00 Europe/Berlin (17:00 UTC)  night: "
                             "load batch; unload support")
    assert out[2].startswith("Wed 2026-12-02 08:00 Europe/Berlin (07:00 UTC)  day:")
    assert main(["schedule"]) == 0
    assert "no schedules" in capsys.readouterr().out
    assert main(["schedule", "--portfolio", str(path), "--from", "yesterday"]) == 2


def test_scheduler_in_the_service_applies_open_and_opening_windows(tmp_path: Path) -> None:
    double = fake_ollama()
    with running(double.app) as url:
        soon = (datetime.now(UTC) + timedelta(seconds=2)).time().replace(microsecond=0)
        later = (datetime.now(UTC) + timedelta(hours=1)).time().replace(microsecond=0)
        schedules = (
            '  - {name: always, start: "00:00", end: "00:00", load: [support]}\n'
            f'  - {{name: soon, start: "{soon}", end: "{later}", load: [batch], '
            "unload: [support]}"
        )
        path = tmp_path / "p.yaml"
        path.write_text(portfolio_text(url, schedules), encoding="utf-8")
        settings = Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl", scheduler=True)
        with TestClient(create_app(settings)):
            deadline = clock.monotonic() + 10
            while clock.monotonic() < deadline and "batch-13b" not in double.loaded:
                clock.sleep(0.1)
        assert double.loaded == {"batch-13b"}  # support loaded at start, then unloaded
        models = [r["model"] for r in double.requests]
        assert models[0] == "support-7b" and "batch-13b" in models
    # without the flag nothing is loaded
    quiet = fake_ollama()
    with running(quiet.app) as url:
        path.write_text(portfolio_text(url, '  - {name: always, start: "00:00", end: "00:00", '
                                            "load: [support]}"), encoding="utf-8")
        with TestClient(create_app(Settings(portfolio=path, feedback_log=tmp_path / "f"))):
            clock.sleep(0.5)
        assert quiet.requests == []


def test_scheduler_preloads_concurrent_models_at_start(tmp_path: Path) -> None:
    double = fake_ollama()
    with running(double.app) as url:
        path = tmp_path / "p.yaml"
        path.write_text(portfolio_text(url, "  []").replace(
            "model: support-7b}", "model: support-7b, loading: concurrent, keep_alive: '-1'}"),
            encoding="utf-8")
        settings = Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl", scheduler=True)
        with TestClient(create_app(settings)):
            deadline = clock.monotonic() + 10
            while clock.monotonic() < deadline and not double.loaded:
                clock.sleep(0.05)
    assert double.loaded == {"support-7b"}  # the on-demand batch model is left alone
    assert double.requests[0]["keep_alive"] == -1
