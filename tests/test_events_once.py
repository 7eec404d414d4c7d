"""Events counted once (issue #14 item 7), through the real `grpo ingest --events` and the answers.

One warehouse is fed, in three syncs, the exports a user really has:

1. ``export-1.ndjson``, which holds a few byte-identical repeated lines;
2. the same file again under another name (``renamed/copy-of-export-1.ndjson``);
3. ``export-2.ndjson``, which repeats the last lines of the first export (some
   of them serialised differently: keys reordered, other spacing) and brings
   the rest.

The events are generated here first, each once (`LOGICAL`); the files are
written from them. Every expected number is computed from `LOGICAL` with
json and numpy (``numpy.percentile``'s default linear interpolation is what
the answers promise), never read back from the warehouse. All times are fixed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.sources.event_identity import EventIdentity
from pipelines.sources.ndjson import NdjsonEventSource

GRPO = str(Path(sys.executable).with_name("grpo"))
T0 = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
T_END = T0 + dt.timedelta(hours=4)
WINDOW = ["--since", "2024-05-01T10:00:00Z", "--until", "2024-05-01T14:00:00Z"]
# The documented default of var rollout_ok_statuses, written down here on its own.
OK_STATUSES = {"ok", "success", "succeeded", "completed"}
OVERLAP = 60  # lines of export 1 that export 2 repeats


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# --- the events, each once ----------------------------------------------------------


def logical_events() -> list[dict[str, Any]]:
    """Every event once, in time order; `_meta` (dropped when written) says how the files treat it."""
    rng = np.random.default_rng(14)
    out: list[dict[str, Any]] = []

    def add(t: dt.datetime, repeat_in_file: bool = False, **fields: Any) -> None:
        out.append({"_time": iso(t), **fields, "_meta": {"at": t, "repeat_in_file": repeat_in_file}})

    statuses = ["ok", "success", "Succeeded", "COMPLETED", "error", "timeout", "ok", "ok", "SUCCESS", "failed"]
    bad_durations = {
        ("run-a", 5): math.nan,
        ("run-a", 11): -4.2,
        ("run-a", 17): "NaN",
        ("run-b", 23): -0.5,
        ("run-b", 29): math.inf,
    }
    for r, run_id in enumerate(["run-a", "run-b"]):
        for i in range(60):
            status = statuses[(i + r) % len(statuses)]
            duration: Any = bad_durations.get((run_id, i), round(float(rng.gamma(4.0, 8.0)), 3))
            extra = {"level": "error"} if status.lower() in ("error", "failed", "timeout") else {}
            add(
                at(180 * i + 7 * r),
                event="rollout",
                run_id=run_id,
                rollout_id=f"{run_id}-r{i:04d}",
                duration_s=duration,
                status=status,
                engine="vllm",
                worker=f"w{i % 3}",
                **extra,
            )
    # Rollout ids that are counters per run: run-c's rollout 3 is not run-d's rollout 3.
    for run_id in ("run-c", "run-d"):
        for i in range(15):
            add(
                at(600 * i + 45),
                event="rollout",
                run_id=run_id,
                rollout_id=i,
                duration_s=round(float(rng.uniform(5, 50)), 2),
                status="ok" if i % 4 else "error",
            )
    # Rollouts naming no run: keyed by their content.
    for i in range(5):
        add(at(2000 * i + 13), event="rollout", rollout_id=f"anon-{i}", duration_s=float(10 + i), status="success")

    # Errors carry no id. One is logged twice, byte for byte (one event); two others share
    # an instant with it but say something else (three events at that instant).
    burst = at(3 * 3600 + 600)
    add(
        burst,
        repeat_in_file=True,
        level="error",
        run_id="run-a",
        component="reward",
        error_type="Timeout",
        message="reward model timed out",
    )
    add(
        burst,
        level="error",
        run_id="run-a",
        component="reward",
        error_type="Timeout",
        message="reward model timed out (retry 1)",
    )
    add(burst, level="error", run_id="run-a", component="trainer", error_type="OOM", message="CUDA out of memory")
    for i in range(6):
        add(
            at(1500 * i + 200),
            level="error",
            run_id="run-b",
            component="vllm",
            error_type="EngineDead",
            message=f"engine restart {i}",
        )

    # Heartbeats carry no id either: one line repeated byte for byte is one heartbeat; two of
    # one component at one instant that report different numbers are two.
    for minute in range(0, 240, 2):
        add(
            at(60 * minute),
            repeat_in_file=minute in (20, 200),
            event="heartbeat",
            component="trainer",
            host="gpu-1",
            status="ok",
            gpu_util=round(0.5 + 0.4 * math.sin(minute), 3),
            gpu_mem_gb=70,
        )
    same_instant = at(3 * 3600 + 1200)
    add(same_instant, event="heartbeat", component="vllm", host="gpu-2", status="ok", gpu_util=0.42)
    add(same_instant, event="heartbeat", component="vllm", host="gpu-2", status="ok", gpu_util=0.43)

    # Inference with durations that cannot be durations.
    for i in range(12):
        latency: Any = round(float(rng.uniform(0.1, 2.0)), 4)
        queue: Any = round(float(rng.uniform(0.0, 0.5)), 4)
        if i == 3:
            latency = -0.3
        if i == 7:
            queue = math.nan
        add(
            at(1200 * i + 90),
            event="inference",
            run_id="run-a",
            engine="vllm",
            latency_s=latency,
            queue_s=queue,
            tokens_per_s=1000.0,
            batch_size=8,
        )

    # Events with Axiom's own row id: the id says which event it is, whatever the text.
    for i in range(8):
        add(
            at(1700 * i + 30),
            event="extraction",
            run_id="run-b",
            orders_expected=100,
            orders_extracted=95 + i % 5,
            _rowId=f"0a1b2c-{i:04d}",
        )

    out.sort(key=lambda e: e["_meta"]["at"])
    return out


LOGICAL = logical_events()


def line(event: dict[str, Any], *, reordered: bool = False) -> str:
    body = {k: v for k, v in event.items() if k != "_meta"}
    if reordered:  # the same event as another tool writes it
        return json.dumps(body, sort_keys=True, separators=(",", ":"))
    return json.dumps(body)  # NaN and Infinity as Python writes them


def export_lines(events: list[dict[str, Any]], *, reorder_identified: bool = False) -> list[str]:
    out = []
    for e in events:
        has_id = "_rowId" in e or ("rollout_id" in e and "run_id" in e and e.get("event") == "rollout")
        out.append(line(e, reordered=reorder_identified and has_id))
        if e["_meta"]["repeat_in_file"]:
            out.append(line(e))  # the same bytes again
    return out


SPLIT = int(len(LOGICAL) * 0.7)
EXPORT_1 = LOGICAL[:SPLIT]
EXPORT_2_OVERLAP = LOGICAL[SPLIT - OVERLAP : SPLIT]
EXPORT_2 = LOGICAL[SPLIT - OVERLAP :]


def write_exports(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "export-1.ndjson"
    first.write_text("\n".join(export_lines(EXPORT_1)) + "\n", encoding="utf-8")
    copy = folder / "renamed" / "copy-of-export-1.ndjson"
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    second = folder / "export-2.ndjson"
    # the overlap: identified events re-serialised, everything else byte for byte
    overlap = export_lines(EXPORT_2_OVERLAP, reorder_identified=True)
    rest = export_lines(LOGICAL[SPLIT:])
    second.write_text("\n".join(overlap + rest) + "\n", encoding="utf-8")
    return {"first": first, "copy": copy, "second": second}


# --- what the answers must say, from the events alone --------------------------------


def duration_problem(value: Any) -> str | None:
    if isinstance(value, str):
        value = float(value)  # "NaN" in a string is still NaN
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinite"
    if value < 0:
        return "negative"
    return None


def expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    rollouts = [e for e in events if e.get("event") == "rollout"]
    failed = [e for e in rollouts if "status" in e and e["status"].strip().lower() not in OK_STATUSES]
    good = np.array([float(e["duration_s"]) for e in rollouts if duration_problem(e["duration_s"]) is None])
    reasons: Counter[str] = Counter()
    for e in events:
        problems = [
            f"{f} is {duration_problem(e[f])}"
            for f in ("duration_s", "latency_s", "queue_s")
            if f in e and duration_problem(e[f])
        ]
        if problems:
            reasons["; ".join(problems)] += 1
    kinds = Counter(
        "rollout" if e.get("event") == "rollout" else "error" if e.get("level") == "error" else e["event"]
        for e in events
    )
    by_run = Counter(e.get("run_id") for e in rollouts)
    failed_by_run = Counter(e.get("run_id") for e in failed)
    return {
        "rollouts": len(rollouts),
        "failed_rollouts": len(failed),
        "error_events": kinds["error"],
        "kinds": dict(kinds),
        "by_run": {r: (n, failed_by_run[r]) for r, n in by_run.items() if r is not None},
        "timed": len(good),
        "quantiles": [float(np.percentile(good, q)) for q in (50, 95, 99)] + [float(good.max())],
        "reasons": dict(reasons),
        "heartbeats": Counter((e["component"], e["_time"]) for e in events if e.get("event") == "heartbeat"),
    }


# --- the warehouse, fed through the CLI ------------------------------------------------


def grpo(wh: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRPO_WAREHOUSE": str(wh), "COLUMNS": "200"}
    proc = subprocess.run([GRPO, *args], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"grpo {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def grpo_json(wh: Path, *args: str) -> Any:
    return json.loads(grpo(wh, *args, "--json").stdout)


def sql(wh: Path, query: str) -> list[dict[str, Any]]:
    return grpo_json(wh, "sql", query)


def answers(wh: Path) -> dict[str, Any]:
    """What the warehouse says after a sync, through the commands a user runs."""
    errors = grpo_json(wh, "errors", *WINDOW)
    timing = grpo_json(wh, "rollout-timing", *WINDOW)
    return {
        "errors": errors,
        "timing": timing,
        "kinds": {
            r["event_kind"]: r["n"]
            for r in sql(wh, "select event_kind, count(*) as n from stg_axiom__events group by 1")
        },
        "mart": sql(
            wh,
            "select sum(n_rollouts) as rollouts, sum(n_failed) as failed, sum(n_timed) as timed "
            "from fct_rollout_timing_hourly",
        )[0],
        "mart_by_run": {
            r["run_id"]: (r["n_rollouts"], r["n_failed"])
            for r in sql(wh, "select run_id, n_rollouts, n_failed from fct_rollout_errors_by_run")
        },
        "heartbeats": {
            (r["component"], r["t"]): r["n"]
            for r in sql(
                wh,
                "select component, strftime(event_at at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') as t, count(*) as n "
                "from stg_axiom__events where event_kind = 'heartbeat' group by 1, 2",
            )
        },
        "ids": sql(
            wh, "select event_id, event_kind, run_id, rollout_id, batch_id, source, line from stg_axiom__events"
        ),
        "raw_rows": sql(wh, "select count(*) as n from raw_axiom_events")[0]["n"],
    }


@pytest.fixture(scope="module")
def synced(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("events_once")
    wh = root / "wh"
    files = write_exports(root / "exports")
    out: dict[str, Any] = {"wh": wh, "files": files}
    for stage in ("first", "copy", "second"):
        out[f"ingest_{stage}"] = grpo_json(wh, "ingest", "--events", str(files[stage]))
        assert out[f"ingest_{stage}"]["success"], out[f"ingest_{stage}"]
        out[stage] = answers(wh)
    return out


def check_counts(got: dict[str, Any], want: dict[str, Any]) -> None:
    e = got["errors"]
    assert (e["rollouts"], e["failed_rollouts"], e["error_events"]) == (
        want["rollouts"],
        want["failed_rollouts"],
        want["error_events"],
    )
    assert e["error_rate"] == pytest.approx(want["failed_rollouts"] / want["rollouts"])
    assert {r["run_id"]: (r["rollouts"], r["failed_rollouts"]) for r in e["by_run"] if r["run_id"]} == want["by_run"]
    assert got["kinds"] == want["kinds"]
    assert got["mart"] == {"rollouts": want["rollouts"], "failed": want["failed_rollouts"], "timed": want["timed"]}
    assert {r: v for r, v in got["mart_by_run"].items() if r} == want["by_run"]
    t = got["timing"]
    assert t["count"] == want["timed"]
    assert [t["p50_s"], t["p95_s"], t["p99_s"], t["max_s"]] == pytest.approx(want["quantiles"])


# --- the tests ------------------------------------------------------------------------------


def test_the_same_file_ingested_under_a_second_name_adds_no_event(synced):
    want = expected(EXPORT_1)
    check_counts(synced["first"], want)
    check_counts(synced["copy"], want)
    first = {r["event_id"]: r for r in synced["first"]["ids"]}
    after_copy = {r["event_id"]: r for r in synced["copy"]["ids"]}
    assert after_copy == first  # not one row added or replaced: the first copy stays
    assert len(first) == len(EXPORT_1)
    assert {r["source"] for r in first.values()} == {str(synced["files"]["first"].resolve())}
    # The raw layer keeps what was delivered: every line of both files.
    lines = len(synced["files"]["first"].read_text().splitlines())
    assert synced["ingest_copy"]["events"] == synced["copy"]["raw_rows"] == 2 * lines


def test_two_overlapping_exports_count_each_event_once(synced):
    assert len(EXPORT_1) + len(EXPORT_2) - OVERLAP == len(LOGICAL)
    check_counts(synced["second"], expected(LOGICAL))
    ids = synced["second"]["ids"]
    assert len(ids) == len({r["event_id"] for r in ids}) == len(LOGICAL)
    # The overlap kept its first copies; export 2 added only the events export 1 lacked.
    second = str(synced["files"]["second"].resolve())
    assert sum(1 for r in ids if r["source"] == second) == len(LOGICAL) - len(EXPORT_1)


def test_events_without_ids_count_once_when_byte_identical_and_each_when_distinct_in_one_instant(synced):
    want = expected(LOGICAL)
    got = synced["second"]
    assert got["heartbeats"] == dict(want["heartbeats"])
    # the repeated heartbeats are one each; the two vllm heartbeats of one instant are two
    assert got["heartbeats"][("trainer", iso(at(60 * 20)))] == 1
    assert got["heartbeats"][("vllm", iso(at(3 * 3600 + 1200)))] == 2
    by_type = {(r["component"], r["error_type"]): r["events"] for r in got["errors"]["by_type"]}
    assert by_type[("reward", "Timeout")] == 2  # the line logged twice, and its retry
    assert by_type[("trainer", "OOM")] == 1
    assert got["errors"]["error_events"] == want["error_events"] == 9


def test_success_and_the_other_ok_statuses_in_any_case_are_not_failures(synced):
    got = synced["second"]["errors"]
    rollouts = [e for e in LOGICAL if e.get("event") == "rollout"]
    statuses = Counter(e["status"] for e in rollouts)
    assert statuses["success"] and statuses["SUCCESS"] and statuses["Succeeded"] and statuses["COMPLETED"]
    failures = sum(n for s, n in statuses.items() if s.lower() not in OK_STATUSES)
    assert got["failed_rollouts"] == failures
    assert got["failed_rollouts"] < sum(n for s, n in statuses.items() if s != "ok")  # what `<> 'ok'` would say


def test_nan_infinite_and_negative_durations_are_excluded_from_quantiles_with_their_reason(synced):
    want = expected(LOGICAL)
    got = synced["second"]
    assert want["reasons"] == {
        "duration_s is NaN": 2,
        "duration_s is negative": 2,
        "duration_s is infinite": 1,
        "latency_s is negative": 1,
        "queue_s is NaN": 1,
    }
    reasons = sql(
        synced["wh"],
        "select rejected_values, count(*) as n from stg_axiom__events where rejected_values is not null group by 1",
    )
    assert {r["rejected_values"]: r["n"] for r in reasons} == want["reasons"]
    t = got["timing"]
    assert all(v is not None and math.isfinite(v) and v >= 0 for v in (t["p50_s"], t["p95_s"], t["p99_s"], t["max_s"]))
    assert [t["p50_s"], t["p95_s"], t["p99_s"], t["max_s"]] == pytest.approx(want["quantiles"])
    # the rollouts themselves still count (in the error rate)
    assert got["errors"]["rollouts"] == want["rollouts"] == want["timed"] + 5


def test_rollout_ids_that_repeat_across_runs_are_different_rollouts(synced):
    by_run = synced["second"]["mart_by_run"]
    assert by_run["run-c"][0] == by_run["run-d"][0] == 15


def test_the_reader_and_staging_agree_on_which_events_are_rollouts(synced):
    for r in synced["second"]["ids"]:
        identified = r["event_kind"] == "rollout" and r["run_id"] is not None and r["rollout_id"] is not None
        assert r["event_id"].startswith("rollout:") == identified, r
        if identified:
            assert json.loads(r["event_id"][len("rollout:") :]) == [r["run_id"], r["rollout_id"]]


def test_a_full_refresh_keeps_the_same_copies_as_the_incremental_syncs(synced):
    wh = synced["wh"]
    grpo_json(wh, "ingest", "--full-refresh")
    again = sql(wh, "select event_id, event_kind, run_id, rollout_id, batch_id, source, line from stg_axiom__events")
    key = lambda r: r["event_id"]  # noqa: E731
    assert sorted(again, key=key) == sorted(synced["second"]["ids"], key=key)


# --- the readers ---------------------------------------------------------------------------------


def read_keys(path: Path, identity: EventIdentity | None = None) -> list[tuple[int, str]]:
    kwargs = {"identity": identity} if identity is not None else {}
    chunks = NdjsonEventSource([path], time_field="_time", **kwargs).chunks({})
    return [(r["line"], r["event_key"]) for c in chunks for r in c.events.select(["line", "event_key"]).to_pylist()]


def test_a_line_has_one_key_in_any_file_and_distinct_lines_have_distinct_keys(tmp_path):
    files = write_exports(tmp_path)
    first = read_keys(files["first"])
    copy = read_keys(files["copy"])
    assert first == copy
    texts = files["first"].read_text().splitlines()
    keys = [k for _, k in first]
    # as many keys as distinct events: repeated lines share one
    assert len(set(keys)) == len(EXPORT_1) < len(texts)
    by_text: dict[str, set[str]] = {}
    for n, k in first:
        by_text.setdefault(texts[n - 1], set()).add(k)
    assert all(len(v) == 1 for v in by_text.values())
    for n, k in first:
        e = json.loads(texts[n - 1])
        if "_rowId" in e:
            assert k == e["_rowId"]
        elif e.get("event") == "rollout" and "run_id" in e:
            assert k == "rollout:" + json.dumps([e["run_id"], str(e["rollout_id"])], separators=(",", ":"))
        else:
            assert k == hashlib.md5(texts[n - 1].encode()).hexdigest()


def test_identity_fields_can_be_switched_off_and_then_the_content_decides(tmp_path):
    path = tmp_path / "retries.ndjson"
    attempt = {"_time": iso(T0), "event": "rollout", "run_id": "run-a", "rollout_id": "r1", "status": "error"}
    retry = {**attempt, "_time": iso(at(30)), "status": "ok"}
    path.write_text(json.dumps(attempt) + "\n" + json.dumps(retry) + "\n", encoding="utf-8")
    by_default = read_keys(path)
    assert by_default[0][1] == by_default[1][1] == 'rollout:["run-a","r1"]'
    off = read_keys(path, EventIdentity(fields={}, by_kind={}))
    assert off[0][1] != off[1][1]
    other = read_keys(
        path, EventIdentity(fields={"rollout_id": "attempt"}, by_kind={"rollout": ("run_id", "rollout_id")})
    )
    assert other[0][1] != other[1][1]  # `attempt` is missing: keyed by content


def test_identity_of_other_kinds_follows_the_kind_rule_of_staging(tmp_path):
    """`level: error` makes an error of anything but a rollout, as stg_axiom__events classifies."""
    path = tmp_path / "kinds.ndjson"
    rows = [
        {"level": "error", "error_id": "e1", "message": "a"},  # error
        {"level": "ERROR", "error_id": "e1", "message": "b"},  # error, the same id
        {"event": "inference", "level": "error", "error_id": "e2"},  # error (level wins)
        {"event": "rollout", "level": "error", "error_id": "e3", "run_id": "x"},  # a rollout: no error id
        {"event": "error", "error_id": "e4"},  # error (by its name)
        {"event": "heartbeat", "component": "c", "host": "h", "seq": 7},  # heartbeat by its fields
        {"event": "heartbeat", "component": "c", "host": "h", "seq": 7, "x": 1},  # the same heartbeat
        {"event": "heartbeat", "component": "c", "host": "h"},  # no seq: content
    ]
    path.write_text("".join(json.dumps({"_time": iso(T0), **r}) + "\n" for r in rows), encoding="utf-8")
    identity = EventIdentity(fields={}, by_kind={"error": ("error_id",), "heartbeat": ("component", "host", "seq")})
    keys = [k for _, k in read_keys(path, identity)]
    assert keys[:3] == ['error:["e1"]', 'error:["e1"]', 'error:["e2"]']
    assert keys[3] == hashlib.md5(path.read_text().splitlines()[3].encode()).hexdigest()
    assert keys[4] == 'error:["e4"]'
    assert keys[5] == keys[6] == 'heartbeat:["c","h","7"]'
    assert keys[7] == hashlib.md5(path.read_text().splitlines()[7].encode()).hexdigest()


@pytest.fixture
def axiom(monkeypatch, request):
    from fakes.axiom_server import FakeAxiomServer

    token = "xaat-" + "e" * 36
    srv = FakeAxiomServer(token=token, row_ids=request.param).start()
    monkeypatch.setenv("AXIOM_TOKEN", token)
    monkeypatch.setenv("AXIOM_URL", srv.url)
    monkeypatch.delenv("AXIOM_ORG_ID", raising=False)
    yield srv
    srv.stop()


@pytest.mark.parametrize("axiom", [False, True], ids=["without _rowId", "with _rowId"], indirect=True)
def test_the_axiom_api_source_keys_events_as_the_ndjson_reader_does(axiom, tmp_path):
    from pipelines.sources.axiom_api import AxiomEventSource

    finite = lambda e: all(not isinstance(v, float) or math.isfinite(v) for v in e.values())  # noqa: E731
    events = [
        {k: v for k, v in e.items() if k not in ("_meta", "_rowId")}
        for e in LOGICAL
        if e.get("event") in ("rollout", "heartbeat") and finite(e)
    ]
    axiom.add_events("grpo-events", events, sys_time="2024-05-02T00:00:00Z")
    src = AxiomEventSource("grpo-events", until=T_END, backoff_s=0.05, max_backoff_s=0.5)
    api = [r["event_key"] for c in src.chunks({}) for r in c.events.to_pylist()]
    assert len(api) == len(set(api)) == len(events)
    # The same events as an Axiom export holds them (with `_sysTime`, and `_rowId` when Axiom
    # gave one): one JSON line each, read by the NDJSON reader.
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in axiom.events("grpo-events")) + "\n", encoding="utf-8")
    ndjson = {k for _, k in read_keys(path)}
    if axiom.row_ids:
        assert ndjson == set(api)  # every event by its _rowId
    else:
        rollouts = {
            "rollout:" + json.dumps([e["run_id"], str(e["rollout_id"])], separators=(",", ":"))
            for e in events
            if e["event"] == "rollout" and "run_id" in e
        }
        assert {k for k in api if k.startswith("rollout:")} == rollouts
        assert rollouts <= ndjson  # rollouts by their ids in both; other events by their content
