"""Smoke test of the benchmark: `bench/run.py --scale tiny` end to end, into a temporary folder.

Slow (two full Dagster builds plus ten CLI commands timed several times, ~2 min),
so it is marked slow; .ci/run runs it on its own after the default suite.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QUERY_COMMANDS = {"elo", "sweep", "metrics", "rollout-timing", "errors", "extraction-stats", "health", "check", "sql"}
STAGES = {
    "ingest_history",
    "ingest_events",
    "full_build",
    "incremental_refresh",
    "events_hour_sync",
    "baseline",
    "queries",
}
QUESTIONS = {"rollout_p95_window", "error_rate_window", "elo_delta_one_run", "sweep_ranking"}
SEED_WAY_QUESTIONS = {
    "elo_one_run",
    "sweep_ranking",
    "rollout_p95_window",
    "error_rate_window",
    "extraction_rate_window",
    "health_window",
}


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--scale",
            "tiny",
            "--out",
            str(out),
            "--workdir",
            str(tmp / "work"),
            "--repeat",
            "5",
            "--quiet",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_benchmark_reports_every_figure(tiny_results):
    r = tiny_results
    for key in (
        "scale",
        "machine",
        "history_points",
        "events",
        "ingest_history_points_per_s",
        "ingest_events_per_s",
        "full_build_s",
        "incremental_refresh_s",
        "events_hour_sync_s",
        "query_wall_s",
        "peak_rss_mb",
        "baseline_ratio",
        "seed_way_ratio",
        "targets",
    ):
        assert key in r, key
    assert r["scale"] == "tiny"
    assert {"cores", "ram_gb", "cpu_model", "python", "duckdb"} <= set(r["machine"])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_benchmark_figures_are_sane(tiny_results):
    r = tiny_results
    # 6 runs x 300 steps x 39 train metrics, plus Elo of 2 references and the checkpoints saved so far every 50 steps
    assert r["history_points"] == 6 * (300 * 39 + sum(j + 2 for j in range(1, 7)))
    assert 15_000 < r["events"] < 25_000
    assert r["data"]["reader_validation"]["runs_checked"] == 6
    assert r["ingest_history_points_per_s"] > 0 and r["ingest_events_per_s"] > 0
    assert 0 < r["full_build_s"] < 1200 and 0 < r["incremental_refresh_s"] < 1200
    assert r["incremental"]["added_history_points"] == r["data"]["increment"]["history_points"] > 0
    assert r["incremental"]["added_events"] == r["data"]["increment"]["events"] > 0
    assert 0 < r["events_hour_sync_s"] < 1200 and r["events_hour_sync"]["added_events"] > 0
    assert set(r["query_wall_s"]) >= QUERY_COMMANDS
    assert all(0 < s < 60 for s in r["query_wall_s"].values())
    assert all(len(q["times_s"]) >= 5 for q in r["queries"].values())
    assert set(r["peak_rss_mb"]) >= STAGES
    assert all(10 < mb < 24_000 for mb in r["peak_rss_mb"].values())
    assert set(r["baseline_ratio"]) >= QUESTIONS
    assert all(x > 0 for x in r["baseline_ratio"].values())
    # the pandas baseline and the warehouse answer the same
    assert all(d["same_answer"] for d in r["baseline_detail"].values()), r["baseline_detail"]
    # the seed's way: a user's script per question against the loopback servers, same answers as grpo
    assert set(r["seed_way_ratio"]) == SEED_WAY_QUESTIONS
    assert all(math.isfinite(x) and x > 0 for x in r["seed_way_ratio"].values()), r["seed_way_ratio"]
    for q, d in r["seed_way_detail"].items():
        assert d["same_answer"] and d["theirs_s"] > 0 and d["ours_s"] > 0, (q, d)
    assert r["seed_way"]["served_runs"] >= 2 and r["seed_way"]["served_events"] > 0
