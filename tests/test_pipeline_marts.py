"""Pipeline marts and check outcomes, built by the real `dbt build` from generated events.

Every expected number here is computed independently from the generated
events with numpy (``numpy.percentile``'s default linear interpolation is the
definition the marts promise), never read back from the warehouse.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pytest
from scipy import stats

from pipelines.raw.layer import Warehouse
from pipelines.settings import dbt_vars, event_fields, thresholds
from tests.dbt_harness import dbt_build, query, write_raw

T0 = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
HOURS = [T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)]

# run id -> (run name, the hour its rollouts fall in)
RUNS = {
    "run-good": ("grpo-good-1", 0),  # fast, reliable, extracts nearly everything
    "run-slow": ("grpo-slow-2", 1),  # rollout p95 far above target
    "run-flaky": ("grpo-flaky-3", 2),  # 10 % failed rollouts, poor extraction, KL spikes
}

PIPELINE_MODELS = (
    "+path:models/marts/pipeline",
    "+path:models/marts/checks",
    "+path:models/marts/retrospective",
    "path:models/staging/axiom",
)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventLog:
    """Builds raw event rows the way the ingest layer stores them."""

    def __init__(self, source: str = "events.ndjson", fields: dict[str, str] | None = None) -> None:
        self.source = source
        self.fields = fields or {}
        self.rows: list[dict[str, Any]] = []

    def add(self, at: dt.datetime, **fields: Any) -> dict[str, Any]:
        record = {self.fields.get("time", "_time"): iso(at)}
        record.update({self.fields.get(k, k): v for k, v in fields.items()})
        line = len(self.rows) + 1
        row = {
            "time": at,
            "record": json.dumps(record),
            "source": self.source,
            "line": line,
            "event_key": f"{self.source}:{line}",
        }
        self.rows.append(row)
        return row


def generate(seed: int = 7) -> tuple[EventLog, dict[str, Any]]:
    """Events for three runs over three hours, plus the facts tests compare against."""
    rng = np.random.default_rng(seed)
    log = EventLog()
    truth: dict[str, Any] = {"rollouts": [], "extractions": [], "errors": [], "latencies": []}

    for run_id, (_, hour) in RUNS.items():
        n = 120
        if run_id == "run-slow":
            durations = rng.uniform(60, 300, n)
        else:
            durations = rng.gamma(4.0, 8.0, n)
        failed = np.zeros(n, dtype=bool)
        if run_id == "run-flaky":
            failed[rng.choice(n, 12, replace=False)] = True
        offsets = np.sort(rng.uniform(0, 3599, n))
        for i in range(n):
            at = HOURS[hour] + dt.timedelta(seconds=float(offsets[i]))
            # every fifth duration is logged as a JSON integer
            d = int(round(durations[i])) if i % 5 == 0 else round(float(durations[i]), 3)
            log.add(
                at,
                event="rollout",
                run_id=run_id,
                rollout_id=f"{run_id}-{i}",
                duration_s=d,
                status="error" if failed[i] else "ok",
                engine="vllm",
                worker=f"w{i % 4}",
                **({"level": "error"} if failed[i] else {}),
            )
            truth["rollouts"].append(
                {"run_id": run_id, "hour": hour, "at": at, "duration_s": float(d), "failed": bool(failed[i])}
            )

    # Rollouts that name no run still count in the hourly marts.
    for i in range(10):
        at = HOURS[0] + dt.timedelta(minutes=5 * i + 1)
        d = round(float(rng.uniform(1, 20)), 3)
        log.add(at, event="rollout", rollout_id=f"anon-{i}", duration_s=d, status="ok")
        truth["rollouts"].append({"run_id": None, "hour": 0, "at": at, "duration_s": d, "failed": False})

    # floor() loses under 1/80 of a rate, so good and slow stay above 0.95
    extraction_plan = {"run-good": (0.98, 1.0), "run-slow": (0.975, 1.0), "run-flaky": (0.70, 0.85)}
    for run_id, (lo, hi) in extraction_plan.items():
        hour = RUNS[run_id][1]
        for i in range(6):
            at = HOURS[hour] + dt.timedelta(minutes=10 * i + 3)
            expected = int(rng.integers(80, 200))
            extracted = int(np.floor(expected * rng.uniform(lo, hi)))
            log.add(at, event="extraction", run_id=run_id, orders_expected=expected, orders_extracted=extracted)
            truth["extractions"].append({"run_id": run_id, "hour": hour, "expected": expected, "extracted": extracted})

    for i in range(5):
        at = HOURS[2] + dt.timedelta(minutes=7 * i + 2)
        log.add(
            at,
            level="error",
            run_id="run-flaky",
            component="reward",
            error_type="Timeout",
            message=f"reward timeout {i}",
        )
        truth["errors"].append(
            {
                "run_id": "run-flaky",
                "component": "reward",
                "error_type": "Timeout",
                "hour": 2,
                "message": f"reward timeout {i}",
            }
        )

    for i in range(20):
        at = HOURS[0] + dt.timedelta(minutes=3 * i)
        latency = round(float(rng.uniform(0.2, 3)), 4)
        truth["latencies"].append(latency)
        log.add(
            at,
            event="inference",
            run_id="run-good",
            engine="vllm",
            latency_s=latency,
            tokens_per_s=round(float(rng.uniform(500, 2000)), 1),
            batch_size=int(rng.integers(1, 64)),
            queue_s=round(float(rng.uniform(0, 1)), 4),
        )

    end = HOURS[2] + dt.timedelta(minutes=59, seconds=30)  # the latest event in the warehouse
    # trainer@gpu-1 beats every minute to the end; reward@cpu-1 goes silent at 11:30;
    # vllm@gpu-2 is alive but its last word is "degraded".
    for minute in range(180):
        at = HOURS[0] + dt.timedelta(minutes=minute)
        log.add(at, event="heartbeat", component="trainer", host="gpu-1", status="ok", gpu_util=0.9, gpu_mem_gb=70)
        if at <= HOURS[1] + dt.timedelta(minutes=30):
            log.add(at, event="heartbeat", component="reward", host="cpu-1", status="healthy")
        if minute % 10 == 0:
            log.add(at, event="heartbeat", component="vllm", host="gpu-2", status="ok", gpu_util=0.5)
    log.add(
        end - dt.timedelta(seconds=20),
        event="heartbeat",
        component="vllm",
        host="gpu-2",
        status="degraded",
        gpu_util=0.1,
    )
    log.add(end, event="checkpoint_saved", run_id="run-good")
    truth["end"] = end
    truth["reward_last_seen"] = HOURS[1] + dt.timedelta(minutes=30)
    return log, truth


def wandb_rows() -> tuple[dict[str, list[dict[str, Any]]], dict[str, np.ndarray]]:
    """Three finished runs logging `train/kl`; run-flaky has three steps above kl_spike_min."""
    runs = [
        {
            "run_id": run_id,
            "run_name": name,
            "project": "grpo",
            "entity": "lab",
            "run_group": "grpo",
            "tags": [],
            "config_json": "{}",
            "summary_json": "{}",
            "state": "finished",
            "started_at": HOURS[hour],
            "last_step": 99,
            "source": "test",
        }
        for run_id, (name, hour) in RUNS.items()
    ]
    rng = np.random.default_rng(11)
    history = []
    kl_values: dict[str, np.ndarray] = {}
    for run_id, (_, hour) in RUNS.items():
        kl = rng.uniform(0.005, 0.05, 100)
        if run_id == "run-flaky":
            kl[[30, 60, 90]] = [0.35, 0.5, 0.25]
        kl_values[run_id] = kl
        for step in range(100):
            history.append(
                {
                    "run_id": run_id,
                    "step": step,
                    "wall_time": HOURS[hour] + dt.timedelta(seconds=30 * step),
                    "key": "train/kl",
                    "value": float(kl[step]),
                }
            )
    return {"wandb_runs": runs, "wandb_history": history}, kl_values


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One warehouse with the generated events, built once for the module."""
    wh = Warehouse(tmp_path_factory.mktemp("pipeline_wh")).ensure()
    log, truth = generate()
    wandb, kl_values = wandb_rows()
    write_raw(
        wh,
        {
            "axiom_events": log.rows,
            "axiom_rejects": [{"source": "events.ndjson", "line": 9999, "reason": "invalid JSON", "raw": "{oops"}],
            **wandb,
        },
    )
    # The same rollout delivered again in a later batch (an overlapping sync).
    write_raw(wh, {"axiom_events": [log.rows[0]]})
    dbt_build(wh, "--select", *PIPELINE_MODELS)
    truth["kl"] = kl_values
    return wh, truth


