"""The demo's day of events as files: every kind of event line drawn in a fixed order, the facts
they are meant to show, a few deliberately bad lines, and one NDJSON file per UTC day (older days
gzipped)."""

from __future__ import annotations

import datetime as dt
import gzip
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.demo.event_timeline import (
    HOUR,
    EventLines,
    Timeline,
    as_utc,
    iso,
    iso_ms,
)
from pipelines.demo.league_games import game_lines
from pipelines.demo.league_truth import DemoRun
from pipelines.demo.manifest import DemoEventFacts
from pipelines.demo.ops_events import (
    HEARTBEAT_COMPONENTS,
    SILENT_COMPONENT,
    draw_rollouts,
    error_lines,
    extraction_lines,
    heartbeat_lines,
    inference_lines,
)

EXTRACTION_PROBLEM_RUN = "lr-sweep-1"


def _events(runs: list[DemoRun], now: dt.datetime, rng: np.random.Generator) -> tuple[list[EventLines], dict[str, Any]]:
    """Every event line, and the facts they are meant to show, computed from the generated numbers."""
    tl = Timeline.ending(now)
    sweep_runs = [r for r in runs if r.intended_verdict != "insufficient_data"]
    windows = [(r, tl.start, tl.end) for r in sweep_runs] + [
        (r, tl.smoke_start, tl.smoke_start + 30 * 60) for r in runs if r.intended_verdict == "insufficient_data"
    ]
    problem_run = next(r for r in runs if r.name == EXTRACTION_PROBLEM_RUN)

    rollouts = draw_rollouts(rng, windows, tl)
    errors = error_lines(rng, rollouts, [r.run_id for r in sweep_runs], tl)
    inference = inference_lines(rng, windows, tl)
    extraction, problem_rate = extraction_lines(rng, windows, tl, problem_run)
    heartbeats, silent_last = heartbeat_lines(rng, tl)

    hour = np.floor(rollouts.t / HOUR) * HOUR
    full_hours = np.unique(hour[(hour >= tl.full_from) & (hour < tl.full_to)])
    p95 = {h: float(np.percentile(rollouts.duration_s[hour == h], 95)) for h in full_hours}
    error_rate = {h: float(np.mean(rollouts.failure[hour == h] > 0)) for h in full_hours}
    error_hour = max(error_rate, key=error_rate.__getitem__)
    if error_hour != math.floor(tl.incident_at / HOUR) * HOUR or max(p95, key=p95.__getitem__) != tl.slow_hour:
        raise RuntimeError("demo design broken: the incident hours are not the worst hours")
    facts = {
        "window_start": iso(tl.start),
        "window_end": iso(tl.end),
        "slow_hour": iso(tl.slow_hour),
        "slow_hour_p95_s": round(p95[tl.slow_hour], 3),
        "normal_p95_s_max": round(max(v for h, v in p95.items() if h != tl.slow_hour), 3),
        "error_hour": iso(error_hour),
        "error_hour_rate": round(error_rate[error_hour], 6),
        "normal_error_rate": round(float(np.mean(rollouts.failure == 1)), 6),
        "extraction_problem": {
            "run_id": problem_run.run_id,
            "run_name": problem_run.name,
            "hours": [iso(h) for h in tl.extraction_hours],
            "rate": round(problem_rate, 6),
        },
        "silent_component": {
            "component": SILENT_COMPONENT,
            "host": next(h for c, h, _ in HEARTBEAT_COMPONENTS if c == SILENT_COMPONENT),
            "last_heartbeat_at": iso_ms(np.array([silent_last]))[0],
        },
        "components": [c for c, _, _ in HEARTBEAT_COMPONENTS],
    }
    # drawn last: every other event stays exactly as it was before the games existed
    games = game_lines(rng, runs, tl)
    return [rollouts.lines(), errors, inference, extraction, heartbeats, games], facts


def _bad_lines(now: dt.datetime) -> list[tuple[str, str]]:
    """Lines an ingester must reject (and count), each with why."""
    t = (now - dt.timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return [
        ("truncated_json", f'{{"_time":"{t}","event":"rollout","run_id":"demo","rollout_id":"x","duration_s":4'),
        ("missing_time", '{"event":"rollout","run_id":"demo","rollout_id":"y","duration_s":41.2,"status":"ok"}'),
        ("not_json", "Traceback (most recent call last): worker-3 crashed while flushing logs"),
    ]


def _write_events(
    events_dir: Path, parts: list[EventLines], now: dt.datetime
) -> tuple[list[Path], int, list[dict[str, Any]]]:
    """Write one file per UTC day, lines in time order; return (files, lines written, bad line locations).

    Older days are gzipped as an archive would be (a lone day too, so there is
    always one gzip file); the bad lines go into the newest file, spread out.
    """
    t_ms = np.concatenate([p.t_ms for p in parts])
    lines = [line for p in parts for line in p.lines]
    order = np.argsort(t_ms, kind="stable")
    day = t_ms[order] // 86_400_000
    days = np.unique(day).tolist()
    starts = np.searchsorted(day, days).tolist() + [len(order)]
    events_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    bad_locations: list[dict[str, Any]] = []
    for k, d in enumerate(days):
        chunk = [lines[i] for i in order[starts[k] : starts[k + 1]].tolist()]
        compressed = k < len(days) - 1 or len(days) == 1
        stem = dt.datetime.fromtimestamp(d * 86_400, dt.UTC).strftime("axiom-export-%Y-%m-%d")
        path = events_dir / (f"{stem}.ndjson.gz" if compressed else f"{stem}.ndjson")
        if k == len(days) - 1:
            bad = _bad_lines(now)
            for j, (_, text) in enumerate(bad):
                chunk.insert(len(chunk) * (j + 1) // (len(bad) + 1), text)
            bad_locations = [{"file": path.name, "line": chunk.index(text) + 1, "kind": kind} for kind, text in bad]
        body = ("\n".join(chunk) + "\n").encode()
        if compressed:
            with gzip.open(path, "wb", compresslevel=1) as fh:
                fh.write(body)
        else:
            path.write_bytes(body)
        written.append(path)
    return written, len(lines) + len(bad_locations), bad_locations


def write_demo_events(
    events_dir: Path, runs: list[DemoRun], now: dt.datetime | None = None, seed: int = 7
) -> DemoEventFacts:
    """Write the demo's 24 hours of events ending at `now` for `runs` and return what they are meant to show."""
    now = as_utc(now)
    parts, facts = _events(runs, now, np.random.default_rng([seed, 1000]))
    files, n_lines, bad_locations = _write_events(Path(events_dir), parts, now)
    return DemoEventFacts(
        files=[str(p) for p in files],
        lines=n_lines,
        counts={p.kind: len(p.lines) for p in parts},
        bad_lines=len(bad_locations),
        bad_line_locations=bad_locations,
        **facts,
    )
