"""The demo's manifest: `DemoEventFacts` (what the events are meant to show), `DemoManifest`
(everything `generate_demo` wrote and the conclusions the warehouse should reach) and the per-sweep
summary of designed final gaps."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.demo.league_truth import DemoRun

MANIFEST_NAME = "demo-manifest.json"


@dataclass
class DemoEventFacts:
    """What the generated events are meant to show (times are ISO 8601 UTC, hours are their start)."""

    window_start: str
    window_end: str
    files: list[str]
    lines: int  # every line written, bad ones included
    counts: dict[str, int]  # good events per kind
    bad_lines: int
    bad_line_locations: list[dict[str, Any]]
    slow_hour: str
    slow_hour_p95_s: float
    normal_p95_s_max: float  # the highest hourly rollout p95 outside the slow hour
    error_hour: str
    error_hour_rate: float
    normal_error_rate: float
    extraction_problem: dict[str, Any]  # run_id, run_name, hours, rate over those hours
    silent_component: dict[str, Any]  # component, host, last_heartbeat_at
    components: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DemoManifest:
    """Everything `generate_demo` wrote and what the warehouse should conclude from it."""

    out_dir: Path
    wandb_dirs: list[Path]
    events_dir: Path
    seed: int
    now: str
    project: str
    entity: str
    runs: list[DemoRun]
    sweeps: dict[str, dict[str, Any]]
    events: DemoEventFacts
    seconds: float

    def run(self, name: str) -> DemoRun:
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self, include_series: bool = False) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "wandb_dirs": [str(d) for d in self.wandb_dirs],
            "events_dir": str(self.events_dir),
            "seed": self.seed,
            "now": self.now,
            "project": self.project,
            "entity": self.entity,
            "runs": [r.to_dict(include_series) for r in self.runs],
            "sweeps": self.sweeps,
            "events": self.events.to_dict(),
            "seconds": self.seconds,
        }


def sweep_summary(runs: list[DemoRun]) -> dict[str, dict[str, Any]]:
    """Per sweep: runs ranked by designed final gap, and whether the top two are a tie."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.final_gap is None:
            continue
        out.setdefault(run.sweep, {"runs": []})["runs"].append(run)
    result = {}
    for sweep, entry in out.items():
        ranked = sorted(entry["runs"], key=lambda r: r.final_gap, reverse=True)
        top, second = ranked[0], ranked[1]
        # Designed as 3 Elo (tie) or >= 70 Elo (clear winner); any cut in between agrees.
        tie = top.final_gap - second.final_gap < 10.0
        result[sweep] = {
            "runs": [r.name for r in ranked],
            "final_gaps": {r.name: r.final_gap for r in ranked},
            "winner": None if tie else top.name,
            "tie": [top.name, second.name] if tie else None,
        }
    return result
