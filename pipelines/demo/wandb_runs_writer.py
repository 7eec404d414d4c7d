"""Writing the demo's W&B runs: the offline wandb environment kept inside the output folder, the
per-run specs (one per resumed segment) and the worker processes that log them, then the check
that every segment left its .wandb file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.demo.league_truth import DemoRun
from pipelines.demo.wandb_worker import DONE_MARK

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WANDB_SUBDIR = "wandb"
# wandb's own config, cache and data dirs, kept inside out_dir so nothing lands in ~.
WANDB_HOME_SUBDIR = ".wandb-home"

DEMO_PROJECT = "grpo-demo"
DEMO_ENTITY = "demo"
PREEMPTED_EXIT_CODE = 143  # SIGTERM, as a cluster scheduler preempts a job
WANDB_WORKERS = 2
WANDB_TIMEOUT_S = 300


def _wandb_env(out_dir: Path) -> dict[str, str]:
    home = out_dir / WANDB_HOME_SUBDIR
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("WANDB_")]:
        del env[key]  # a user's WANDB_API_KEY, WANDB_BASE_URL... play no part offline
    env.update(
        WANDB_SILENT="true",
        WANDB_MODE="offline",
        WANDB_DIR=str(out_dir),
        WANDB_CONFIG_DIR=str(home / "config"),
        WANDB_CACHE_DIR=str(home / "cache"),
        WANDB_DATA_DIR=str(home / "data"),
        WANDB_ARTIFACT_DIR=str(home / "artifacts"),
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def write_wandb_runs(out_dir: Path, runs: list[DemoRun], say: Callable[[str], None]) -> None:
    """Log every run with the real wandb library in worker processes; sets each run's `wandb_file`.

    wandb keeps process-global state (its service, the current run, settings),
    so runs are never logged in the caller's process: WANDB_WORKERS fresh
    interpreters each log their share one after another.
    """
    by_name = {run.name: run for run in runs}
    env = _wandb_env(out_dir)
    lock = threading.Lock()
    done: list[str] = []
    failures: list[str] = []

    def work(batch: list[DemoRun], spec_dir: Path, worker: int) -> None:
        try:
            log_batch(batch, spec_dir, worker)
        except Exception as exc:  # a thread's exception would otherwise vanish
            with lock:
                failures.append(f"wandb worker {worker}: {exc!r}")

    def log_batch(batch: list[DemoRun], spec_dir: Path, worker: int) -> None:
        paths = []
        for run in batch:
            spec = {
                "dir": str(out_dir),
                "project": DEMO_PROJECT,
                "entity": DEMO_ENTITY,
                "id": run.run_id,
                "name": run.name,
                "group": run.sweep,
                "config": run.config,
                "rows": run.history_rows(),
                "segments": _segment_specs(run),
            }
            path = spec_dir / f"{run.name}.json"
            path.write_text(json.dumps(spec), encoding="utf-8")
            paths.append(str(path))
        with (spec_dir / f"worker-{worker}.stderr").open("w+", encoding="utf-8") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.demo.wandb_worker", "--write-runs", *paths],
                cwd=out_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(DONE_MARK):
                    run = by_name[line[len(DONE_MARK) :].strip()]
                    with lock:
                        done.append(run.name)
                        say(f"  [{len(done)}/{len(runs)}] {run.name} ({run.run_id}): intended {run.intended_verdict}")
            try:
                code = proc.wait(timeout=WANDB_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code != 0:
                err.seek(0)
                with lock:
                    failures.append(f"wandb worker {worker} exited with {code}:\n{err.read().strip()[-2000:]}")

    home = out_dir / WANDB_HOME_SUBDIR
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="specs-", dir=home) as tmp:
        batches = [runs[i::WANDB_WORKERS] for i in range(WANDB_WORKERS)]
        threads = [
            threading.Thread(target=work, args=(batch, Path(tmp), i), daemon=True)
            for i, batch in enumerate(batches)
            if batch
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if failures:
        raise RuntimeError("writing the demo W&B runs failed: " + "\n".join(failures))
    for run in runs:
        # folder names start with the second the segment began: they sort oldest first
        found = sorted((out_dir / WANDB_SUBDIR).glob(f"offline-run-*-{run.run_id}/run-{run.run_id}.wandb"))
        if len(found) != len(run.segments):
            raise RuntimeError(
                f"expected {len(run.segments)} .wandb file(s) for {run.name} ({run.run_id}), found {len(found)}"
            )
        run.wandb_files = found
        run.wandb_file = found[-1]


def _segment_specs(run: DemoRun) -> list[dict[str, Any]]:
    """Per segment: its first step, the config it starts with, how it ends (preempted but the last)."""
    base = {k: v for k, v in run.config.items() if k not in run.segments[-1][1]}
    out = []
    for i, (first, changes) in enumerate(run.segments):
        last = i == len(run.segments) - 1
        out.append(
            {"first_step": first, "config": {**base, **changes}, "exit_code": 0 if last else PREEMPTED_EXIT_CODE}
        )
    return out
