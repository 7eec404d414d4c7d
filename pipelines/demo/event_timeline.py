"""When the demo's events happen and how their text is made: the 24-hour window's `Timeline` (its
full hours and incident times), `EventLines` of one kind, Poisson arrivals per run, and the time and
number formatting the event lines share."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from pipelines.demo.league_truth import DemoRun

HOUR = 3600.0


@dataclass(frozen=True)
class Timeline:
    """When things happen in the 24-hour window (epoch seconds); incidents sit in full clock hours."""

    start: float
    end: float
    full_from: float  # first full hour; background failures stay inside full hours
    full_to: float
    slow_hour: float
    incident_at: float  # vllm-b dies and stops sending heartbeats
    incident_end: float  # the router drops vllm-b; until then its rollouts fail fast
    extraction_hours: tuple[float, ...]
    smoke_start: float

    @classmethod
    def ending(cls, now: dt.datetime) -> Timeline:
        end = now.timestamp()
        start = end - 24 * HOUR
        top = math.floor(end / HOUR) * HOUR  # start of the current, partial hour
        incident_at = top - 2 * HOUR + 20 * 60
        return cls(
            start=start,
            end=end,
            full_from=math.ceil(start / HOUR) * HOUR,
            full_to=top,
            slow_hour=top - 10 * HOUR,
            incident_at=incident_at,
            incident_end=incident_at + 9 * 60,
            extraction_hours=tuple(top - h * HOUR for h in range(18, 12, -1)),
            smoke_start=top - 21 * HOUR + 10 * 60,
        )

    def in_slow_hour(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.slow_hour) & (t < self.slow_hour + HOUR)


@dataclass
class EventLines:
    """Event lines of one kind with their times in epoch milliseconds, for a global sort."""

    kind: str
    t_ms: np.ndarray
    lines: list[str]


def iso_ms(t_ms: np.ndarray) -> list[str]:
    return np.char.add(np.datetime_as_string(t_ms.astype("datetime64[ms]"), unit="ms"), "Z").tolist()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_ms(t: np.ndarray) -> np.ndarray:
    return np.round(t * 1000).astype(np.int64)


def fixed_digits(values: np.ndarray, digits: int) -> list[str]:
    return [f"{v:.{digits}f}" for v in values.tolist()]


def arrivals(rng: np.random.Generator, per_min: float, windows: list[tuple[DemoRun, float, float]]):
    """Poisson arrival times per run window: (times, run ids), each sorted within its run."""
    times, ids = [], []
    for run, a, b in windows:
        t = np.sort(rng.uniform(a, b, rng.poisson(per_min * (b - a) / 60)))
        times.append(t)
        ids.append(np.full(len(t), run.run_id))
    return times, ids


def _utc_now_minute() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def as_utc(now: dt.datetime | None) -> dt.datetime:
    """`now`, or the current minute, in UTC (a naive datetime is taken as UTC)."""
    if now is None:
        return _utc_now_minute()
    return now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)
