"""The seed's way, side by side: each question answered by a short script as a user without this
warehouse writes it (the W&B API or Axiom's APL query API, then pandas), against `grpo`.

Both sides read the same data: the bench's generated runs and events, served
by the loopback W&B and Axiom servers of tests/fakes (bench/loopback.py),
each in its own process. The servers hold what the questions touch, not the
whole year: the Elo run and the sweep's runs (from their CSV history
exports, as finished runs with a parquet history export), and the events of
the last 24 hours plus the heartbeats of the 7 days before the window's end
(the health lookback). Every script (bench/seed_way_scripts/) is a separate
Python process started cold, timed from process start to its printed
answer, `repeat` times (median); its answer must agree with `grpo`'s or the
stage fails. `seed_way_ratio` is their median seconds ÷ ours.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loopback import loopback

SCRIPTS = Path(__file__).resolve().parent / "seed_way_scripts"
TOKEN = "xaat-" + "s" * 36
KEY = "local-" + "s" * 40
PROJECT, DATASET = "ent/grpo", "grpo-events"
# question -> (the grpo command of bench.run_measure.query_commands, window length before t_end)
QUESTIONS = {
    "elo_one_run": ("elo", None),
    "sweep_ranking": ("sweep", None),
    "rollout_p95_window": ("rollout-timing", dt.timedelta(hours=6)),
    "error_rate_window": ("errors", dt.timedelta(hours=1)),
    "extraction_rate_window": ("extraction-stats", dt.timedelta(hours=24)),
    "health_window": ("health", dt.timedelta(days=7)),  # the heartbeats of the health lookback
}


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    """A W&B CSV history export as the rows W&B holds: empty cells are keys not logged at that step."""
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in rec.items():
                if v in ("", None):
                    continue
                row[k] = int(float(v)) if k == "_step" else float(v)
            rows.append(row)
    return rows


def _wandb_spec(data: Any, run: str, sweep: str, work: Path) -> dict[str, Any]:
    with (data.exports_dir / "runs.csv").open(newline="", encoding="utf-8") as fh:
        listed = [r for r in csv.DictReader(fh) if r["Name"] == run or r["Group"] == sweep]
    runs = []
    for r in listed:
        rows = _csv_rows(data.exports_dir / "history" / f"{r['Name']}.csv")
        path = work / f"{r['Name']}.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in rows))
        runs.append(
            {
                "run_id": r["ID"],
                "display_name": r["Name"],
                "state": "finished",
                "sweep": r["Group"],
                "history_jsonl": str(path),
                "exported_rows": len(rows),
            }
        )
    return {"api_key": KEY, "entity": "ent", "projects": {PROJECT.split("/")[1]: runs}}


def _axiom_spec(data: Any, until: dt.datetime, work: Path) -> tuple[dict[str, Any], int]:
    """Events of the 24 h before `until`, plus earlier heartbeats back to the health lookback."""
    day, week = until - dt.timedelta(hours=24), until - dt.timedelta(days=7)
    kept = 0
    out = work / "events.ndjson"
    with out.open("w", encoding="utf-8") as dst:
        for f in sorted(data.events_dir.glob("*.ndjson")):
            with f.open(encoding="utf-8") as src:
                for line in src:
                    if line.startswith('{"_time":"'):  # how the generator writes every line
                        text = line[10 : line.index('"', 10)]
                    else:
                        text = json.loads(line)["_time"]
                    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                    if t >= until or t < week:
                        continue
                    if t >= day or '"event":"heartbeat"' in line:
                        dst.write(line)
                        kept += 1
    return {"token": TOKEN, "datasets": {DATASET: str(out)}}, kept


def _run_script(argv: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"seed-way script {argv[0]} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), took


def _close(a: float | None, b: float | None, rel: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def agree(question: str, theirs: dict[str, Any], ours: dict[str, Any]) -> str | None:
    """None when both answers agree on the question's figures, else what differs."""
    if question == "elo_one_run":
        mine = {r["player"]: r for r in ours["references"]}
        for r in theirs["references"]:
            m = mine.get(r["player"], {})
            if r["n_points"] != m.get("n_points") or not all(
                _close(r[k], m.get(k)) for k in ("first", "last", "delta")
            ):
                return f"reference {r['player']}: {r} vs {m}"
        if len(mine) != len(theirs["references"]):
            return f"references {sorted(mine)} vs {[r['player'] for r in theirs['references']]}"
        if not (
            _close(theirs["gap"]["last"], ours["gap"]["last"]) and _close(theirs["gap"]["final"], ours["gap"]["final"])
        ):
            return f"gap {theirs['gap']} vs {ours['gap']}"
    elif question == "sweep_ranking":
        mine = [(r["run"], r["gap_final"]) for r in ours["runs"]]
        them = [(r["run"], r["gap_final"]) for r in theirs["runs"]]
        if sorted(r for r, _ in mine) != sorted(r for r, _ in them):
            return f"runs {mine} vs {them}"
        gaps = dict(mine)
        if not all(_close(g, gaps.get(r)) for r, g in them) or [r for r, _ in them][:1] != [r for r, _ in mine][:1]:
            return f"ranking {them} vs {mine}"
    elif question == "rollout_p95_window":
        if theirs["count"] != ours["count"] or not _close(theirs["p95_s"], ours["p95_s"]):
            return f"{theirs} vs count {ours['count']}, p95 {ours['p95_s']}"
    elif question == "error_rate_window":
        if (theirs["rollouts"], theirs["failed_rollouts"]) != (ours["rollouts"], ours["failed_rollouts"]):
            return f"{theirs} vs {ours['rollouts']} rollouts, {ours['failed_rollouts']} failed"
    elif question == "extraction_rate_window":
        if (theirs["orders_expected"], theirs["orders_extracted"]) != (
            ours["orders_expected"],
            ours["orders_extracted"],
        ):
            return f"{theirs} vs {ours['orders_expected']} expected, {ours['orders_extracted']} extracted"
    elif question == "health_window":
        mine: dict[str, str] = {}
        for c in ours["components"]:
            mine[c["component"]] = max(mine.get(c["component"], ""), c["last_seen"] or "")
        them = theirs["components"]
        if set(mine) != set(them) or any(
            dt.datetime.fromisoformat(them[c].replace("Z", "+00:00"))
            != dt.datetime.fromisoformat(mine[c].replace("Z", "+00:00"))
            for c in them
        ):
            return f"last heartbeats {them} vs {mine}"
    return None