def rollouts_of(truth, **where) -> list[dict[str, Any]]:
    return [r for r in truth["rollouts"] if all(r[k] == v for k, v in where.items())]


def test_hourly_rollout_percentiles_match_numpy(built):
    wh, truth = built
    rows = {r["hour_at"]: r for r in query(wh, "select * from fct_rollout_timing_hourly")}
    assert sorted(rows) == HOURS
    for i, hour in enumerate(HOURS):
        durations = np.array([r["duration_s"] for r in rollouts_of(truth, hour=i)])
        p50, p95, p99 = np.percentile(durations, [50, 95, 99])
        row = rows[hour]
        assert row["n_rollouts"] == len(durations)
        assert row["p50_s"] == pytest.approx(p50)
        assert row["p95_s"] == pytest.approx(p95)
        assert row["p99_s"] == pytest.approx(p99)
        assert row["max_s"] == pytest.approx(durations.max())


def test_an_event_delivered_twice_counts_once(built):
    wh, truth = built
    [row] = query(wh, "select count(*) as n from stg_axiom__events where event_id = 'events.ndjson:1'")
    assert row["n"] == 1
    [total] = query(wh, "select sum(n_rollouts) as n from fct_rollout_timing_hourly")
    assert total["n"] == len(truth["rollouts"])


