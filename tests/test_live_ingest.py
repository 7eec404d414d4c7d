"""`grpo ingest --wandb-project … --axiom-dataset …` with the real clients against loopback servers.

The fake servers (tests/fakes) speak W&B's GraphQL and Axiom's APL protocols;
the CLI runs as a user would run it, with credentials only in the environment.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.axiom_server import FakeAxiomServer
from tests.fakes.wandb_server import FakeRun, FakeWandbServer, make_rows, numeric_points

GRPO = str(Path(sys.executable).with_name("grpo"))
KEY = "local-" + "k" * 40
TOKEN = "xaat-" + "t" * 36
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def elo_rows(n: int, start: int = 0):
    rows = make_rows(n, start=start)
    for r in rows:
        s = r["_step"]
        if s % 10 == 0:
            r.update({"elo/base_model": 1000.0 - s, "elo/chaos_bot": 900.0 - 0.5 * s, f"elo/ckpt_{s}": 1000.0 + s})
    return rows


def rollout_events(n: int, start_min: int):
    return [
        {
            "_time": (NOW - dt.timedelta(minutes=start_min) + dt.timedelta(seconds=10 * i)).isoformat(),
            "event": "rollout",
            "run_id": "live1",
            "rollout_id": f"{start_min}-{i}",
            "duration_s": 30.0 + i % 7,
            "status": "error" if i % 50 == 0 else "ok",
            "engine": "vllm",
            "worker": "w1",
        }
        for i in range(n)
    ]


@pytest.fixture
def servers():
    wb = FakeWandbServer(api_key=KEY, entity="ent").start()
    ax = FakeAxiomServer(token=TOKEN).start()
    wb.add_run(
        "grpo",
        FakeRun(
            "live1",
            display_name="live-sweep-1",
            group="live-sweep",
            config={"lr": 1e-5},
            history=elo_rows(120),
            state="running",
            exported_rows=100,
        ),
    )
    wb.add_run(
        "grpo",
        FakeRun(
            "live2",
            display_name="live-sweep-2",
            group="live-sweep",
            config={"lr": 3e-5},
            history=elo_rows(80),
            exported_rows=80,
        ),
    )
    ax.add_events("grpo-logs", rollout_events(300, start_min=90))
    yield wb, ax
    wb.stop()
    ax.stop()


def ingest(wh: Path, wb, ax, tmp: Path) -> dict:
    env = {
        **os.environ,
        "GRPO_WAREHOUSE": str(wh),
        "WANDB_API_KEY": KEY,
        "WANDB_BASE_URL": wb.url,
        "WANDB_CACHE_DIR": str(tmp / "wandb-cache"),
        "WANDB_CONFIG_DIR": str(tmp / "wandb-config"),
        "AXIOM_TOKEN": TOKEN,
        "AXIOM_URL": ax.url,
    }
    since = (NOW - dt.timedelta(hours=3)).isoformat()
    proc = subprocess.run(
        [GRPO, "ingest", "--wandb-project", "ent/grpo", "--axiom-dataset", "grpo-logs", "--since", since, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert KEY not in proc.stdout + proc.stderr and TOKEN not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_live_sources_fill_the_warehouse_then_sync_only_what_is_new(servers, tmp_path):
    wb, ax = servers
    wh = tmp_path / "wh"
    first = ingest(wh, wb, ax, tmp_path)
    all_rows = wb.run("grpo", "live1").history + wb.run("grpo", "live2").history
    assert first["success"] is True
    assert first["runs"] == 2
    assert first["history_rows"] == numeric_points(all_rows)
    assert first["events"] == 300

    # The running run grows and new events arrive, some inside the overlap window.
    added = elo_rows(40, start=120)
    wb.run("grpo", "live1").append(added)
    ax.add_events("grpo-logs", rollout_events(50, start_min=15))
    second = ingest(wh, wb, ax, tmp_path)
    assert second["new_history_rows"] == numeric_points(added)
    assert second["new_events"] == 50
    assert second["events"] == 350

    # Nothing changed: nothing added, and no history was fetched.
    wb.reset_log()
    third = ingest(wh, wb, ax, tmp_path)
    assert (third["new_runs"], third["new_history_rows"], third["new_events"]) == (0, 0, 0)
    history_ops = {"RunHistoryKeys", "RunParquetHistory", "HistoryPage", "SampledHistoryPage", "RunFullHistory"}
    assert not history_ops & set(wb.graphql_ops())


def test_the_live_run_answers_the_elo_question(servers, tmp_path):
    wb, ax = servers
    wh = tmp_path / "wh"
    ingest(wh, wb, ax, tmp_path)
    env = {**os.environ, "GRPO_WAREHOUSE": str(wh)}
    proc = subprocess.run([GRPO, "elo", "live-sweep-1", "--json"], capture_output=True, text=True, env=env)
    ans = json.loads(proc.stdout)
    base = next(r for r in ans["references"] if r["player"] == "base_model")
    steps = [r["_step"] for r in wb.run("grpo", "live1").history if "elo/base_model" in r]
    assert base["delta"] == pytest.approx(-(max(steps) - min(steps)))
    assert base["trend"] == "declining"
    assert ans["gap"]["trend"] == "growing"
    assert not math.isnan(ans["gap"]["last"])


def test_a_bad_key_fails_with_one_clear_line_and_stores_nothing(servers, tmp_path):
    wb, ax = servers
    env = {
        **os.environ,
        "GRPO_WAREHOUSE": str(tmp_path / "wh"),
        "WANDB_API_KEY": "local-" + "b" * 40,
        "WANDB_BASE_URL": wb.url,
        "WANDB__GRAPHQL_RETRY_MAX": "1",
    }
    proc = subprocess.run(
        [GRPO, "ingest", "--wandb-project", "ent/grpo", "--json"], capture_output=True, text=True, env=env, timeout=300
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 2 and out["success"] is False
    assert len(out["errors"]) == 1 and "ent/grpo" in out["errors"][0]
    assert "b" * 40 not in proc.stdout + proc.stderr
    assert out["runs"] == 0 and out["history_rows"] == 0