def measure_seed_way(data: Any, queries: dict[str, Any], repeat: int, say) -> dict[str, Any]:
    """Times every question both ways; returns the figures for the results JSON."""
    mid = data.runs[len(data.runs) // 2]
    run, sweep = mid["name"], mid["name"].rsplit("-", 1)[0]
    until = dt.datetime.fromtimestamp(data.t_end, dt.UTC)
    with tempfile.TemporaryDirectory(prefix="grpo-seed-way-") as tmp:
        work = Path(tmp)
        wandb_spec = _wandb_spec(data, run, sweep, work)
        axiom_spec, served_events = _axiom_spec(data, until, work)
        say(f"seed way: serving {len(wandb_spec['projects']['grpo'])} runs and {served_events:,} events …")
        with loopback("wandb", wandb_spec) as wandb_url, loopback("axiom", axiom_spec) as axiom_url:
            env = dict(os.environ)
            for k in [k for k in env if k.startswith(("WANDB_", "AXIOM_", "GRPO_"))]:
                env.pop(k)
            env.update(
                WANDB_API_KEY=KEY,
                WANDB_BASE_URL=wandb_url,
                WANDB_CACHE_DIR=str(work / "wandb-cache"),
                WANDB_CONFIG_DIR=str(work / "wandb-config"),
                WANDB_SILENT="true",
                AXIOM_TOKEN=TOKEN,
                AXIOM_URL=axiom_url,
            )
            argv = {
                "elo_one_run": [str(SCRIPTS / "elo_run.py"), PROJECT, run],
                "sweep_ranking": [str(SCRIPTS / "sweep_rank.py"), PROJECT, sweep],
            }
            names = {
                "rollout_p95_window": "rollout_p95",
                "error_rate_window": "error_rate",
                "extraction_rate_window": "extraction_rate",
                "health_window": "health",
            }
            for q, name in names.items():
                since = _iso(until - QUESTIONS[q][1])
                argv[q] = [str(SCRIPTS / "events_window.py"), DATASET, name, since, _iso(until)]
            ratios, detail = {}, {}
            for q, (cmd, _) in QUESTIONS.items():
                times, answer = [], None
                for _ in range(max(1, repeat)):
                    answer, took = _run_script(argv[q], env)
                    times.append(took)
                problem = agree(q, answer, queries[cmd]["answer"])
                if problem:
                    raise RuntimeError(f"seed way, {q}: the script's answer differs from `grpo {cmd}`: {problem}")
                theirs, ours = statistics.median(times), queries[cmd]["median_s"]
                ratios[q] = round(theirs / ours, 2)
                detail[q] = {
                    "theirs_s": round(theirs, 4),
                    "ours_s": round(ours, 4),
                    "our_command": cmd,
                    "same_answer": True,
                }
                say(f"seed way {q}: theirs {theirs:.2f} s, ours {ours:.3f} s = {theirs / ours:.1f}x")
    return {
        "seed_way_ratio": ratios,
        "seed_way_detail": detail,
        "seed_way": {
            "method": "a cold Python process per question: wandb.Api() + run.scan_history() + pandas, or "
            "axiom_py.Client.query(APL, pages of 50,000) + pandas, against the loopback servers",
            "served_runs": len(wandb_spec["projects"]["grpo"]),
            "served_events": served_events,
            "repeat": max(1, repeat),
        },
    }
