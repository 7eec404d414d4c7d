"""Benchmark the warehouse at the size of a year of GRPO experiments.

    uv run python bench/run.py --scale tiny|medium|full --out results.json [--workdir DIR] [--keep]
    uv run --group spark python bench/run.py --engine spark --scale medium --out spark.json [--workdir DIR]

One run generates (or reuses) the data, then measures, each stage in its own
child process: history ingest, event ingest, the full build, every query
command (process start included), the pandas baseline, the seed's way (a
user's script per question against the loopback W&B and Axiom servers,
bench/seed_way.py), and an incremental refresh after 1 % new runs and events. It prints a table and writes JSON.
See bench/README.md for what each figure means. `--engine spark` measures the
full and incremental builds of the same data on DuckDB and on local Spark side
by side instead (bench/spark.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.generate_plan import SCALES  # noqa: E402
from bench.run_measure import measure  # noqa: E402
from bench.run_report import code_version, machine_info, print_report  # noqa: E402

SKIPPABLE = ("baseline", "seed_way", "incremental")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    ap.add_argument("--out", type=Path, required=True, help="JSON results file (rewritten after every stage)")
    ap.add_argument("--workdir", type=Path, help="keep data here and reuse it across runs (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the warehouse (and a temporary workdir) afterwards")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per query command (median reported)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--validate-runs",
        type=int,
        default=None,
        help="runs read back and compared exactly with what was written (default: all at tiny, 2 otherwise)",
    )
    ap.add_argument(
        "--skip",
        action="append",
        choices=SKIPPABLE,
        default=[],
        help="leave out a stage (repeatable); the JSON then lacks its figures",
    )
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="spark: the builds on DuckDB and on local Spark side by side (bench/spark.py), not the stages above",
    )
    a = ap.parse_args(argv)
    if a.engine == "spark":
        from bench.spark import main as spark_main

        forwarded = ["--scale", a.scale, "--out", str(a.out), "--seed", str(a.seed)]
        return spark_main(forwarded + (["--workdir", str(a.workdir)] if a.workdir else []))
    began = time.perf_counter()
    say = (lambda _m: None) if a.quiet else (lambda m: print(f"[{time.perf_counter() - began:7.1f}s] {m}", flush=True))

    temp = a.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="grpo-bench-")) if temp else a.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    warehouse = workdir / f"warehouse-{a.scale}"
    stage_dir = workdir / f"stages-{a.scale}"
    res: dict[str, Any] = {
        "scale": a.scale,
        "complete": False,
        "machine": machine_info(),
        "code": code_version(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "workdir": str(workdir),
        "repeat": a.repeat,
        "skipped": sorted(set(a.skip)),
    }

    def save() -> None:
        res["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        res["total_s"] = round(time.perf_counter() - began, 1)
        res["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_name(a.out.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=1, default=str) + "\n")
        os.replace(tmp, a.out)

    try:
        measure(a, res, workdir, warehouse, stage_dir, save, say)
        res["complete"] = True
    except BaseException as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        save()
        if not a.keep:
            shutil.rmtree(warehouse, ignore_errors=True)
            if temp:
                shutil.rmtree(workdir, ignore_errors=True)
    if not a.quiet:
        print_report(res)
        print(f"results written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
