"""Benchmark the warehouse at the size of a year of GRPO experiments.

    uv run python bench/run.py --scale tiny|medium|full --out results.json [--workdir DIR] [--keep]

One run generates (or reuses) the data, then measures, each stage in its own
child process: history ingest, event ingest, the full build, every query
command (process start included), the pandas baseline, and an incremental
refresh after 1 % new runs and events. It prints a table and writes JSON.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.generate import DataSet, generate, validate_against_reader  # noqa: E402
from bench.generate_events import COMPONENTS, ERRORS  # noqa: E402
from bench.generate_plan import SCALES  # noqa: E402

GRPO = REPO / ".venv" / "bin" / "grpo"
PAGE = os.sysconf("SC_PAGE_SIZE")

# Stages that are not the warehouse (the memory target does not apply to them).
NOT_OURS = ("baseline",)

# Targets at full scale (README "Targets").
TARGETS = {
    "query_max_s": 1.0,
    "incremental_ratio_max": 0.10,
    "ingest_history_points_per_s_min": 1_000_000,
    "ingest_events_per_s_min": 500_000,
    "peak_rss_mb_max": 4096,
    "baseline_ratio_min": 20.0,
}


# --- measuring child processes ------------------------------------------------------


def _proc_tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            pass
        todo.extend(children.get(pid, ()))
    return total


class _TreeSampler(threading.Thread):
    """Samples the RSS of a process tree every `interval` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _proc_tree_rss(self.pid))
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_measured(cmd: list[str], env: dict[str, str], *, stdout=None, stderr=None, sample_tree: bool = False) -> dict[str, Any]:
    """Run `cmd`; wall seconds (process start included), exit code, and peak RSS.

    `maxrss_mb` comes from wait4(): the largest resident set of the child or any
    descendant it waited for (exact, but per process). `tree_peak_mb` is the
    sampled sum over the whole process tree (dbt runs in a grandchild).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    sampler = _TreeSampler(proc.pid) if sample_tree else None
    if sampler:
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if sampler:
        sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = {"rc": proc.returncode, "wall_s": wall, "maxrss_mb": usage.ru_maxrss / 1024}
    if sampler:
        out["tree_peak_mb"] = sampler.peak / 2**20
    return out


def child_env(warehouse: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DAGSTER_HOME", None)  # an ephemeral Dagster instance, as `grpo ingest` uses by default
    env.update(
        GRPO_WAREHOUSE=str(warehouse),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DAGSTER_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_stage(name: str, args: dict[str, Any], stage_dir: Path, env: dict[str, str], say) -> dict[str, Any]:
    """Run one bench.stages stage in a child; its own result plus wall time and peak memory."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    args_path, result_path = stage_dir / f"{name}.args.json", stage_dir / f"{name}.result.json"
    args_path.write_text(json.dumps(args))
    result_path.unlink(missing_ok=True)
    say(f"stage {name} …")
    with open(stage_dir / f"{name}.log", "w") as log:
        m = run_measured([sys.executable, "-m", "bench.stages", name, str(args_path), str(result_path)], env,
                         stdout=log, stderr=subprocess.STDOUT, sample_tree=True)
    if m["rc"] != 0 or not result_path.exists():
        tail = (stage_dir / f"{name}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"stage {name} failed (exit {m['rc']}):\n{tail}")
    result = json.loads(result_path.read_text())
    result["process"] = m
    say(f"stage {name}: {m['wall_s']:.1f} s wall, peak {max(m['maxrss_mb'], m.get('tree_peak_mb', 0)):.0f} MB")
    return result


def peak_mb(stage: dict[str, Any]) -> float:
    p = stage["process"]
    return round(max(p["maxrss_mb"], p.get("tree_peak_mb", 0.0)), 1)


# --- queries ---------------------------------------------------------------------------


def query_commands(data: DataSet) -> dict[str, list[str]]:
    """The everyday questions, each a `grpo … --json` command line (name -> argv after `grpo`)."""
    mid = data.runs[len(data.runs) // 2]
    run, sweep = mid["name"], mid["name"].rsplit("-", 1)[0]
    until = data.t_end_iso
    return {
        "elo": ["elo", run, "--json"],
        "sweep": ["sweep", "--sweep", sweep, "--json"],
        "metrics": ["metrics", "-r", run, "--json"],
        "rollout-timing": ["rollout-timing", "--last", "6h", "--until", until, "--json"],
        "errors": ["errors", "--last", "1h", "--until", until, "--json"],
        "extraction-stats": ["extraction-stats", "--last", "24h", "--until", until, "--json"],
        "health": ["health", "--last", "1h", "--until", until, "--json"],
        "check": ["check", "--json"],
        "sql": ["sql", "select count(*) from raw_wandb_history", "--json"],
        # not one of the nine: the per-run table the all-runs Elo baseline is compared with
        "sql_elo_deltas": ["sql", "select run_name, delta from fct_reference_trends where player = 'base_model' order by run_name", "--json"],
    }


def run_queries(commands: dict[str, list[str]], env: dict[str, str], repeat: int, say) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, argv in commands.items():
        cmd = [str(GRPO), *argv]
        times, rss, rcs = [], [], []
        answer: Any = None
        for i in range(repeat + 1):  # the first run warms the OS page cache and is not counted
            with tempfile.TemporaryFile() as fh_out, tempfile.TemporaryFile() as fh_err:
                m = run_measured(cmd, env, stdout=fh_out, stderr=fh_err)
                fh_out.seek(0)
                text = fh_out.read().decode(errors="replace")
                fh_err.seek(0)
                err = fh_err.read().decode(errors="replace")
            if m["rc"] not in (0, 1):  # 1: `grpo check` answered that a target fails
                raise RuntimeError(f"`grpo {' '.join(argv)}` exited {m['rc']}: {err[-2000:]}")
            if i == 0:
                answer = json.loads(text)
                continue
            times.append(m["wall_s"])
            rss.append(m["maxrss_mb"])
            rcs.append(m["rc"])
        out[name] = {
            "argv": ["grpo", *argv],
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "times_s": [round(t, 4) for t in times],
            "exit_codes": sorted(set(rcs)),
            "peak_rss_mb": max(rss),
            "answer": answer,
        }
        say(f"  grpo {name}: median {out[name]['median_s']:.3f} s")
    return out


# --- the report --------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 2**20, 1),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{p.replace("-", "_"): version(p) for p in ("duckdb", "pyarrow", "pandas", "dagster", "dbt-core", "dbt-duckdb", "wandb")},
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def code_version() -> dict[str, Any]:
    """The commit measured and the files changed on top of it: the tree changes while others work in it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if len(line) > 3]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "commit_date": git("log", "-1", "--format=%cI").strip(),
            "modified_files": changed}


def _agree(a: float | None, b: float | None, rel: float = 1e-9) -> bool | None:
    if a is None or b is None:
        return None
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def compare_baseline(base: dict[str, Any], queries: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """baseline time / our time per question, and whether both got the same answer."""
    q = base["questions"]
    ours = {
        "rollout_p95_window": "rollout-timing",
        "error_rate_window": "errors",
        "elo_delta_one_run": "elo",
        "sweep_ranking": "sweep",
        "rollout_p95_window_pruned": "rollout-timing",
        "error_rate_window_pruned": "errors",
        "elo_delta_all_runs": "sql_elo_deltas",
    }
    ratios, details = {}, {}
    for question, cmd in ours.items():
        our_s = queries[cmd]["median_s"]
        base_s = q[question]["seconds"]
        ans, mine = q[question]["answer"], queries[cmd]["answer"]
        if question.startswith("rollout_p95"):
            agree = _agree(ans["p95_s"], mine["p95_s"])
        elif question.startswith("error_rate"):
            agree = _agree(ans["error_rate"], mine["error_rate"])
        elif question == "elo_delta_one_run":
            ref = next((r for r in mine["references"] if r["player"] == "base_model"), {})
            agree = _agree(ans["delta"], ref.get("delta"), 1e-6)
        elif question == "sweep_ranking":
            agree = [r["run"] for r in ans][:1] == [r["run"] for r in mine["runs"]][:1]
        else:
            rows = {r["run_name"]: r["delta"] for r in mine}
            agree = bool(rows) and all(_agree(v, rows.get(k), 1e-6) for k, v in q[question]["deltas"].items())
        ratios[question] = round(base_s / our_s, 2)
        details[question] = {"baseline_s": round(base_s, 4), "ours_s": round(our_s, 4), "our_command": cmd, "same_answer": agree}
    return ratios, details


def _status(ok: bool | None) -> str:
    return "–" if ok is None else ("[green]met[/]" if ok else "[red]missed[/]")


def print_report(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(width=max(shutil.get_terminal_size((140, 40)).columns, 120))
    if "history_points" not in res:
        c.print(f"[red]no figures[/]: {res.get('error')}")
        return
    t = Table(title=f"grpo-warehouse benchmark, scale {res['scale']} "
                    f"({res['history_points']:,} history points, {res['events']:,} events)", title_justify="left")
    for col in ("figure", "value", "target (full scale)", ""):
        t.add_column(col)
    tg = res.get("targets", {})

    def met(key: str) -> str:
        return _status(tg.get(key, {}).get("met"))

    if "ingest_history_points_per_s" in res:
        t.add_row("ingest history", f"{res['ingest_history_points_per_s']:,.0f} points/s ({res['ingest_history_s']:.1f} s)",
                  "≥ 1M points/s", met("ingest_history_points_per_s"))
    if "ingest_events_per_s" in res:
        t.add_row("ingest events", f"{res['ingest_events_per_s']:,.0f} events/s ({res['ingest_events_s']:.1f} s)",
                  "≥ 500k events/s", met("ingest_events_per_s"))
    if "full_build_s" in res:
        t.add_row("full build (Dagster job, no new data)", f"{res['full_build_s']:.1f} s", "", "")
    if "incremental_refresh_s" in res:
        t.add_row("incremental refresh (+1 %)", f"{res['incremental_refresh_s']:.1f} s ({100 * res['incremental_ratio']:.0f} % of full build)",
                  "< 10 % of full build", met("incremental_ratio"))
    for name, s in res.get("query_wall_s", {}).items():
        t.add_row(f"grpo {name}", f"{s:.3f} s (median of {res['repeat']})", "< 1 s", _status(s < TARGETS["query_max_s"]))
    for stage, mb in res.get("peak_rss_mb", {}).items():
        ours = stage not in NOT_OURS
        t.add_row(f"peak RSS {stage}" + ("" if ours else " (pandas)"), f"{mb:,.0f} MB", "< 4 GB" if ours else "",
                  _status(mb < TARGETS["peak_rss_mb_max"]) if ours else "")
    for q, r in res.get("baseline_ratio", {}).items():
        d = res["baseline_detail"][q]
        t.add_row(f"vs pandas: {q}", f"{r:,.1f}x ({d['baseline_s']:.2f} s / {d['ours_s']:.3f} s)",
                  "≥ 20x", _status(r >= TARGETS["baseline_ratio_min"]))
    c.print(t)


def evaluate_targets(res: dict[str, Any]) -> dict[str, Any]:
    """Each target with the measured value and whether it is met (targets are set for full scale)."""
    out: dict[str, Any] = {}

    def add(name: str, value: float, target: float, met: bool, **extra) -> None:
        out[name] = {"value": value, "target": target, "met": met, **extra}

    if "ingest_history_points_per_s" in res:
        v = res["ingest_history_points_per_s"]
        add("ingest_history_points_per_s", v, TARGETS["ingest_history_points_per_s_min"], v >= TARGETS["ingest_history_points_per_s_min"])
    if "ingest_events_per_s" in res:
        v = res["ingest_events_per_s"]
        add("ingest_events_per_s", v, TARGETS["ingest_events_per_s_min"], v >= TARGETS["ingest_events_per_s_min"])
    if "query_wall_s" in res:
        nine = {k: v for k, v in res["query_wall_s"].items() if k != "sql_elo_deltas"}
        v = max(nine.values())
        add("query_max_s", v, TARGETS["query_max_s"], v < TARGETS["query_max_s"], slowest=max(nine, key=nine.get))
    if "incremental_ratio" in res:
        v = res["incremental_ratio"]
        add("incremental_ratio", v, TARGETS["incremental_ratio_max"], v < TARGETS["incremental_ratio_max"])
    ours = {k: v for k, v in res.get("peak_rss_mb", {}).items() if k not in NOT_OURS}
    if ours:
        v = max(ours.values())
        add("peak_rss_mb", v, TARGETS["peak_rss_mb_max"], v < TARGETS["peak_rss_mb_max"], worst_stage=max(ours, key=ours.get))
    if "baseline_ratio" in res:
        primary = ("rollout_p95_window", "error_rate_window", "elo_delta_one_run", "sweep_ranking")
        v = min(res["baseline_ratio"][q] for q in primary)
        add("baseline_ratio", v, TARGETS["baseline_ratio_min"], v >= TARGETS["baseline_ratio_min"],
            over=list(primary), missed_by=[q for q in primary if res["baseline_ratio"][q] < TARGETS["baseline_ratio_min"]])
    return out


# --- main -------------------------------------------------------------------------------------


SKIPPABLE = ("baseline", "incremental")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    ap.add_argument("--out", type=Path, required=True, help="JSON results file (rewritten after every stage)")
    ap.add_argument("--workdir", type=Path, help="keep data here and reuse it across runs (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the warehouse (and a temporary workdir) afterwards")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per query command (median reported)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--validate-runs", type=int, default=None,
                    help="runs read back and compared exactly with what was written (default: all at tiny, 2 otherwise)")
    ap.add_argument("--skip", action="append", choices=SKIPPABLE, default=[],
                    help="leave out a stage (repeatable); the JSON then lacks its figures")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    began = time.perf_counter()
    say = (lambda _m: None) if a.quiet else (lambda m: print(f"[{time.perf_counter() - began:7.1f}s] {m}", flush=True))

    temp = a.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="grpo-bench-")) if temp else a.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    warehouse = workdir / f"warehouse-{a.scale}"
    stage_dir = workdir / f"stages-{a.scale}"
    res: dict[str, Any] = {"scale": a.scale, "complete": False, "machine": machine_info(),
                           "code": code_version(), "started_at": dt.datetime.now(dt.UTC).isoformat(), "workdir": str(workdir),
                           "repeat": a.repeat, "skipped": sorted(set(a.skip))}

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


def measure(a, res: dict[str, Any], workdir: Path, warehouse: Path, stage_dir: Path, save, say) -> None:
    """Every stage in order; `res` gains each stage's figures as soon as it has them, and is saved."""
    t0 = time.perf_counter()
    data = generate(workdir / f"data-{a.scale}", a.scale, seed=a.seed, say=say)
    gen_s = time.perf_counter() - t0
    n_validate = a.validate_runs if a.validate_runs is not None else (len(data.runs) if a.scale == "tiny" else 2)
    t0 = time.perf_counter()
    validation = validate_against_reader(data, n_validate) if n_validate else {"runs_checked": 0}
    say(f"data: {data.history_points:,} history points in {len(data.runs)} runs, {data.events:,} events; "
        f"reader check {validation}")
    res["data"] = {
        "runs": len(data.runs), "steps": SCALES[a.scale].steps, "history_points": data.history_points,
        "events": data.events, "events_by_kind": data.events_by_kind, "wandb_gb": round(data.wandb_bytes / 1e9, 3),
        "events_gb": round(data.events_bytes / 1e9, 3), "reused": data.reused, "generate_s": round(gen_s, 2),
        "generate_detail_s": data.seconds, "t_end": data.t_end_iso, "reader_validation": validation,
        "reader_validation_s": round(time.perf_counter() - t0, 2),
        "increment": {"runs": len(data.increment_runs), "history_points": data.increment_history_points, "events": data.increment_events},
    }
    res["history_points"], res["events"] = data.history_points, data.events
    res["stage_seconds"], res["peak_rss_mb"] = {}, {}
    save()

    if warehouse.exists():
        shutil.rmtree(warehouse)
    env = child_env(warehouse)

    def stage(key: str, name: str, args: dict[str, Any], sub: str = "") -> dict[str, Any]:
        out = run_stage(name, args, stage_dir / sub if sub else stage_dir, env, say)
        res["stage_seconds"][key] = round(out["process"]["wall_s"], 3)
        res["peak_rss_mb"][key] = peak_mb(out)
        res.setdefault("peak_rss_detail", {})[key] = {
            "largest_process_mb": round(out["process"]["maxrss_mb"], 1),
            "process_tree_sampled_mb": round(out["process"].get("tree_peak_mb", 0.0), 1),
        }
        return out

    ih = stage("ingest_history", "ingest_history", {"warehouse": str(warehouse), "wandb_dir": str(data.wandb_dir)})
    rep = ih["report"]
    if rep["new_history_rows"] != data.history_points or rep["new_runs"] != len(data.runs):
        raise RuntimeError(f"history ingest stored {rep['new_history_rows']:,} points of {rep['new_runs']} runs; "
                           f"wrote {data.history_points:,} of {len(data.runs)}")
    res["ingest_history_s"] = round(ih["seconds"], 3)
    res["ingest_history_points_per_s"] = round(data.history_points / ih["seconds"])
    res["ingest_detail"] = {"history": {k: rep[k] for k in ("new_runs", "new_history_rows", "wandb_seconds", "warnings")}}
    save()

    ie = stage("ingest_events", "ingest_events", {"warehouse": str(warehouse), "events_dir": str(data.events_dir)})
    rep = ie["report"]
    if rep["new_events"] != data.events or rep["new_rejects"]:
        raise RuntimeError(f"event ingest stored {rep['new_events']:,} events ({rep['new_rejects']} rejects); wrote {data.events:,}")
    res["ingest_events_s"] = round(ie["seconds"], 3)
    res["ingest_events_per_s"] = round(data.events / ie["seconds"])
    res["ingest_detail"]["events"] = {k: rep[k] for k in ("new_events", "new_rejects", "events_seconds", "warnings")}
    save()

    full = stage("full_build", "build", {"warehouse": str(warehouse)}, "full")
    if not full["success"]:
        raise RuntimeError(f"full build failed: {full['errors']}")
    res["full_build_s"] = round(full["seconds"], 3)
    res["full_build"] = {k: full[k] for k in ("step_seconds", "dbt_command_s", "dbt_execution_s", "dbt_nodes",
                                               "dbt_node_seconds_sum", "dbt_slowest", "checks", "checks_failed")}
    save()

    say("query commands …")
    queries = run_queries(query_commands(data), env, a.repeat, say)
    counted = queries["sql"]["answer"][0]["count_star()"]
    if counted != data.history_points:
        raise RuntimeError(f"`grpo sql` counts {counted:,} history rows; {data.history_points:,} were written")
    res["query_wall_s"] = {k: round(v["median_s"], 4) for k, v in queries.items()}
    res["peak_rss_mb"]["queries"] = round(max(v["peak_rss_mb"] for v in queries.values()), 1)
    res["queries"] = {k: {kk: vv for kk, vv in v.items() if kk != "answer"} for k, v in queries.items()}
    save()

    if "baseline" not in a.skip:
        cats = {
            "event": ["rollout", "inference", "extraction", "heartbeat"], "level": ["error"], "status": ["ok", "error"],
            "component": sorted({c for c, _, _ in COMPONENTS} | {e[0] for e in ERRORS}),
            "error_type": sorted({e[1] for e in ERRORS}), "run_id": [r["run_id"] for r in data.runs],
        }
        mid = data.runs[len(data.runs) // 2]["name"]
        b = stage("baseline", "baseline", {
            "events_dir": str(data.events_dir), "exports_dir": str(data.exports_dir), "until": data.t_end_iso,
            "run": mid, "sweep": mid.rsplit("-", 1)[0], "categories": cats})
        res["baseline_ratio"], res["baseline_detail"] = compare_baseline(b, queries)
        res["baseline"] = {
            "method": "pandas.read_json(lines=True, engine='pyarrow') over every daily NDJSON file; "
                      "pandas.read_csv of the W&B CSV history exports",
            "events_load_s": round(b["events_load_s"], 3), "events_loaded": b["events_loaded"],
            "events_frame_mb": round(b["events_frame_mb"], 1),
            "reader_mb_per_s": {k: round(v, 1) for k, v in b["reader_mb_per_s"].items()},
            "answers": {k: v["answer"] for k, v in b["questions"].items()},
        }
        save()

    if "incremental" not in a.skip:
        inc = stage("incremental_refresh", "build", {
            "warehouse": str(warehouse),
            "wandb_dirs": [str(data.wandb_dir), str(data.increment_wandb_dir)],
            "event_paths": [str(data.events_dir), str(data.increment_events_dir)],
        }, "incremental")
        added_h = inc["after"]["history_rows"] - inc["before"]["history_rows"]
        added_e = inc["after"]["events"] - inc["before"]["events"]
        if not inc["success"] or added_h != data.increment_history_points or added_e != data.increment_events:
            raise RuntimeError(f"incremental refresh: success={inc['success']} added {added_h} points / {added_e} events; "
                               f"expected {data.increment_history_points} / {data.increment_events}; {inc['errors']}")
        res["incremental_refresh_s"] = round(inc["seconds"], 3)
        res["incremental_ratio"] = round(inc["seconds"] / full["seconds"], 3)
        res["incremental"] = {
            "added_history_points": added_h, "added_events": added_e,
            **{k: inc[k] for k in ("step_seconds", "dbt_command_s", "dbt_execution_s", "dbt_node_seconds_sum", "dbt_slowest")},
        }
        save()
    res["targets"] = evaluate_targets(res)


if __name__ == "__main__":
    sys.exit(main())
