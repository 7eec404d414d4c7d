"""DuckDB and local Spark side by side: full and incremental builds of the same data.

    uv run --group spark python bench/spark.py --scale tiny|medium --out spark.json [--workdir DIR]

The data set of bench/run.py (same scales, same generator) is ingested once;
the raw layer is then copied, so both engines build exactly the same batches.
Each engine runs the Dagster job as `grpo ingest` does (dbt build, publish, the
target checks): a full build, then an incremental refresh that ingests the
increment (+1 % runs and events) and builds again. Each stage runs in its own
child process (bench/run_children.py), the figures are wall times.

On one machine Spark is expected to be slower: every dbt node is a Spark job
planned by a JVM driver, and `local[2]` has the same two cores DuckDB has.
What this shows is that the same project builds there, and what it costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.generate import generate  # noqa: E402
from bench.generate_plan import SCALES  # noqa: E402
from bench.run_children import child_env, run_stage  # noqa: E402
from bench.run_report import code_version, machine_info  # noqa: E402

BUILD_KEYS = ("step_seconds", "dbt_command_s", "dbt_execution_s", "dbt_nodes", "dbt_slowest", "checks_failed")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    ap.add_argument("--out", type=Path, required=True, help="JSON results file (rewritten after every stage)")
    ap.add_argument("--workdir", type=Path, help="keep data here and reuse it across runs (default: a temporary dir)")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    from pipelines.engine import spark_unavailable_reason

    if (reason := spark_unavailable_reason()) is not None:
        print(reason, file=sys.stderr)
        return 2
    began = time.perf_counter()

    def say(m: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f}s] {m}", flush=True)

    temp = a.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="grpo-bench-spark-")) if temp else a.workdir.resolve()
    res: dict[str, Any] = {
        "scale": a.scale,
        "machine": machine_info(),
        "code": code_version(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "engines": {},
    }

    def save() -> None:
        res["total_s"] = round(time.perf_counter() - began, 1)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1, default=str) + "\n")

    try:
        data = generate(workdir / f"data-{a.scale}", a.scale, seed=a.seed, say=say)
        res["data"] = {"runs": len(data.runs), "history_points": data.history_points, "events": data.events}
        base = workdir / f"raw-{a.scale}"
        if base.exists():
            shutil.rmtree(base)
        env = child_env(base)
        run_stage(
            "ingest_history",
            {"warehouse": str(base), "wandb_dir": str(data.wandb_dir)},
            workdir / "stages-raw",
            env,
            say,
        )
        run_stage(
            "ingest_events",
            {"warehouse": str(base), "events_dir": str(data.events_dir)},
            workdir / "stages-raw",
            env,
            say,
        )
        for engine in ("duckdb", "spark"):
            wh = workdir / f"warehouse-{a.scale}-{engine}"
            if wh.exists():
                shutil.rmtree(wh)
            wh.mkdir(parents=True)
            shutil.copytree(base / "raw", wh / "raw")
            env = {**child_env(wh), "GRPO_ENGINE": engine}
            out: dict[str, Any] = {}
            full = run_stage("build", {"warehouse": str(wh)}, workdir / f"stages-{engine}" / "full", env, say)
            if not full["success"]:
                raise RuntimeError(f"{engine} full build failed: {full['errors']}")
            out["full_build_s"] = round(full["process"]["wall_s"], 1)
            out["full_build"] = {k: full.get(k) for k in BUILD_KEYS}
            save()
            inc = run_stage(
                "build",
                {
                    "warehouse": str(wh),
                    "wandb_dirs": [str(data.wandb_dir), str(data.increment_wandb_dir)],
                    "event_paths": [str(data.events_dir), str(data.increment_events_dir)],
                },
                workdir / f"stages-{engine}" / "incremental",
                env,
                say,
            )
            if not inc["success"]:
                raise RuntimeError(f"{engine} incremental build failed: {inc['errors']}")
            out["incremental_refresh_s"] = round(inc["process"]["wall_s"], 1)
            out["incremental"] = {k: inc.get(k) for k in BUILD_KEYS}
            res["engines"][engine] = out
            save()
    finally:
        save()
        if temp:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'engine':8} {'full build':>12} {'incremental':>12}   (scale {a.scale}, wall seconds, Dagster job)")
    for engine, out in res["engines"].items():
        print(f"{engine:8} {out['full_build_s']:>12.1f} {out['incremental_refresh_s']:>12.1f}")
    print(f"results written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
