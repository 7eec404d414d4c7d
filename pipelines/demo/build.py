"""The demo build entry point: `generate_demo` prepares the output folder, writes the W&B runs and
the day of events, and saves the manifest of what the warehouse should conclude."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.demo.event_stream import write_demo_events
from pipelines.demo.event_timeline import as_utc
from pipelines.demo.league_truth import demo_runs
from pipelines.demo.manifest import MANIFEST_NAME, DemoManifest, sweep_summary
from pipelines.demo.wandb_runs_writer import (
    DEMO_ENTITY,
    DEMO_PROJECT,
    WANDB_HOME_SUBDIR,
    WANDB_SUBDIR,
    write_wandb_runs,
)

EVENTS_SUBDIR = "events"


def _prepare_out_dir(out_dir: Path) -> None:
    """Create `out_dir`, or clear a previous demo there; never touch a directory we did not make."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise NotADirectoryError(f"demo output path is a file: {out_dir}")
        entries = list(out_dir.iterdir())
        if entries and not (out_dir / MANIFEST_NAME).exists():
            raise FileExistsError(
                f"{out_dir} is not empty and holds no {MANIFEST_NAME}; choose an empty or new directory for the demo"
            )
        for sub in (WANDB_SUBDIR, EVENTS_SUBDIR, WANDB_HOME_SUBDIR):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def generate_demo(
    out_dir: Path,
    *,
    seed: int = 7,
    now: dt.datetime | None = None,
    steps: int = 400,
    progress: Callable[[str], None] | None = None,
) -> DemoManifest:
    """Write the demo league's W&B runs and events under `out_dir` and return what they are meant to show.

    `now` is the end of the 24-hour event window (default: the current UTC time
    rounded down to the minute; a naive datetime is taken as UTC). Running it
    again on the same `out_dir` replaces the previous demo.

    It needs no network and no credentials, and writes

    * ``out_dir/wandb/offline-run-*/run-<id>.wandb``: two sweeps of three GRPO runs
      (``lr-sweep-1..3``, ``kl-sweep-1..3``, sweep = W&B group) and a short
      ``smoke-test-1``, each logging train metrics every step and league Elo every
      25 steps; ``kl-sweep-1`` was preempted twice and resumed
      (``wandb.init(id=..., resume="allow")``), so it has three run folders, and
      its config gains ``resume_from_checkpoint`` at each resume;
    * ``out_dir/events/*.ndjson[.gz]``: Axiom-shaped rollout, inference,
      extraction, error and heartbeat events over the 24 hours ending at `now`,
      with a few deliberately bad lines, and the league's games (event ``game``:
      seven seats drawn from base_model, chaos_bot and the checkpoints saved so
      far, at every checkpoint evaluation; each player's strength is its logged
      Elo relative to base_model, so the ratings fitted from the games agree with
      the logged ones);
    * ``out_dir/demo-manifest.json``: what was generated and what the warehouse
      should conclude from it (verdicts, the slow hour, the extraction problem,
      the silent component...).
    """
    began = time.perf_counter()
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir).expanduser().resolve()
    now = as_utc(now)
    runs = demo_runs(seed, steps)
    _prepare_out_dir(out_dir)

    say(f"writing {len(runs)} W&B runs (offline, {steps} steps each) to {out_dir / WANDB_SUBDIR}")
    (out_dir / WANDB_SUBDIR).mkdir(exist_ok=True)
    write_wandb_runs(out_dir, runs, say)

    say("writing 24 h of events")
    event_facts = write_demo_events(out_dir / EVENTS_SUBDIR, runs, now, seed)
    say(f"  {event_facts.lines:,} lines in {len(event_facts.files)} files ({event_facts.bad_lines} deliberately bad)")

    manifest = DemoManifest(
        out_dir=out_dir,
        wandb_dirs=[out_dir / WANDB_SUBDIR],
        events_dir=out_dir / EVENTS_SUBDIR,
        seed=seed,
        now=now.isoformat().replace("+00:00", "Z"),
        project=DEMO_PROJECT,
        entity=DEMO_ENTITY,
        runs=runs,
        sweeps=sweep_summary(runs),
        events=event_facts,
        seconds=0.0,
    )
    manifest.seconds = round(time.perf_counter() - began, 2)
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    say(f"demo written in {manifest.seconds:.1f} s; manifest at {out_dir / MANIFEST_NAME}")
    return manifest