def test_run_percentiles_match_numpy_and_carry_the_wandb_run_name(built):
    wh, truth = built
    rows = {r["run_id"]: r for r in query(wh, "select * from fct_rollout_timing_by_run")}
    assert set(rows) == set(RUNS)
    for run_id, (name, _) in RUNS.items():
        durations = np.array([r["duration_s"] for r in rollouts_of(truth, run_id=run_id)])
        assert rows[run_id]["run_name"] == name
        assert rows[run_id]["p95_s"] == pytest.approx(np.percentile(durations, 95))
        assert rows[run_id]["p50_s"] == pytest.approx(np.percentile(durations, 50))


def test_error_rate_is_failed_rollouts_over_rollouts_per_run_and_hour(built):
    wh, truth = built
    by_run = {r["run_id"]: r for r in query(wh, "select * from fct_rollout_errors_by_run")}
    for run_id in RUNS:
        failed = np.array([r["failed"] for r in rollouts_of(truth, run_id=run_id)])
        assert by_run[run_id]["n_failed"] == failed.sum()
        assert by_run[run_id]["error_rate"] == pytest.approx(failed.mean())
    assert by_run["run-flaky"]["error_rate"] == pytest.approx(0.1)
    assert by_run["run-flaky"]["n_error_events"] == 5
    assert by_run["run-good"]["n_error_events"] == 0

    hourly = {(r["hour_at"], r["run_id"]): r for r in query(wh, "select * from fct_rollout_errors_hourly")}
    assert hourly[(HOURS[2], "run-flaky")]["error_rate"] == pytest.approx(0.1)
    assert hourly[(HOURS[0], "run-good")]["error_rate"] == 0


def test_failed_rollouts_logged_at_error_level_are_not_error_events(built):
    wh, _ = built
    rows = query(
        wh, "select component, error_type, n_events, n_runs, run_ids, last_message from fct_error_events_hourly"
    )
    assert rows == [
        {
            "component": "reward",
            "error_type": "Timeout",
            "n_events": 5,
            "n_runs": 1,
            "run_ids": ["run-flaky"],
            "last_message": "reward timeout 4",
        }
    ]


def test_extraction_rate_pools_orders_per_hour_and_per_run(built):
    wh, truth = built
    hourly = {r["hour_at"]: r for r in query(wh, "select * from fct_extraction_hourly")}
    by_run = {r["run_id"]: r for r in query(wh, "select * from fct_extraction_by_run")}
    for run_id, (name, hour) in RUNS.items():
        mine = [e for e in truth["extractions"] if e["run_id"] == run_id]
        expected = np.sum([e["expected"] for e in mine])
        extracted = np.sum([e["extracted"] for e in mine])
        assert by_run[run_id]["orders_expected"] == expected
        assert by_run[run_id]["extraction_rate"] == pytest.approx(extracted / expected)
        assert by_run[run_id]["run_name"] == name
        # one run per hour in the generated data
        assert hourly[HOURS[hour]]["extraction_rate"] == pytest.approx(extracted / expected)


