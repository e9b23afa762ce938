"""Schedules: time windows that preload and unload models (the guide's "support model by day,
batch model at night"), as portfolio data; :mod:`classifier_service.fleet.scheduler` acts on them.

A window opens on the given days at ``start`` in its time zone and closes at ``end`` (the next
day when ``end`` is not after ``start``). When a window opens, its ``load`` endpoints are
preloaded and its ``unload`` endpoints dropped, through Ollama's API
(:mod:`classifier_service.fleet.residency`). The scheduler runs inside the service only when asked
(``tier-router serve --scheduler``), so that replicas do not fight over the GPU; at start it
also preloads the portfolio's ``concurrent`` Ollama models, kept for their ``keep_alive``.
``tier-router schedule`` prints what would happen when, without doing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Schedule(BaseModel):
    """One time window of the portfolio's ``schedules`` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    timezone: str = "UTC"
    days: list[Day] = Field(default_factory=lambda: list(DAYS))
    start: time
    end: time
    load: list[str] = Field(default_factory=list)
    unload: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Berlin)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def opening(self, day: date) -> datetime:
        return datetime.combine(day, self.start, self.zone)

    def closing(self, day: date) -> datetime:
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return datetime.combine(end_day, self.end, self.zone)


@dataclass(frozen=True)
class Event:
    at: datetime  # aware, the schedule's zone
    schedule: str
    load: tuple[str, ...]
    unload: tuple[str, ...]


def events(schedules: Sequence[Schedule], start: datetime, end: datetime) -> list[Event]:
    """Every window opening in ``[start, end)``, in time order."""
    found = []
    for sched in schedules:
        first = start.astimezone(sched.zone).date() - timedelta(days=1)
        last = end.astimezone(sched.zone).date()
        day = first
        while day <= last:
            if DAYS[day.weekday()] in sched.days:
                at = sched.opening(day)
                if start <= at < end:
                    found.append(Event(at, sched.name, tuple(sched.load), tuple(sched.unload)))
            day += timedelta(days=1)
    return sorted(found, key=lambda e: (e.at.astimezone(UTC), e.schedule))


def active(schedules: Sequence[Schedule], now: datetime) -> list[Schedule]:
    """The windows open at ``now``."""
    open_now = []
    for sched in schedules:
        today = now.astimezone(sched.zone).date()
        for day in (today - timedelta(days=1), today):
            if DAYS[day.weekday()] in sched.days and \
                    sched.opening(day) <= now < sched.closing(day):
                open_now.append(sched)
                break
    return open_now


def describe(event: Event) -> str:
    actions = []
    if event.load:
        actions.append("load " + ", ".join(event.load))
    if event.unload:
        actions.append("unload " + ", ".join(event.unload))
    utc = event.at.astimezone(UTC).strftime("%H:%M UTC")
    return (f"{event.at:%a %Y-%m-%d %H:%M} {event.at.tzinfo} ({utc})  {event.schedule}: "
            f"{'; '.join(actions) or 'nothing'}")
