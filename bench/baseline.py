"""The same answers computed the way analysts do without a warehouse: raw files into pandas.

Events: the NDJSON export is read file by file with `pandas.read_json(lines=True,
engine="pyarrow")` (the fastest reader pandas offers; the default ujson engine
is timed on a sample for reference), keeping the columns the questions need.
History: W&B's per-run CSV history export (one row per step, one column per
key, as the UI's "Export CSV" gives it) read with `pandas.read_csv`, plus the
project's runs table export to find a sweep's runs.

Each question's time is what an analyst pays to answer it cold: loading the
data it needs plus the computation. The event questions share one load of the
whole export (`load_s`, counted in full for each question); the `_pruned`
variants read only the daily files that overlap the window.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["_time", "event", "level", "run_id", "duration_s", "status", "component", "error_type"]


def _utc(iso: str) -> pd.Timestamp:
    return pd.Timestamp(iso).tz_convert("UTC") if pd.Timestamp(iso).tzinfo else pd.Timestamp(iso, tz="UTC")


def read_events(
    files: list[Path], engine: str = "pyarrow", categories: dict[str, list[str]] | None = None
) -> pd.DataFrame:
    """The needed columns of every file, as one frame; text columns become categoricals (with
    the known values, so they stay categorical when concatenated) to keep a year of events in RAM."""
    dtypes = {c: pd.CategoricalDtype(v) for c, v in (categories or {}).items()}
    parts = []
    for f in files:
        df = pd.read_json(f, lines=True, engine=engine)
        df = df.reindex(columns=EVENT_COLUMNS)
        if not pd.api.types.is_datetime64_any_dtype(df["_time"]):
            df["_time"] = pd.to_datetime(df["_time"], format="ISO8601", utc=True)
        for c, dtype in dtypes.items():
            df[c] = df[c].astype(dtype)
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def rollout_timing(df: pd.DataFrame, since: pd.Timestamp, until: pd.Timestamp) -> dict[str, Any]:
    w = df[(df["_time"] >= since) & (df["_time"] < until)]
    r = w[(w["event"] == "rollout") & w["duration_s"].notna()]
    by_run = r.groupby("run_id", observed=True)["duration_s"].quantile(0.95)
    by_hour = r.groupby(r["_time"].dt.floor("h"))["duration_s"].quantile(0.95)
    return {
        "count": int(len(r)),
        "p50_s": float(r["duration_s"].quantile(0.5)) if len(r) else None,
        "p95_s": float(r["duration_s"].quantile(0.95)) if len(r) else None,
        "p99_s": float(r["duration_s"].quantile(0.99)) if len(r) else None,
        "runs": int(len(by_run)),
        "hours": int(len(by_hour)),
    }


def error_rate(df: pd.DataFrame, since: pd.Timestamp, until: pd.Timestamp) -> dict[str, Any]:
    w = df[(df["_time"] >= since) & (df["_time"] < until)]
    rollouts = w[w["event"] == "rollout"]
    failed = int((rollouts["status"] != "ok").sum())
    errors = w[w["level"] == "error"] if "level" in w.columns else w.iloc[:0]
    by_component = errors.groupby("component", observed=True).size()
    return {
        "rollouts": int(len(rollouts)),
        "failed_rollouts": failed,
        "error_rate": failed / len(rollouts) if len(rollouts) else None,
        "error_events": int(len(errors)),
        "components": int(len(by_component)),
    }


def elo_delta(csv: Path) -> dict[str, Any]:
    df = pd.read_csv(csv)
    s = df[["_step", "elo/base_model"]].dropna().sort_values("_step")
    return {
        "first": float(s["elo/base_model"].iloc[0]),
        "last": float(s["elo/base_model"].iloc[-1]),
        "delta": float(s["elo/base_model"].iloc[-1] - s["elo/base_model"].iloc[0]),
        "n_points": int(len(s)),
    }


def final_gap(csv: Path, window: int = 5) -> float | None:
    df = pd.read_csv(csv)
    ckpts = [c for c in df.columns if c.startswith("elo/ckpt_")]
    ev = df[df["elo/base_model"].notna()]
    if not ckpts or ev.empty:
        return None
    gap = (ev[ckpts].max(axis=1) - ev["elo/base_model"]).dropna()
    return float(gap.tail(window).mean()) if len(gap) else None


def sweep_ranking(exports: Path, sweep: str) -> list[dict[str, Any]]:
    runs = pd.read_csv(exports / "runs.csv")
    members = runs[runs["Group"] == sweep]
    gaps = [{"run": name, "gap_final": final_gap(exports / "history" / f"{name}.csv")} for name in members["Name"]]
    gaps.sort(key=lambda g: (g["gap_final"] is None, -(g["gap_final"] or 0.0), g["run"]))
    return gaps


def _timed(fn, *a) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t0


def _files_overlapping(files: list[Path], since: pd.Timestamp, until: pd.Timestamp) -> list[Path]:
    """Daily export files (axiom-export-YYYY-MM-DD.ndjson) whose day overlaps [since, until)."""
    out = []
    for f in files:
        try:
            day = dt.datetime.strptime(f.name[len("axiom-export-") : len("axiom-export-") + 10], "%Y-%m-%d").replace(
                tzinfo=dt.UTC
            )
        except ValueError:
            out.append(f)
            continue
        if pd.Timestamp(day) < until and pd.Timestamp(day + dt.timedelta(days=1)) > since:
            out.append(f)
    return out


def run_baseline(args: dict[str, Any]) -> dict[str, Any]:
    events_dir = Path(args["events_dir"])
    exports = Path(args["exports_dir"])
    until = _utc(args["until"])
    files = sorted(events_dir.glob("*.ndjson"))
    out: dict[str, Any] = {"event_files": len(files), "event_bytes": sum(f.stat().st_size for f in files)}

    # The reference point for pandas' default reader: its speed on a sample of files.
    sample = files[:: max(1, len(files) // 5)][:5]
    cats = args.get("categories") or {}
    _, s_default = _timed(read_events, sample, "ujson", cats)
    _, s_arrow = _timed(read_events, sample, "pyarrow", cats)
    sample_bytes = sum(f.stat().st_size for f in sample)
    out["reader_mb_per_s"] = {"ujson": sample_bytes / 1e6 / s_default, "pyarrow": sample_bytes / 1e6 / s_arrow}

    df, load_s = _timed(read_events, files, "pyarrow", cats)
    out["events_loaded"] = int(len(df))
    out["events_load_s"] = load_s
    out["events_frame_mb"] = float(df.memory_usage(deep=True).sum() / 1e6)

    questions: dict[str, Any] = {}
    windows = {
        "rollout_p95_window": (rollout_timing, pd.Timedelta(hours=6)),
        "error_rate_window": (error_rate, pd.Timedelta(hours=1)),
    }
    for q, (fn, length) in windows.items():
        since = until - length
        answer, compute_s = _timed(fn, df, since, until)
        questions[q] = {"seconds": load_s + compute_s, "load_s": load_s, "compute_s": compute_s, "answer": answer}
    del df

    for q, (fn, length) in windows.items():
        since = until - length
        t0 = time.perf_counter()
        pruned = _files_overlapping(files, since, until)
        answer = fn(read_events(pruned, "pyarrow", cats), since, until)
        questions[q + "_pruned"] = {"seconds": time.perf_counter() - t0, "files_read": len(pruned), "answer": answer}

    run_name = args["run"]
    answer, s = _timed(elo_delta, exports / "history" / f"{run_name}.csv")
    questions["elo_delta_one_run"] = {"seconds": s, "answer": answer}

    def all_deltas() -> dict[str, float]:
        return {p.stem: elo_delta(p)["delta"] for p in sorted((exports / "history").glob("*.csv"))}

    answer, s = _timed(all_deltas)
    questions["elo_delta_all_runs"] = {
        "seconds": s,
        "answer": {"runs": len(answer), "mean_delta": float(np.mean(list(answer.values())))},
        "deltas": answer,
    }

    answer, s = _timed(sweep_ranking, exports, args["sweep"])
    questions["sweep_ranking"] = {"seconds": s, "answer": answer}
    out["questions"] = questions
    return out
