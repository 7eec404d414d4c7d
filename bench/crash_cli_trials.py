"""Kill trials of the full `grpo ingest` (Dagster job, dbt build, publish): run it, kill it
in a phase, re-run it, compare.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.crash_checks import (
    Trial,
    describe_after_kill,
    integrity_problems,
    raw_differences,
    reader_problems,
    snapshot_differences,
)
from bench.crash_inputs import Inputs
from pipelines.raw.crash_points import KILL_ENV

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def grpo_env(root: Path, dbt_target: Path) -> dict[str, str]:
    """Environment for `grpo`: this warehouse, dbt's per-run folders outside the working tree."""
    dbt_target.mkdir(parents=True, exist_ok=True)
    parse = PROJECT_ROOT / "target" / "partial_parse.msgpack"
    if parse.exists() and not (dbt_target / parse.name).exists():
        shutil.copyfile(parse, dbt_target / parse.name)  # keeps dbt's partial parsing fast
    env = {
        **os.environ,
        "GRPO_WAREHOUSE": str(root),
        "DBT_TARGET_PATH": str(dbt_target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "COLUMNS": "200",
    }
    env.pop("DAGSTER_HOME", None)
    env.pop(KILL_ENV, None)
    return env


def grpo_exe() -> str:
    exe = Path(sys.executable).with_name("grpo")
    return str(exe) if exe.exists() else "grpo"


def grpo_ingest(root: Path, inputs: Inputs, dbt_target: Path, timeout: float = 900) -> tuple[int, dict | None, str]:
    """Run `grpo ingest --json` to the end: (exit code, parsed summary or None, stderr)."""
    proc = subprocess.run(
        [grpo_exe(), "ingest", "--wandb-dir", str(inputs.wandb), "--events", str(inputs.events), "--json"],
        capture_output=True,
        text=True,
        env=grpo_env(root, dbt_target),
        timeout=timeout,
        cwd=str(root.parent),
    )
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        summary = None
    return proc.returncode, summary, proc.stderr


def lock_holder(root: Path) -> str:
    try:
        return (root / ".lock").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def group_commands(pgid: int) -> list[str]:
    """Command lines of the live processes of a process group (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            out.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _dbt_building(pgid: int) -> bool:
    return any(" build" in c and "/dbt" in c for c in group_commands(pgid))


def kill_grpo_ingest(
    root: Path,
    inputs: Inputs,
    dbt_target: Path,
    phase: str | None,
    delay: float,
    kill_group: bool = False,
    kill_at: str | None = None,
    timeout: float = 900,
) -> dict:
    """Start `grpo ingest`, wait until it is in `phase`, SIGKILL it `delay` s later.

    `phase` is a write-lock purpose, "ingest" or "publish snapshot" (read from
    the `.lock` holder), or "dbt build", which waits for the `dbt build`
    subprocess itself. With `kill_at` (a GRPO_TEST_KILL_AT label) and no phase
    the process kills itself at that point. Only the grpo process is killed
    (as the OOM killer does), unless kill_group: then its dbt child too.
    """
    env = grpo_env(root, dbt_target)
    if kill_at:
        env[KILL_ENV] = kill_at
    proc = subprocess.Popen(
        [grpo_exe(), "ingest", "--wandb-dir", str(inputs.wandb), "--events", str(inputs.events), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(root.parent),
        start_new_session=True,
    )
    want = f"{phase} (pid {proc.pid})"
    t0 = time.monotonic()
    reached = phase is None
    while not reached and proc.poll() is None and time.monotonic() - t0 < timeout:
        reached = _dbt_building(proc.pid) if phase == "dbt build" else lock_holder(root) == want
        if not reached:
            time.sleep(0.01 if phase != "dbt build" else 0.05)
    if phase is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    if reached:
        time.sleep(delay)
    outcome = "completed"
    if proc.returncode == -signal.SIGKILL:
        outcome = "killed"  # by itself, at kill_at
    elif proc.poll() is None:
        if kill_group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        outcome = "killed"
    elif proc.returncode != 0:
        outcome = f"failed (exit {proc.returncode})"
    return {"outcome": outcome, "phase_reached": reached, "seconds": time.monotonic() - t0, "pgid": proc.pid}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_group_gone(pgid: int, timeout: float = 120) -> float:
    """Wait for the killed grpo's leftover children (dbt) to exit; returns seconds waited."""
    t0 = time.monotonic()
    while group_alive(pgid) and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return time.monotonic() - t0


def cli_trial(
    work: Path,
    inputs: Inputs,
    ref_root: Path,
    phase: str | None,
    delay: float,
    n: int,
    kill_group: bool = False,
    kill_at: str | None = None,
) -> Trial:
    """Kill a full `grpo ingest` in a phase (or at a kill point), re-run it, compare raw tables and marts with ref_root."""
    t0 = time.monotonic()
    root = work / f"cli-trial-{n:03d}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    target = work / f"dbt-target-{n:03d}"
    r = kill_grpo_ingest(root, inputs, target, phase, delay, kill_group=kill_group, kill_at=kill_at)
    point = kill_at if kill_at else f"{phase} +{delay:.2f}s"
    trial = Trial("cli", phase or "hook", point, r["outcome"])
    if not r["phase_reached"] or r["outcome"] != "killed":
        trial.problems.append(f"the kill point {point!r} was never reached ({r['outcome']})")
    trial.seen = describe_after_kill(root, 0)
    trial.problems += [f"after the kill: {p}" for p in reader_problems(root)]
    code, summary, err = grpo_ingest(root, inputs, target)
    if code != 0:
        trial.problems.append(
            f"the re-run right after the kill exited {code}: {(summary or {}).get('errors') or err[-500:]}"
        )
        wait_group_gone(r["pgid"])  # a leftover dbt child, if that was the cause
        code, summary, err = grpo_ingest(root, inputs, target)
        if code != 0:
            trial.problems.append(f"a second re-run exited {code} too: {(summary or {}).get('errors') or err[-500:]}")
    if code == 0:
        trial.problems += [f"after the re-run: {p}" for p in reader_problems(root)]
        trial.problems += integrity_problems(root)
        trial.problems += raw_differences(root, ref_root)
        trial.problems += snapshot_differences(root / "grpo.duckdb", ref_root / "grpo.duckdb")
    wait_group_gone(r["pgid"])
    shutil.rmtree(target, ignore_errors=True)
    if trial.survived:
        shutil.rmtree(root, ignore_errors=True)
    trial.seconds = time.monotonic() - t0
    return trial
