"""`grpo check` on a hand-made snapshot: every key of its documented answer, the order of the
subjects, NaN/±Inf as null, the playbook's action (naming the run where it needs one) and the
tally behind the exit code, each expected value written out here rather than computed by the code."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner

from pipelines.cli.app import main

NAN, INF = math.nan, math.inf
COLUMNS = (
    "check_name varchar, subject_type varchar, subject varchar, subject_label varchar, value double, "
    "threshold double, comparison varchar, passed boolean, outcome varchar, severity varchar, "
    "observed_label varchar, expected_label varchar, n_observations bigint, ci95_lo double, ci95_hi double, "
    "detail varchar, evaluated_at timestamptz"
)
LABEL = 'lr-"sweep"-é\\1'  # quotes, a backslash and a non-ASCII letter in a run name
# check_name, subject_type, subject, subject_label, value, threshold, comparison, passed, outcome, severity,
# observed_label, expected_label, n_observations, ci95_lo, ci95_hi
OUTCOMES = [
    (
        "extraction_rate",
        "run",
        "r-5",
        "lr-sweep-5",
        0.99,
        0.9,
        ">=",
        True,
        "pass",
        "error",
        None,
        None,
        500,
        0.98,
        0.995,
    ),
    ("error_rate", "hour", "2026-01-01T00:00:00Z", None, 0.02, 0.01, "<", None, "inconclusive", "error")
    + (None, None, 40, NAN, 0.05),
    ("mystery_check", "run", "r-4", None, 1.0, 2.0, "<", False, "fail", None, None, None, None, None, None),
    ("heartbeat_fresh", "component", "trainer", "trainer", 7200.0, -INF, "<", False, "fail", "warn")
    + (None, None, None, None, None),
    ("gap_growing", "run", "r-3", "lr-sweep-3", 1.5, 0.0, ">", False, "fail", "warn", "shrinking", "growing")
    + (12, -1.0, 4.0),
    ("kl_spike_steps", "run", "r-2", "", INF, 3.0, "<=", False, "fail", "error", None, None, None, None, None),
    ("grad_norm_max", "run", "r-1", LABEL, NAN, 50.0, "<", False, "fail", "error", None, None, None, None, None),
]


def _playbook() -> dict[str, dict[str, str]]:
    text = (Path(__file__).resolve().parent.parent / "dbt_project.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["vars"]["target_actions"]


KEYS = "name metric subject_type subject subject_id passed outcome n ci95 severity value threshold comparison"
KEYS = (*KEYS.split(), "observed", "expected", "action")


def _expected_checks() -> list[dict]:
    play = _playbook()
    rows = [  # failing first (error, warn, then none; by metric, subject), then inconclusive, then passing
        ("grad_norm_below_target", "grad_norm_max", "run", LABEL, "r-1", False, "fail", None, None, "error")
        + (None, 50.0, "<", None, None, {"action": play["grad_norm"]["action"], "next": "grpo metrics -r " + LABEL}),
        ("kl_no_spikes", "kl_spike_steps", "run", "r-2", "r-2", False, "fail", None, None, "error", None, 3.0)
        + ("<=", None, None, {"action": play["kl"]["action"], "next": "grpo metrics -r r-2"}),
        ("checkpoint_gap_growing", "gap_growing", "run", "lr-sweep-3", "r-3", False, "fail", 12, [-1.0, 4.0])
        + ("warn", 1.5, 0.0, ">", "shrinking", "growing", None),
        ("heartbeats_fresh", "heartbeat_fresh", "component", "trainer", "trainer", False, "fail", None, None)
        + ("warn", 7200.0, None, "<", None, None, dict(play["heartbeat"])),
        ("mystery_check", "mystery_check", "run", "r-4", "r-4", False, "fail", None, None, None, 1.0, 2.0, "<")
        + (None, None, None),
        ("error_rate_per_hour", "error_rate", "hour", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", None)
        + ("inconclusive", 40, [None, 0.05], "error", 0.02, 0.01, "<", None, None, None),
        ("extraction_rate_per_run", "extraction_rate", "run", "lr-sweep-5", "r-5", True, "pass", 500, [0.98, 0.995])
        + ("error", 0.99, 0.9, ">=", None, None, None),
    ]
    return [dict(zip(KEYS, r, strict=True)) for r in rows]


@pytest.fixture
def snapshot(tmp_path) -> Path:
    con = duckdb.connect(str(tmp_path / "grpo.duckdb"))
    try:
        con.execute(f"create table fct_check_outcomes ({COLUMNS})")
        con.executemany(
            "insert into fct_check_outcomes values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, null, now())",
            OUTCOMES,
        )
        con.execute(
            "create table _snapshot as select ?::timestamptz as published_at, null::timestamptz as latest_event_at, "
            "7::bigint as latest_step, ?::timestamptz as latest_run_ingest",
            [dt.datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)],
        )
    finally:
        con.close()
    return tmp_path


def _check(wh: Path, *args: str):
    return CliRunner().invoke(main, ["--warehouse", str(wh), "check", *args])


def test_check_json_answers_every_key_in_order_with_nan_and_inf_as_null(snapshot):
    result = _check(snapshot, "--json")
    assert result.exit_code == 1, result.output  # two error-severity subjects fail
    ans = json.loads(result.stdout)
    assert list(ans) == ["checks", "freshness"]
    expected = _expected_checks()
    assert ans["checks"] == expected
    assert [list(c) for c in ans["checks"]] == [list(c) for c in expected]
    assert ans["freshness"] == {
        "latest_event_at": None,
        "latest_step": 7,
        "latest_run_ingest": "2026-12-01T09:30:00Z",
        "published_at": "2026-12-01T10:00:00.250000Z",
    }
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout


def test_check_text_counts_the_tally_and_names_each_missed_targets_action(snapshot):
    result = _check(snapshot)
    assert result.exit_code == 1
    text = " ".join(result.stdout.split())
    assert "1 passed, 2 failed (error), 3 failed (warning), 1 inconclusive" in text
    assert "What to do grad_norm_below_target: " + _playbook()["grad_norm"]["action"] in text
    assert "lr-sweep-5" not in text  # passing subjects only with --all
    assert "lr-sweep-5" in " ".join(_check(snapshot, "--all").stdout.split())


def _delete_outcomes(snapshot, where: str = "true") -> None:
    """Delete outcomes from the hand-made snapshot (`where` is this file's own SQL, never user input)."""
    con = duckdb.connect(str(snapshot / "grpo.duckdb"))
    try:
        con.execute("delete from fct_check_outcomes where " + where)
    finally:
        con.close()


def test_check_exits_0_when_only_warnings_fail(snapshot):
    _delete_outcomes(snapshot, "outcome = 'fail' and severity = 'error'")
    result = _check(snapshot, "--json")
    assert result.exit_code == 0
    assert [c["subject_id"] for c in json.loads(result.stdout)["checks"]] == [
        "r-3",
        "trainer",
        "r-4",
        "2026-01-01T00:00:00Z",
        "r-5",
    ]


def test_an_empty_outcome_table_answers_an_empty_list(snapshot):
    _delete_outcomes(snapshot)
    result = _check(snapshot, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["checks"] == []
    assert "0 passed, 0 failed (error), 0 failed (warning), 0 inconclusive" in " ".join(_check(snapshot).stdout.split())