def test_inference_latency_percentiles_match_numpy(built):
    wh, truth = built
    latencies = truth["latencies"]
    [row] = query(wh, "select * from fct_inference_hourly")
    assert (row["engine"], row["n_requests"]) == ("vllm", 20)
    assert row["latency_p95_s"] == pytest.approx(np.percentile(latencies, 95))


def test_a_silent_component_is_stale_or_down_and_a_degraded_one_says_so(built):
    wh, truth = built
    health = {(r["component"], r["host"]): r for r in query(wh, "select * from fct_component_health")}
    assert health[("trainer", "gpu-1")]["status"] == "ok"
    reward = health[("reward", "cpu-1")]
    silent = (truth["end"] - truth["reward_last_seen"]).total_seconds()
    v = dbt_vars()
    assert silent > float(v["heartbeat_stale_after_s"])
    assert reward["status"] == ("down" if silent > float(v["heartbeat_down_after_s"]) else "stale")
    assert reward["is_listed"] is True
    assert reward["as_of"] == truth["end"]
    assert reward["silent_s"] == pytest.approx((truth["end"] - truth["reward_last_seen"]).total_seconds())
    assert health[("vllm", "gpu-2")]["status"] == "degraded"


def test_rejected_lines_are_visible(built):
    wh, _ = built
    assert query(wh, "select line, reason from stg_axiom__rejects") == [{"line": 9999, "reason": "invalid JSON"}]


def outcomes(wh) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = query(wh, "select * from fct_check_outcomes")
    return {(r["check_name"], r["subject_type"], r["subject"]): r for r in rows}


def test_checks_fail_exactly_where_the_generated_data_breaks_a_target(built):
    wh, truth = built
    t = thresholds()
    got = outcomes(wh)
    hour_text = [h.strftime("%Y-%m-%dT%H:%M:%SZ") for h in HOURS]

    expected_failures = {
        ("rollout_p95_s", "run", "run-slow"),
        ("rollout_p95_s", "hour", hour_text[1]),
        ("error_rate", "run", "run-flaky"),
        ("error_rate", "hour", hour_text[2]),
        ("extraction_rate", "run", "run-flaky"),
        ("extraction_rate", "hour", hour_text[2]),
        ("kl_spike_steps", "run", "run-flaky"),
        ("heartbeat_fresh", "component", "reward@cpu-1"),
    }
    error_and_heartbeat = {k: r for k, r in got.items() if r["severity"] == "error" or k[0] == "heartbeat_fresh"}
    failures = {k for k, r in error_and_heartbeat.items() if r["outcome"] == "fail"}
    assert failures == expected_failures
    # rates are judged on their Wilson 95 % interval (scipy's here): pass inside the target, fail outside,
    # inconclusive when it straddles the target or rests on too few observations
    v = dbt_vars()
    for (name, _, _), r in got.items():
        if name not in ("error_rate", "extraction_rate"):
            continue
        n = int(r["n_observations"])
        k = round(r["value"] * n)
        lo, hi = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert (r["ci95_lo"], r["ci95_hi"]) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))
        below = name == "error_rate"
        if n < float(v["min_rollouts_for_rate" if below else "min_orders_for_rate"]):
            want = "inconclusive"
        elif below:
            want = "pass" if hi < r["threshold"] else "fail" if lo >= r["threshold"] else "inconclusive"
        else:
            want = "pass" if lo > r["threshold"] else "fail" if hi <= r["threshold"] else "inconclusive"
        assert r["outcome"] == want, r
        assert r["passed"] is {"pass": True, "fail": False}.get(want)

    # independently: the numbers behind the verdicts
    slow = np.array([r["duration_s"] for r in rollouts_of(truth, run_id="run-slow")])
    assert np.percentile(slow, 95) >= t.rollout_p95_max_s
    assert got[("rollout_p95_s", "run", "run-slow")]["value"] == pytest.approx(np.percentile(slow, 95))
    assert got[("rollout_p95_s", "run", "run-slow")]["threshold"] == t.rollout_p95_max_s
    assert got[("rollout_p95_s", "run", "run-slow")]["subject_label"] == "grpo-slow-2"
    assert got[("kl_spike_steps", "run", "run-flaky")]["value"] == np.sum(truth["kl"]["run-flaky"] > t.kl_spike_min)
    for run_id in RUNS:
        assert got[("kl_p95", "run", run_id)]["value"] == pytest.approx(np.percentile(truth["kl"][run_id], 95))
        assert got[("kl_p95", "run", run_id)]["passed"]


