"""One more hour of events after the increment: the input of the events-only sync the
benchmark times (what the 5-minute schedule does when only the log store has news)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bench.generate import DataSet
from bench.generate_events import EventFile, event_files, write_events_job
from bench.generate_plan import SCALES, make_plan

HOUR_S = 3600.0


def write_next_hour(data: DataSet, out_dir: Path) -> dict[str, Any]:
    """NDJSON of the hour after the increment's end: the increment's runs still training, at the
    base window's event rate, plus heartbeats. Returns path, bytes, events and counts per kind."""
    plan = make_plan(SCALES[data.scale], data.seed, data.t_end)
    start = plan.increment_end
    runs = tuple(dataclasses.replace(r, start=start) for r in plan.increment_runs)
    rate = event_files(plan)[0].run_events
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_events_job(
        (plan, EventFile(200_000, "axiom-export-next-hour.ndjson", start, start + HOUR_S, runs, rate), str(out_dir))
    )
