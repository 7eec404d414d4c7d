"""The benchmark's stages, each run in its own child process so its peak memory is its own.

    python -m bench.stages STAGE ARGS.json RESULT.json

`bench/run.py` starts these, measures wall time and peak RSS from outside,
and reads the stage's own timings from RESULT.json.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any


def ingest_history(args: dict[str, Any]) -> dict[str, Any]:
    """W&B history only: `ingest()` with one LocalRunSource over the run folders."""
    from pipelines.ingest.ingest_sources import ingest
    from pipelines.raw.layer import Warehouse
    from pipelines.raw.readers import totals
    from pipelines.sources.wandb_local import LocalRunSource

    wh = Warehouse(args["warehouse"])
    t0 = time.perf_counter()
    report = ingest(wh, [LocalRunSource([args["wandb_dir"]])], [])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "report": report.as_dict(), "totals": totals(wh)}


def ingest_events(args: dict[str, Any]) -> dict[str, Any]:
    """Events only: `ingest()` with one NdjsonEventSource over the event folder."""
    from pipelines.ingest.ingest_sources import ingest
    from pipelines.raw.layer import Warehouse
    from pipelines.raw.readers import totals
    from pipelines.sources.ndjson import NdjsonEventSource

    wh = Warehouse(args["warehouse"])
    t0 = time.perf_counter()
    report = ingest(wh, [], [NdjsonEventSource([args["events_dir"]])])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "report": report.as_dict(), "totals": totals(wh)}


_STARTED = re.compile(r'Started execution of step "([^"]+)"')
_FINISHED = re.compile(r'Finished execution of step "([^"]+)"')
_DBT_NODE = re.compile(
    r"\d+ of \d+ (?:OK created sql \w+ model|OK loaded seed file|PASS|WARN \d+|ERROR creating sql \w+ model|FAIL \d+)\s+(\S+)"
    r".*?\[(?:OK|PASS|WARN|ERROR|FAIL|INSERT)[^\]]* in ([\d.]+)s\]"
)
_DBT_RUNNING = re.compile(r"Finished running .* \(([\d.]+)s\)")
_DBT_COMMAND = re.compile(r"(Running|Finished) dbt command")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _relay_debug_messages() -> None:
    """Let the job's relay logger pass Dagster's DEBUG events (step started/finished), for step timings.

    Instrumentation only: `run_build_job` builds its relay at INFO level, which
    drops the step events; the job itself runs unchanged.
    """
    import logging
    import types

    import pipelines.build_runner as jobs

    class DebugLogger(logging.Logger):
        def __init__(self, name: str, level: int = logging.NOTSET) -> None:
            super().__init__(name, logging.DEBUG)

    proxy = types.SimpleNamespace(**{k: getattr(logging, k) for k in dir(logging) if not k.startswith("__")})
    proxy.Logger = DebugLogger
    jobs.logging = proxy


def build(args: dict[str, Any]) -> dict[str, Any]:
    """The Dagster job `grpo ingest` runs: ingest (of `wandb_dirs`/`event_paths`, none for a plain
    rebuild), `dbt build`, publish the snapshot, target checks."""
    from pipelines.build_runner import run_build_job
    from pipelines.defs.dbt.project import ensure_manifest
    from pipelines.raw.layer import Warehouse
    from pipelines.raw.readers import totals

    ensure_manifest()  # a stale manifest would add a `dbt parse` to the timing
    _relay_debug_messages()
    wh = Warehouse(args["warehouse"])
    before = totals(wh)
    messages: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    outcome = run_build_job(
        wh,
        wandb_dirs=args.get("wandb_dirs", []),
        event_paths=args.get("event_paths", []),
        on_message=lambda m: messages.append((time.perf_counter() - t0, m)),
    )
    seconds = time.perf_counter() - t0
    after = totals(wh)
    started: dict[str, float] = {}
    steps: dict[str, float] = {}
    dbt_command: dict[str, float] = {}
    for at, m in messages:
        if s := _STARTED.search(m):
            started[s.group(1)] = at
        elif s := _FINISHED.search(m):
            steps[s.group(1)] = round(at - started.get(s.group(1), at), 3)
        elif s := _DBT_COMMAND.search(m):
            dbt_command[s.group(1)] = at
    nodes = []
    dbt_execution_s = None
    log = Path(outcome.log_path)
    if log.exists():
        for line in _ANSI.sub("", log.read_text(errors="replace")).splitlines():
            if m := _DBT_NODE.search(line):
                nodes.append((m.group(1), float(m.group(2))))
            elif m := _DBT_RUNNING.search(line):
                dbt_execution_s = float(m.group(1))
    nodes.sort(key=lambda x: -x[1])
    dbt_command_s = dbt_command["Finished"] - dbt_command["Running"] if len(dbt_command) == 2 else None
    return {
        "seconds": seconds,
        "success": outcome.success,
        "errors": outcome.errors,
        "failed_steps": outcome.failed_steps,
        "step_seconds": steps,
        # the dbt subprocess from start to exit, and dbt's own "Finished running ... (Xs)" (nodes only,
        # without its start-up and project parsing)
        "dbt_command_s": round(dbt_command_s, 3) if dbt_command_s is not None else None,
        "dbt_execution_s": dbt_execution_s,
        "dbt_nodes": len(nodes),
        "dbt_node_seconds_sum": round(sum(s for _, s in nodes), 3),
        "dbt_slowest": [{"node": n, "seconds": s} for n, s in nodes[:12]],
        "checks_failed": sum(1 for c in outcome.check_results if not c["passed"]),
        "checks": len(outcome.check_results),
        "before": before,
        "after": after,
    }


def baseline(args: dict[str, Any]) -> dict[str, Any]:
    from bench.baseline import run_baseline

    return run_baseline(args)


STAGES = {"ingest_history": ingest_history, "ingest_events": ingest_events, "build": build, "baseline": baseline}


def main(argv: list[str]) -> int:
    stage, args_path, result_path = argv
    args = json.loads(Path(args_path).read_text())
    result = STAGES[stage](args)
    Path(result_path).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
