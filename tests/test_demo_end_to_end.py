"""End to end: `grpo demo` builds a warehouse whose answers match how the demo was generated.

The demo is generated once per session through the real CLI (real wandb
offline runs, the real Dagster job, the real dbt build). Expected values come
from the generator's own series (`pipelines.demo.league_truth.demo_runs`, which writes
nothing) and from the NDJSON files parsed here with `json` and numpy.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipelines.demo.league_truth import demo_runs
from tests.clock import DEMO_END_ISO

GRPO = str(Path(sys.executable).with_name("grpo"))


def grpo(wh: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRPO_WAREHOUSE": str(wh), "COLUMNS": "200"}
    proc = subprocess.run([GRPO, *args], capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"grpo {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def grpo_json(wh: Path, *args: str, expect_code: int = 0):
    proc = grpo(wh, *args, "--json", check=False)
    assert proc.returncode == expect_code, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    wh = tmp_path_factory.mktemp("demo_wh")
    summary = grpo_json(wh, "demo", "--end-time", DEMO_END_ISO)
    return wh, summary


@pytest.fixture(scope="session")
def events(demo):
    """Every good event line the demo wrote, parsed independently of the warehouse."""
    wh, summary = demo
    out = []
    for path in sorted(Path(summary["demo"]["events_dir"]).rglob("*")):
        if not path.is_file():
            continue
        opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                    obj["_t"] = dt.datetime.fromisoformat(obj["_time"].replace("Z", "+00:00"))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
                out.append(obj)
    return out


def _numeric_points(run) -> int:
    return sum(len(row) for _, row in run.history_rows())


def test_demo_ingests_every_run_event_and_bad_line_exactly_once(demo, events):
    wh, summary = demo
    runs = demo_runs(seed=7, steps=400)
    assert summary["success"] is True
    assert summary["runs"] == len(runs) == 7
    # wandb adds no numeric keys of its own beyond _step/_runtime/_timestamp, which are columns.
    assert summary["history_rows"] == sum(_numeric_points(r) for r in runs)
    assert summary["events"] == len(events)
    assert summary["rejected"] == summary["demo"]["events"]["bad_lines"] > 0
    assert summary["warnings"] == []  # the resumed run's segments agree; bad lines are rejects, not warnings


def test_ingesting_the_same_inputs_again_adds_nothing(demo):
    wh, summary = demo
    d = summary["demo"]
    again = grpo_json(
        wh, "ingest", *sum((["--wandb-dir", p] for p in d["wandb_dirs"]), []), "--events", d["events_dir"]
    )
    assert (again["new_runs"], again["new_history_rows"], again["new_events"], again["new_rejected"]) == (0, 0, 0, 0)
    assert again["history_rows"] == summary["history_rows"]
    assert again["events"] == summary["events"]


@pytest.mark.parametrize("run", demo_runs(seed=7, steps=400), ids=lambda r: r.name)
def test_each_demo_run_gets_the_verdict_it_was_generated_for(demo, run):
    wh, _ = demo
    ans = grpo_json(wh, "elo", run.name)
    assert ans["run_id"] == run.run_id
    assert ans["verdict"] == run.intended_verdict, ans["reason"]


def test_the_resumed_run_keeps_every_step_of_its_three_segments(demo):
    """kl-sweep-1 was preempted twice and resumed: three .wandb files, one run, every step the generator logged."""
    wh, summary = demo
    (run,) = [r for r in demo_runs(seed=7, steps=400) if r.name == "kl-sweep-1"]
    (manifest,) = [r for r in summary["demo"]["runs"] if r["name"] == run.name]
    assert len(manifest["wandb_files"]) == 3
    metrics = {m["key"]: m for m in grpo_json(wh, "metrics", "-r", run.name, "--all-metrics")["metrics"]}
    for key in ("train/kl", "train/reward_mean", "train/loss"):
        values = run.train[key]
        assert metrics[key]["count"] == len(values) == 400
        assert metrics[key]["first"] == pytest.approx(values[0]) and metrics[key]["last"] == pytest.approx(values[-1])
    elo = grpo_json(wh, "elo", run.name)
    for ref in elo["references"]:
        assert ref["n_points"] == len(run.eval_steps)
    (row,) = grpo_json(
        wh, "sql",
        "select state, last_step, json_extract_string(config_json, '$.resume_from_checkpoint') as resumed_from "
        "from dim_runs where run_name = 'kl-sweep-1'",
    )  # fmt: skip
    assert row == {"state": "finished", "last_step": 400, "resumed_from": "checkpoints/step_300"}


def test_base_model_delta_and_final_gap_match_the_logged_elo(demo):
    wh, _ = demo
    for run in demo_runs(seed=7, steps=400):
        if run.intended_verdict == "insufficient_data":
            continue
        ans = grpo_json(wh, "elo", run.run_id)
        base = run.elo["base_model"]
        base = base[~np.isnan(base)]
        ref = next(r for r in ans["references"] if r["player"] == "base_model")
        assert ref["delta"] == pytest.approx(round(base[-1], 2) - round(base[0], 2), abs=0.011)
        steps, gap = run.gap()
        assert ans["gap"]["last"] == pytest.approx(gap[-1], abs=0.02)


def test_sweep_ranking_follows_the_generated_final_gaps_and_marks_the_tie(demo):
    wh, _ = demo
    runs = [r for r in demo_runs(seed=7, steps=400) if r.sweep == "kl-sweep"]
    ans = grpo_json(wh, "sweep", "--sweep", "kl-sweep")
    assert [r["run"] for r in ans["runs"]] == [r.name for r in sorted(runs, key=lambda r: -(r.final_gap or -1e9))]
    ties = {r["run"] for r in ans["runs"] if r["is_tie"]}
    assert ties == {"kl-sweep-1", "kl-sweep-2"}
    assert "kl_coef" in ans["varying_config_keys"]
    lr = grpo_json(wh, "sweep", "--sweep", "lr-sweep")
    assert lr["runs"][0]["run"] == "lr-sweep-2" and not lr["runs"][0]["is_tie"]


def test_rollout_p95_in_the_slow_hour_equals_numpy_on_the_raw_events(demo, events):
    wh, summary = demo
    slow = dt.datetime.fromisoformat(summary["demo"]["events"]["slow_hour"].replace("Z", "+00:00"))
    end = slow + dt.timedelta(hours=1)
    durations = [e["duration_s"] for e in events if e.get("event") == "rollout" and slow <= e["_t"] < end]
    ans = grpo_json(wh, "rollout-timing", "--since", slow.isoformat(), "--until", end.isoformat())
    assert ans["count"] == len(durations)
    for q, key in ((50, "p50_s"), (95, "p95_s"), (99, "p99_s")):
        assert ans[key] == pytest.approx(np.percentile(durations, q), rel=1e-9)
    assert ans["passed"] is False and ans["p95_s"] > ans["target_p95_s"]


def test_error_and_extraction_rates_over_the_day_equal_independent_counts(demo, events):
    wh, summary = demo
    f = summary["demo"]["events"]
    since, until = f["window_start"], f["window_end"]
    end = dt.datetime.fromisoformat(until.replace("Z", "+00:00")) + dt.timedelta(seconds=1)
    window = [e for e in events if e["_t"] < end]
    rollouts = [e for e in window if e.get("event") == "rollout"]
    failed = sum(1 for e in rollouts if e["status"] != "ok")
    err = grpo_json(wh, "errors", "--since", since, "--until", end.isoformat())
    assert (err["rollouts"], err["failed_rollouts"]) == (len(rollouts), failed)
    assert err["error_rate"] == pytest.approx(failed / len(rollouts))
    assert err["error_events"] == sum(1 for e in window if e.get("level") == "error")
    ex = [e for e in window if e.get("event") == "extraction"]
    ext = grpo_json(wh, "extraction-stats", "--since", since, "--until", end.isoformat())
    assert ext["orders_expected"] == sum(e["orders_expected"] for e in ex)
    assert ext["orders_extracted"] == sum(e["orders_extracted"] for e in ex)
    worst = ext["by_run"][0]
    assert worst["run_id"] == f["extraction_problem"]["run_id"] and worst["passed"] is False


def test_the_component_that_went_silent_is_reported_down(demo):
    wh, summary = demo
    f = summary["demo"]["events"]
    ans = grpo_json(wh, "health", "--since", f["window_start"], "--until", f["window_end"])
    status = {(c["component"], c["host"]): c["status"] for c in ans["components"]}
    silent = f["silent_component"]
    assert status[(silent["component"], silent["host"])] == "down"  # silent about two hours: past the hour
    assert sum(1 for s in status.values() if s == "ok") == len(status) - 1


def test_check_exits_1_and_names_the_targets_the_demo_breaks(demo):
    wh, summary = demo
    ans = grpo_json(wh, "check", expect_code=1)
    failing = {(c["name"], c["subject"]) for c in ans["checks"] if not c["passed"]}
    f = summary["demo"]["events"]
    assert ("extraction_rate_per_run", f["extraction_problem"]["run_name"]) in failing
    assert ("kl_no_spikes", "lr-sweep-3") in failing
    assert ("grad_norm_below_target", "lr-sweep-3") in failing
    # the demo's high-learning-rate run collapses its entropy (a warning); the others keep theirs
    assert ("entropy_not_collapsed", "lr-sweep-3") in failing
    assert not {s for n, s in failing if n == "entropy_not_collapsed"} - {"lr-sweep-3"}
    slow = f["slow_hour"].replace("+00:00", "Z")
    assert any(n == "rollout_p95_per_hour" and s.startswith(slow[:13]) for n, s in failing)
    assert all(c["passed"] for c in ans["checks"] if c["subject"] == "lr-sweep-2" and c["severity"] == "error")


def test_every_answer_states_its_window_and_data_freshness(demo):
    wh, summary = demo
    end = ["--until", summary["demo"]["events"]["window_end"]]
    for cmd in (["rollout-timing", "--last", "6h"], ["errors"], ["extraction-stats"], ["health"], ["inference"]):
        ans = grpo_json(wh, *cmd, *end)
        assert ans["since"] < ans["until"]
        assert ans["freshness"]["latest_event_at"] is not None
    assert grpo_json(wh, "elo", "lr-sweep-1")["freshness"]["latest_step"] == 400


def test_a_window_with_no_events_says_no_data_instead_of_passing(demo):
    wh, _ = demo
    ans = grpo_json(wh, "errors", "--since", "2001-01-01", "--until", "2001-01-02", expect_code=2)
    assert ans["rollouts"] == 0 and ans["passed"] is None
    proc = grpo(wh, "errors", "--since", "2001-01-01", "--until", "2001-01-02", check=False)
    assert proc.returncode == 2 and "no data" in proc.stdout.lower()


def test_unknown_or_ambiguous_names_list_candidates_and_exit_2(demo):
    wh, _ = demo
    proc = grpo(wh, "elo", "lr-sweep", check=False)
    assert proc.returncode == 2 and "ambiguous" in proc.stderr and "lr-sweep-1" in proc.stderr
    proc = grpo(wh, "elo", "no-such-run", check=False)
    assert proc.returncode == 2 and "no run" in proc.stderr
    proc = grpo(wh, "sweep", "--sweep", "zzz", check=False)
    assert proc.returncode == 2 and "kl-sweep" in proc.stderr


def test_sql_answers_selects_and_refuses_writes_attach_and_file_access(demo):
    wh, _ = demo
    rows = grpo_json(wh, "sql", "select count(*) as n from fct_learning_verdicts")
    assert rows == [{"n": 7}]
    for bad in (
        "create table x as select 1",
        "insert into fct_learning_verdicts select * from fct_learning_verdicts",
        f"attach '{wh}/evil.duckdb' as evil",
        f"copy (select 1) to '{wh}/out.csv'",
        "select * from read_csv('/etc/passwd')",
        "select 1; drop table fct_learning_verdicts",
    ):
        proc = grpo(wh, "sql", bad, check=False)
        assert proc.returncode == 2, bad
        assert proc.stderr.strip(), bad
    assert not (wh / "evil.duckdb").exists() and not (wh / "out.csv").exists()
    tables = {t["table_name"]: t for t in grpo_json(wh, "sql", "--tables")}
    assert "one row per run" in tables["fct_learning_verdicts"]["description"].lower()


def test_plots_are_written_as_png(demo, tmp_path):
    wh, _ = demo
    grpo(wh, "elo", "lr-sweep-2", "--plot", str(tmp_path / "elo.png"))
    grpo(wh, "sweep", "--sweep", "lr-sweep", "--plot", str(tmp_path / "sweep.png"))
    for name in ("elo.png", "sweep.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_tracker_writes_one_section_per_sweep_and_keeps_the_notes_around_it(demo, tmp_path):
    wh, _ = demo
    out = tmp_path / "docs" / "experiment-tracker.md"
    out.parent.mkdir()
    out.write_text("# Our experiments\n\nNotes written by hand.\n", encoding="utf-8")
    grpo(wh, "tracker", "--path", str(out))
    text = out.read_text()
    assert text.startswith("# Our experiments\n\nNotes written by hand.\n")
    for sweep in ("kl-sweep", "lr-sweep", "smoke-test"):
        assert f"## Sweep {sweep}" in text
    assert text.count("| lr-sweep-") >= 3
    out.write_text(text + "\nA note below the table.\n", encoding="utf-8")
    again = grpo_json(wh, "tracker", "--out", str(out))  # --out: the old name still works
    assert again["changed"] is False and out.read_text().endswith("A note below the table.\n")


def test_a_concurrent_reader_never_fails_while_the_warehouse_rebuilds(demo):
    """Readers use the published snapshot; a rebuild swaps it in by rename and never blocks them."""
    wh, summary = demo
    d = summary["demo"]
    stop = threading.Event()
    reads, failures = [0], []

    def reader():
        while not stop.is_set():
            try:
                con = duckdb.connect(str(wh / "grpo.duckdb"), read_only=True)
                try:
                    n = con.execute("select count(*) from fct_learning_verdicts").fetchall()[0][0]
                    assert n == 7
                    reads[0] += 1
                finally:
                    con.close()
            except Exception as exc:  # any failed read is a defect
                failures.append(repr(exc))
            time.sleep(0.02)  # a busy analyst, not a tight loop starving the build of CPU

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    started = time.monotonic()
    # A different warehouse root is not needed: the rebuild writes the same one.
    grpo(wh, "ingest", "--wandb-dir", d["wandb_dirs"][0], "--events", d["events_dir"], "--json")
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert reads[0] > 10, f"only {reads[0]} reads in {time.monotonic() - started:.0f} s"


# --- everyday answers that never mislead ------------------------------------------------


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_component_silent_since_before_the_window_is_listed_as_not_ok(demo):
    """The demo's vllm-b stops about two hours before the end: an hour's window after that still names it."""
    wh, summary = demo
    f = summary["demo"]["events"]
    silent = f["silent_component"]
    end = f["window_end"]
    ans = grpo_json(wh, "health", "--last", "1h", "--until", end)
    (comp,) = [c for c in ans["components"] if c["component"] == silent["component"]]
    assert comp["status"] == "down" and comp["heartbeats"] == 0
    assert _at(comp["last_seen"]) == _at(silent["last_heartbeat_at"])
    assert comp["silent_s"] == pytest.approx((_at(ans["as_of"]) - _at(silent["last_heartbeat_at"])).total_seconds())
    assert ans["not_ok"] == 1 and len(ans["components"]) == len(f["components"])
    text = " ".join(grpo(wh, "health", "--last", "1h", "--until", end).stdout.split())
    assert f"1 of {len(f['components'])} components not ok" in text and "all" not in text.split("not ok")[0]
    # before it died, the same hour-long question finds every component ok
    before = _at(silent["last_heartbeat_at"]) - dt.timedelta(minutes=30)
    earlier = grpo_json(wh, "health", "--last", "1h", "--until", before.isoformat())
    assert {c["status"] for c in earlier["components"]} == {"ok"} and earlier["not_ok"] == 0


def test_health_and_the_component_mart_apply_one_rule(demo):
    wh, summary = demo
    latest = grpo_json(wh, "health", "--last", "1h")["freshness"]["latest_event_at"]
    until = (_at(latest) + dt.timedelta(microseconds=1)).isoformat()  # the window's end at the newest event
    cli = {
        (c["component"], c["host"]): c["status"]
        for c in grpo_json(wh, "health", "--last", "1h", "--until", until)["components"]
    }
    mart = {
        (r["component"], r["host"]): r["status"]
        for r in grpo_json(wh, "sql", "select component, host, status from fct_component_health where is_listed")
    }
    assert cli == mart and "down" in mart.values()


def test_inference_answers_per_engine_and_hour_as_numpy_computes_from_the_events(demo, events):
    wh, summary = demo
    f = summary["demo"]["events"]
    until = _at(f["window_end"])
    since = until - dt.timedelta(hours=6)
    window = [e for e in events if e.get("event") == "inference" and since <= e["_t"] < until]
    ans = grpo_json(wh, "inference", "--since", since.isoformat(), "--until", until.isoformat())
    assert ans["requests"] == len(window)
    for row in ans["by_engine"]:
        mine = [e for e in window if e["engine"] == row["engine"]]
        lat = [e["latency_s"] for e in mine]
        assert row["requests"] == len(mine)
        for q, key in ((50, "latency_p50_s"), (95, "latency_p95_s"), (99, "latency_p99_s")):
            assert row[key] == pytest.approx(np.percentile(lat, q), rel=1e-9)
        assert row["tokens_per_s_mean"] == pytest.approx(np.mean([e["tokens_per_s"] for e in mine]), rel=1e-9)
        assert row["queue_s_mean"] == pytest.approx(np.mean([e["queue_s"] for e in mine]), rel=1e-9)
        assert row["batch_size_mean"] == pytest.approx(np.mean([e["batch_size"] for e in mine]), rel=1e-9)
    hours = {(_at(h["hour"]), h["engine"]): h["requests"] for h in ans["by_hour"]}
    assert sum(hours.values()) == len(window)
    first = min(hours)
    assert hours[first] == sum(
        1 for e in window if e["engine"] == first[1] and first[0] <= e["_t"] < first[0] + dt.timedelta(hours=1)
    )


def _playbook_actions() -> dict[str, dict[str, str]]:
    import yaml

    return yaml.safe_load((Path(__file__).resolve().parent.parent / "dbt_project.yml").read_text())["vars"][
        "target_actions"
    ]


def test_a_missed_target_says_what_to_do_and_what_to_run_next(demo):
    wh, summary = demo
    f = summary["demo"]["events"]
    playbook = _playbook_actions()
    slow = _at(f["slow_hour"])
    timing = grpo_json(
        wh, "rollout-timing", "--since", slow.isoformat(), "--until", (slow + dt.timedelta(hours=1)).isoformat()
    )
    assert timing["passed"] is False and timing["action"] == playbook["rollout_p95"]
    assert timing["action"]["next"].startswith("grpo inference")  # the rollout answer points to the engines
    err_hour = _at(f["error_hour"])
    errors = grpo_json(
        wh, "errors", "--since", err_hour.isoformat(), "--until", (err_hour + dt.timedelta(hours=1)).isoformat()
    )
    assert errors["passed"] is False and errors["action"] == playbook["error_rate"]
    hours = sorted(_at(h) for h in f["extraction_problem"]["hours"])
    ext = grpo_json(
        wh,
        "extraction-stats",
        "--since",
        hours[0].isoformat(),
        "--until",
        (hours[-1] + dt.timedelta(hours=1)).isoformat(),
    )
    assert ext["passed"] is False and ext["action"] == playbook["extraction_rate"]
    fine = grpo_json(wh, "rollout-timing", "--since", f["window_start"], "--until", f["window_end"])
    assert fine["passed"] is True and fine["action"] is None
    metrics = grpo_json(wh, "metrics", "-r", "lr-sweep-3")
    assert {a["target"] for a in metrics["actions"]} == {"grad_norm", "kl", "entropy"}
    assert all(a["next"] == "grpo metrics -r lr-sweep-3" for a in metrics["actions"])
    check = grpo_json(wh, "check", expect_code=1)
    failing = [c for c in check["checks"] if not c["passed"]]
    by_name = {c["name"]: c for c in failing}
    assert by_name["rollout_p95_per_hour"]["action"]["action"] == playbook["rollout_p95"]["action"]
    assert by_name["grad_norm_below_target"]["action"]["next"] == "grpo metrics -r lr-sweep-3"
    assert all(c["action"] is None for c in check["checks"] if c["passed"])
    text = " ".join(grpo(wh, "check", check=False).stdout.split())
    assert "What to do rollout_p95_per_hour: " + playbook["rollout_p95"]["action"] in text


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["elo", "lr-sweep-2"], 0),
        (["elo", "no-such-run"], 2),
        (["sweep", "--sweep", "kl-sweep"], 0),
        (["sweep", "--sweep", "zzz"], 2),
        (["metrics", "-r", "lr-sweep-3"], 0),
        (["metrics", "-r", "no-such-run"], 2),
        (["rollout-timing", "--since", "2001-01-01", "--until", "2001-01-02"], 2),
        (["errors", "--since", "2001-01-01", "--until", "2001-01-02"], 2),
        (["extraction-stats", "--since", "2001-01-01", "--until", "2001-01-02"], 2),
        (["inference", "--since", "2001-01-01", "--until", "2001-01-02"], 2),
        (["health", "--since", "2001-01-01", "--until", "2001-01-02"], 2),
        (["health", "--last", "1h", "--until", "END"], 0),
        (["inference", "--last", "6h", "--until", "END"], 0),
        (["rollout-timing", "--last", "5h", "--until", "END"], 0),
        (["check"], 1),
        (["sql", "select 1 as x"], 0),
        (["sql", "select * from no_such_table"], 2),
        (["errors", "--last", "soon"], 2),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_every_command_keeps_one_exit_code_contract_in_text_and_json(demo, args, code):
    """0 answered, 1 a failing error-severity target in `grpo check`, 2 a usage error or no data."""
    wh, summary = demo
    args = [summary["demo"]["events"]["window_end"] if a == "END" else a for a in args]
    for extra in ([], ["--json"]):
        proc = grpo(wh, *args, *extra, check=False)
        assert proc.returncode == code, (args, extra, proc.stdout[-500:], proc.stderr[-500:])


def test_a_wide_sql_result_prints_one_record_at_a_time_and_json_is_unchanged(demo):
    wh, _ = demo
    wide = grpo(wh, "sql", "select * from fct_learning_verdicts order by run_name").stdout
    names = [r["column_name"] for r in grpo_json(wh, "sql", "select column_name from (describe fct_learning_verdicts)")]
    assert "one record at a time" in wide and wide.count("-[ record ") == 7
    lines = wide.splitlines()
    assert max(len(line) for line in lines) <= 200
    start = next(i for i, line in enumerate(lines) if line.startswith("-[ record 1 ]"))
    end = next(i for i, line in enumerate(lines) if line.startswith("-[ record 2 ]"))
    labels = [
        line.split(" | ")[0].strip() for line in lines[start + 1 : end] if " | " in line and not line.startswith(" ")
    ]
    assert labels == names  # long values fold onto lines of their own
    narrow = grpo(wh, "sql", "select run_name, verdict from fct_learning_verdicts").stdout
    assert "record" not in narrow and "run_name" in narrow.splitlines()[0]
    rows = grpo_json(wh, "sql", "select * from fct_learning_verdicts")
    assert len(rows) == 7 and list(rows[0]) == names


def test_grpo_elo_shows_game_ratings_that_agree_with_an_independent_fit(demo, events):
    """The demo's league games (read from its NDJSON here) fitted by logistic regression over the
    pairwise rows (scipy, tests/independent_stats.py) give the ratings `grpo elo --json` shows;
    with 600 games the verdict says it used them, and the logged Elo sits next to each rating."""
    from tests.independent_stats import logistic_bt_elo, pairwise_rows

    wh, _ = demo
    (run,) = [r for r in demo_runs(seed=7, steps=400) if r.name == "lr-sweep-2"]
    games = [e for e in events if e.get("event") == "game" and e["run_id"] == run.run_id]
    assert len(games) == 600
    expected = logistic_bt_elo(
        pairwise_rows([[(p["player"], p["rank"]) for p in g["players"]] for g in games], higher_is_better=False),
        "base_model",
    )
    ans = grpo_json(wh, "elo", run.name)
    g = ans["game_ratings"]
    assert g["n_games"] == 600 and g["evidence"] == "games"
    got = {p["player"]: p for p in g["players"]}
    assert set(got) == set(expected)
    for player, rating in expected.items():
        assert got[player]["rating"] == pytest.approx(rating, abs=1e-6)
        lo, hi = got[player]["ci95"]
        assert lo <= got[player]["rating"] <= hi
        assert got[player]["logged_elo"] == pytest.approx(run.elo[player][np.isfinite(run.elo[player])][-1])
    assert "league games" in ans["reason"]
    text = grpo(wh, "elo", run.name).stdout
    assert "Ratings from 600 league games" in text and "verdict evidence: the games" in text