def test_every_check_reads_its_threshold_from_the_project_vars(built):
    wh, _ = built
    v = dbt_vars()
    var_of = {
        "rollout_p95_s": "rollout_p95_max_s",
        "error_rate": "error_rate_max",
        "extraction_rate": "extraction_rate_min",
        "grad_norm_max": "grad_norm_max",
        "kl_p95": "kl_stable_max",
        "kl_spike_steps": "kl_spike_steps_allowed",
        "heartbeat_fresh": "heartbeat_stale_after_s",
        "non_finite_training_values": "non_finite_values_allowed",
    }
    rows = query(wh, "select distinct check_name, threshold from fct_check_outcomes where threshold is not null")
    assert rows
    for row in rows:
        assert row["threshold"] == pytest.approx(float(v[var_of[row["check_name"]]]))


def test_run_retrospective_has_one_line_per_run_with_pipeline_and_training_metrics(built):
    wh, truth = built
    rows = {r["run_id"]: r for r in query(wh, "select * from fct_run_retrospective")}
    assert set(rows) == set(RUNS)
    flaky = rows["run-flaky"]
    assert flaky["run_name"] == "grpo-flaky-3"
    assert flaky["n_rollouts"] == 120
    assert flaky["error_rate"] == pytest.approx(0.1)
    assert flaky["kl_spike_steps"] == 3
    durations = np.array([r["duration_s"] for r in rollouts_of(truth, run_id="run-flaky")])
    assert flaky["rollout_p95_s"] == pytest.approx(np.percentile(durations, 95))


def test_check_history_keeps_every_build_once(tmp_path):
    wh = Warehouse(tmp_path / "wh").ensure()
    log = EventLog()
    durations = [10.0, 20.0, 30.0, 500.0] * 6  # 24 rollouts: enough for a p95 verdict (min_rollouts_for_p95)
    for i, d in enumerate(durations):
        log.add(T0 + dt.timedelta(minutes=i), event="rollout", run_id="r1", duration_s=d, status="ok")
    write_raw(wh, {"axiom_events": log.rows})

    dbt_build(wh, "--select", "+fct_check_history")
    dbt_build(wh, "--select", "fct_check_outcomes", "fct_check_history")
    dbt_build(wh, "--select", "fct_check_history")  # no new evaluation: nothing to append

    rows = query(
        wh,
        """
        select built_at, passed, outcome, value from fct_check_history
        where check_name = 'rollout_p95_s' and subject_type = 'run' and subject = 'r1'
        order by built_at
    """,
    )
    assert len(rows) == 2
    assert rows[0]["built_at"] < rows[1]["built_at"]
    assert [(r["passed"], r["outcome"]) for r in rows] == [(False, "fail"), (False, "fail")]
    assert rows[0]["value"] == pytest.approx(np.percentile(durations, 95))


def test_remapped_event_fields_are_read_from_the_new_names(tmp_path):
    mapping = {**event_fields(), "duration_s": "elapsed", "run_id": "run", "status": "outcome"}
    wh = Warehouse(tmp_path / "wh").ensure()
    log = EventLog(fields=mapping)
    durations = [3.0, 5.5, 8.0, 13.25, 21.0]
    for i, d in enumerate(durations):
        log.add(
            T0 + dt.timedelta(minutes=i), event="rollout", run_id="r1", duration_s=d, status="error" if i == 0 else "ok"
        )
    write_raw(wh, {"axiom_events": log.rows})
    assert '"elapsed"' in log.rows[0]["record"] and '"duration_s"' not in log.rows[0]["record"]

    dbt_build(wh, "--select", "+fct_rollout_timing_by_run", "--vars", json.dumps({"event_fields": mapping}))

    [row] = query(wh, "select * from fct_rollout_timing_by_run")
    assert row["run_id"] == "r1"
    assert row["n_rollouts"] == 5
    assert row["n_failed"] == 1
    assert row["p95_s"] == pytest.approx(np.percentile(durations, 95))
