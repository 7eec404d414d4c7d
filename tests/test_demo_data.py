"""The demo league says what it means: files exist, series meet the verdict rules, events show the incidents.

Everything here is checked independently of the warehouse: `.wandb` files are
decoded with a few lines of framing code plus wandb's own protobuf, trends
with scipy, event facts with json and numpy on the written NDJSON.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import struct
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench import crash
from pipelines.demo.build import generate_demo
from pipelines.demo.event_stream import write_demo_events
from pipelines.demo.league_truth import FIXED_REFERENCES, DemoRun, demo_runs
from pipelines.demo.manifest import MANIFEST_NAME, DemoEventFacts
from pipelines.settings import dbt_vars
from tests.clock import DEMO_END
from tests.independent_stats import ar1_trend_fit

NOW = DEMO_END
HOUR_S = 3600


# --- shared fixtures ------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo") / "league", now=NOW)


@pytest.fixture(scope="module")
def rules():
    v = dbt_vars()
    return {
        "min_change": float(v["min_elo_change"]),
        "min_points": int(v["min_eval_points"]),
        "kl_spike": float(v["kl_spike_min"]),
        "grad_max": float(v["grad_norm_max"]),
        "window": int(v["final_gap_window"]),
        "p95_max": float(v["rollout_p95_max_s"]),
        "extraction_min": float(v["extraction_rate_min"]),
        "error_max": float(v["error_rate_max"]),
        "stale_s": float(v["heartbeat_stale_after_s"]),
        "phi_floor": float(v["elo_noise_phi_floor"]),
    }


# The demo's events keep their promises whatever hour they end at: every 3 hours of a day, around
# midnight UTC (a lone day in one file), across a month end, a year end and a leap day, and at the
# instant the rest of the suite uses.
END_TIMES = sorted(
    {DEMO_END}
    | {dt.datetime(2026, 12, 5, h, 17, tzinfo=dt.UTC) for h in range(0, 24, 3)}
    | {
        dt.datetime(2026, 12, 5, 23, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 6, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 6, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 2, 1, 0, 30, tzinfo=dt.UTC),
        dt.datetime(2027, 1, 1, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2028, 2, 29, 12, 0, tzinfo=dt.UTC),
        dt.datetime(2028, 3, 1, 0, 5, tzinfo=dt.UTC),
    }
)


@dataclass(frozen=True)
class EventDemo:
    """The demo's events alone (`write_demo_events`), ending at `now`."""

    now: dt.datetime
    events_dir: Path
    events: DemoEventFacts
    runs: list[DemoRun]


@pytest.fixture(scope="module", params=END_TIMES, ids=lambda t: t.strftime("%Y-%m-%dT%H:%MZ"))
def ev(request, tmp_path_factory):
    runs = demo_runs(seed=7, steps=400)
    events_dir = tmp_path_factory.mktemp("demo_events") / "events"
    return EventDemo(request.param, events_dir, write_demo_events(events_dir, runs, request.param), runs)


@pytest.fixture(scope="module")
def events(ev):
    """Good events (dicts with an epoch-seconds `t`) and the bad lines, read from every file written."""
    good, bad, lines = [], [], 0
    for path in sorted(ev.events_dir.iterdir()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                lines += 1
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    bad.append(line)
                    continue
                if not isinstance(event, dict) or "_time" not in event:
                    bad.append(line)
                    continue
                event["t"] = dt.datetime.fromisoformat(event["_time"].replace("Z", "+00:00")).timestamp()
                good.append(event)
    return {"good": good, "bad": bad, "lines": lines}


def _kind(events, kind):
    return [e for e in events["good"] if e.get("event") == kind]


def _hour(ts: float) -> str:
    return dt.datetime.fromtimestamp(math.floor(ts / HOUR_S) * HOUR_S, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _full_hours(demo) -> tuple[float, float]:
    start = dt.datetime.fromisoformat(demo.events.window_start.replace("Z", "+00:00")).timestamp()
    end = dt.datetime.fromisoformat(demo.events.window_end.replace("Z", "+00:00")).timestamp()
    return math.ceil(start / HOUR_S) * HOUR_S, math.floor(end / HOUR_S) * HOUR_S


# --- an independent reading of the verdict rules ---------------------------------


def _trend(x, y, min_change: float, phi_floor: float) -> str:
    """rising / declining when the 95 % CI of the slope (allowing for AR(1) noise) excludes 0 and the change is material."""
    fit = ar1_trend_fit(np.asarray(x, float), np.asarray(y, float), phi_floor)
    if fit["lo"] > 0 and fit["fitted"] >= min_change:
        return "rising"
    if fit["hi"] < 0 and -fit["fitted"] >= min_change:
        return "declining"
    return "flat"


def _gap(run: DemoRun) -> tuple[np.ndarray, np.ndarray]:
    """(eval steps with a checkpoint, the newest checkpoint's Elo minus base_model's)."""
    names = sorted((k for k in run.elo if k.startswith("ckpt_")), key=lambda k: int(k[5:]))
    ckpts = np.vstack([run.elo[k] for k in names])
    present = ~np.all(np.isnan(ckpts), axis=0)
    newest = [ckpts[~np.isnan(ckpts[:, j]), j][-1] for j in np.flatnonzero(present)]
    return run.eval_steps[present], np.array(newest) - run.elo["base_model"][present]


def _verdict(run: DemoRun, rules) -> str:
    if len(run.eval_steps) < rules["min_points"]:
        return "insufficient_data"
    refs = [_trend(run.eval_steps, run.elo[p], rules["min_change"], rules["phi_floor"]) for p in FIXED_REFERENCES]
    gap_x, gap_y = _gap(run)
    learning = (
        "declining" in refs
        and "rising" not in refs
        and _trend(gap_x, gap_y, rules["min_change"], rules["phi_floor"]) == "rising"
    )
    if not learning:
        return "not_learning"
    kl, grad = run.train["train/kl"], run.train["train/grad_norm"]
    spiky = bool(np.any(kl > rules["kl_spike"]) or np.any(grad[np.isfinite(grad)] >= rules["grad_max"]))
    return "unstable" if spiky else "learning"


# --- W&B runs ---------------------------------------------------------------------


def _records(path: Path):
    """wandb_internal Records from a `.wandb` file (header, 32 KiB blocks, FULL/FIRST/MIDDLE/LAST chunks)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert data[:7] == b":W&B\xe1\xbe\x00"
    pos, parts = 7, []
    while pos + 7 <= len(data):
        block_end = (pos // 32768 + 1) * 32768
        if block_end - pos < 7:
            pos = block_end
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0:
            pos = block_end
            continue
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield Record.FromString(payload)
        elif kind == 2:
            parts = [payload]
        elif kind == 3:
            parts.append(payload)
        else:
            yield Record.FromString(b"".join([*parts, payload]))


def test_each_run_has_one_wandb_file_per_segment_under_the_manifest_dir(demo):
    wandb_dir = demo.wandb_dirs[0]
    found: dict[str, list[Path]] = {}
    for p in sorted(wandb_dir.glob("offline-run-*/run-*.wandb")):  # folder names sort by start time
        found.setdefault(p.stem.removeprefix("run-"), []).append(p)
    assert sorted(found) == sorted(r.run_id for r in demo.runs)
    for run in demo.runs:
        assert run.wandb_files == found[run.run_id] and run.wandb_file == found[run.run_id][-1]
    segments = {r.name: len(r.wandb_files) for r in demo.runs}
    assert segments == {r.name: 3 if r.name == "kl-sweep-1" else 1 for r in demo.runs}


def test_the_resumed_run_was_preempted_twice_and_changed_its_config_at_each_resume(demo):
    run = demo.run("kl-sweep-1")
    exits, configs, starts = [], [], []
    for path in run.wandb_files:
        config = {}
        for record in _records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                starts.append(record.run.start_time.ToDatetime())
                config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "config":
                config.update({item.key: json.loads(item.value_json) for item in record.config.update})
            elif kind == "exit":
                exits.append(record.exit.exit_code)
        configs.append(config.get("resume_from_checkpoint"))
    assert exits == [143, 143, 0]
    assert configs == [None, "checkpoints/step_150", "checkpoints/step_300"]
    assert starts == sorted(starts) and len(set(starts)) == 3
    assert run.config["resume_from_checkpoint"] == "checkpoints/step_300"
    assert [first for first, _ in run.segments] == [1, 151, 301]


def test_run_names_groups_and_configs_follow_the_sweeps(demo):
    names = {r.name: r for r in demo.runs}
    assert set(names) == {f"{s}-{i}" for s in ("lr-sweep", "kl-sweep") for i in (1, 2, 3)} | {"smoke-test-1"}
    for sweep, varied in (("lr-sweep", "learning_rate"), ("kl-sweep", "kl_coef")):
        members = [r for r in demo.runs if r.sweep == sweep]
        assert len(members) == 3 and all(r.name.startswith(sweep) for r in members)
        assert len({r.config[varied] for r in members}) == 3
        assert len({r.config["model"]["base"] for r in members}) == 1
    assert names["smoke-test-1"].sweep == "smoke-test"
    assert len({r.run_id for r in demo.runs}) == len(demo.runs)


def test_wandb_files_hold_exactly_the_series_the_generator_reports(demo):
    for run in demo.runs:
        rows, meta, config = {}, None, {}
        records = [r for path in run.wandb_files for r in _records(path)]  # segments in order: later steps win
        for record in records:
            kind = record.WhichOneof("record_type")
            if kind == "run":
                meta = record.run
                config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "config":
                config.update({item.key: json.loads(item.value_json) for item in record.config.update})
            elif kind == "history":
                row = {
                    "/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item
                }
                rows[int(row["_step"])] = row
        assert (meta.display_name, meta.run_group, meta.project) == (run.name, run.sweep, demo.project)
        assert config["learning_rate"] == run.config["learning_rate"]
        assert config["model"] == run.config["model"]
        assert sorted(rows) == run.steps.tolist()
        for key, values in run.train.items():
            logged = np.array([rows[s][key] for s in run.steps.tolist()], dtype=float)
            np.testing.assert_allclose(logged, values, rtol=1e-12, equal_nan=True)
        for player, values in run.elo.items():
            logged = np.array([rows[s].get(f"elo/{player}", np.nan) for s in run.eval_steps.tolist()], dtype=float)
            np.testing.assert_allclose(logged, values, rtol=0, atol=1e-9, equal_nan=True)
        off_eval = set(run.steps.tolist()) - set(run.eval_steps.tolist())
        assert not any(k.startswith("elo/") for s in off_eval for k in rows[s])


def test_checkpoints_appear_from_their_step_onward(demo):
    for run in demo.runs:
        for player, values in run.elo.items():
            if player.startswith("ckpt_"):
                saved = int(player.removeprefix("ckpt_"))
                assert saved % 100 == 0
                np.testing.assert_array_equal(~np.isnan(values), run.eval_steps >= saved)
            else:
                assert not np.isnan(values).any()


def test_intended_verdicts_hold_under_the_warehouse_rules(demo, rules):
    got = {r.name: _verdict(r, rules) for r in demo.runs}
    assert got == {r.name: r.intended_verdict for r in demo.runs}
    assert Counter(got.values()) == {"learning": 4, "unstable": 1, "not_learning": 1, "insufficient_data": 1}


@pytest.mark.parametrize("seed", range(40))
def test_intended_verdicts_hold_for_other_seeds(seed, rules):
    for run in demo_runs(seed=seed, steps=400 + 25 * (seed % 3)):
        assert _verdict(run, rules) == run.intended_verdict, run.name


def test_learning_runs_are_smooth_and_the_unstable_run_is_not(demo, rules):
    for run in demo.runs:
        kl, grad = run.train["train/kl"], run.train["train/grad_norm"]
        if run.intended_verdict == "unstable":
            assert 5 <= int(np.sum(kl > rules["kl_spike"])) <= 12
            assert 2 <= int(np.sum(grad[np.isfinite(grad)] >= rules["grad_max"])) <= 6
            assert int(np.isnan(grad).sum()) == 1
        else:
            assert not np.isnan(grad).any()
            assert grad.min() >= 1 and grad.max() <= 10
            assert kl.max() < 0.1
        if run.intended_verdict == "learning":
            assert 0.01 <= np.median(kl) <= 0.07


def test_learning_runs_push_base_model_down_and_the_newest_checkpoint_up(demo):
    for run in demo.runs:
        if run.intended_verdict not in ("learning", "unstable"):
            continue
        base = run.elo["base_model"]
        assert base[:2].mean() > 960 and base[:2].mean() - base[-3:].mean() > 40
        newest = [run.elo[f"ckpt_{c}"][run.eval_steps == c][0] for c in (100, 200, 300, 400)]
        assert np.all(np.diff(newest) > 0)


def test_one_sweep_has_a_statistical_tie_and_the_other_a_clear_winner(demo, rules):
    window = rules["window"]
    outcomes = {}
    for sweep in ("lr-sweep", "kl-sweep"):
        finals = {r.name: _gap(r)[1][-window:] for r in demo.runs if r.sweep == sweep}
        first, second = sorted(finals, key=lambda n: finals[n].mean(), reverse=True)[:2]
        diff = finals[first].mean() - finals[second].mean()
        p = stats.ttest_ind(finals[first], finals[second], equal_var=False).pvalue
        outcomes[sweep] = "tie" if p > 0.05 or diff < rules["min_change"] else first
        assert demo.sweeps[sweep]["final_gaps"][first] == pytest.approx(finals[first].mean(), abs=0.05)
    assert outcomes == {"lr-sweep": "lr-sweep-2", "kl-sweep": "tie"}
    assert demo.sweeps["lr-sweep"]["winner"] == "lr-sweep-2"
    assert demo.sweeps["kl-sweep"]["tie"] == ["kl-sweep-1", "kl-sweep-2"]


def test_generation_is_fast_and_the_manifest_is_written_as_json(demo):
    assert demo.seconds < 60  # ~12 s with two wandb processes; generous for busy machines
    on_disk = json.loads((demo.out_dir / MANIFEST_NAME).read_text())
    assert on_disk == json.loads(json.dumps(demo.to_dict()))
    with_series = json.loads(json.dumps(demo.to_dict(include_series=True)))
    assert len(with_series["runs"][0]["train"]["train/kl"]) == 400
    assert not (demo.out_dir / "wandb" / "latest-run").exists()


def test_too_few_steps_are_refused():
    with pytest.raises(ValueError, match="at least"):
        demo_runs(steps=150)


def test_a_non_empty_directory_that_is_not_a_demo_is_left_alone(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_demo(tmp_path, now=NOW)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


# --- events -------------------------------------------------------------------------


def test_events_cover_24_hours_in_ndjson_with_one_gzip_file(ev, events):
    names = [Path(f).name for f in ev.events.files]
    assert any(n.endswith(".ndjson.gz") for n in names) and all(".ndjson" in n for n in names)
    assert events["lines"] == ev.events.lines
    assert 50_000 <= len(events["good"]) <= 150_000
    times = np.array([e["t"] for e in events["good"]])
    assert ev.now.timestamp() - 24 * HOUR_S <= times.min() < ev.now.timestamp() - 23.9 * HOUR_S
    assert ev.now.timestamp() - 60 < times.max() < ev.now.timestamp()
    assert all(e["_time"].endswith("Z") for e in events["good"][:1000])
    kinds = Counter(e.get("event") or e.get("level") for e in events["good"])
    assert {k: kinds[k] for k in ev.events.counts} == ev.events.counts
    run_ids = {e["run_id"] for e in events["good"] if "run_id" in e}
    assert run_ids == {r.run_id for r in ev.runs}


def test_the_bad_lines_are_the_ones_the_manifest_counts(ev, events):
    assert len(events["bad"]) == ev.events.bad_lines == 3
    newest = ev.events_dir / ev.events.bad_line_locations[0]["file"]
    opener = gzip.open if newest.suffix == ".gz" else open
    with opener(newest, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert sorted(lines[loc["line"] - 1] + "\n" for loc in ev.events.bad_line_locations) == sorted(events["bad"])


def test_exactly_one_hour_has_rollout_p95_above_target(ev, events, rules):
    lo, hi = _full_hours(ev)
    by_hour = defaultdict(list)
    for e in _kind(events, "rollout"):
        if lo <= e["t"] < hi:
            by_hour[_hour(e["t"])].append(e["duration_s"])
    p95 = {h: float(np.percentile(v, 95)) for h, v in by_hour.items()}
    assert [h for h, v in p95.items() if v > rules["p95_max"]] == [ev.events.slow_hour]
    assert p95[ev.events.slow_hour] == pytest.approx(ev.events.slow_hour_p95_s, abs=1e-3)
    per_run = defaultdict(list)
    for e in _kind(events, "rollout"):
        per_run[e["run_id"]].append(e["duration_s"])
    assert all(np.percentile(v, 95) < rules["p95_max"] for v in per_run.values())
    assert 30 < np.median(sum(per_run.values(), [])) < 50


def test_error_rate_is_low_except_in_the_hour_an_engine_died(ev, events, rules):
    rollouts = _kind(events, "rollout")
    hours = defaultdict(list)
    runs = defaultdict(list)
    for e in rollouts:
        hours[_hour(e["t"])].append(e["status"] == "error")
        runs[e["run_id"]].append(e["status"] == "error")
    lo, hi = _full_hours(ev)
    rates = {
        h: np.mean(v) for h, v in hours.items() if lo <= dt.datetime.fromisoformat(h[:-1] + "+00:00").timestamp() < hi
    }
    assert [h for h, r in rates.items() if r > rules["error_max"]] == [ev.events.error_hour]
    assert all(np.mean(v) < rules["error_max"] for v in runs.values())
    overall_outside = [s for h, v in hours.items() if h != ev.events.error_hour for s in v]
    assert 0.001 < np.mean(overall_outside) < 0.005
    failed = {e["rollout_id"] for e in rollouts if e["status"] == "error"}
    errors = [e for e in events["good"] if e.get("level") == "error"]
    assert failed <= {e.get("rollout_id") for e in errors}
    assert {e["component"] for e in errors} >= {"rollout-worker", "reward-server", "inference"}


def test_only_the_problem_run_extracts_below_target_and_only_in_its_hours(ev, events, rules):
    sums = defaultdict(lambda: np.zeros(2))
    for e in _kind(events, "extraction"):
        sums[(e["run_id"], _hour(e["t"]))] += (e["orders_extracted"], e["orders_expected"])
    low = {key for key, (got, expected) in sums.items() if got / expected < rules["extraction_min"]}
    problem = ev.events.extraction_problem
    assert low == {(problem["run_id"], h) for h in problem["hours"]}
    overall = defaultdict(lambda: np.zeros(2))
    for (run_id, _), v in sums.items():
        overall[run_id] += v
    assert all((got / exp > 0.98) == (run_id != problem["run_id"]) for run_id, (got, exp) in overall.items())


def test_one_component_goes_silent_about_two_hours_before_now(ev, events, rules):
    beats = _kind(events, "heartbeat")
    last = defaultdict(float)
    for e in beats:
        last[e["component"]] = max(last[e["component"]], e["t"])
    latest = max(e["t"] for e in events["good"])
    stale = {c for c, t in last.items() if latest - t > rules["stale_s"]}
    silent = ev.events.silent_component
    assert stale == {silent["component"]}
    # 1 h 40 min before the current hour began: 1 h 40 min to 2 h 40 min before the end, by the minute it ends at
    assert 100 * 60 - 31 <= ev.now.timestamp() - last[silent["component"]] < 160 * 60
    assert _hour(last[silent["component"]]) == ev.events.error_hour
    assert set(last) == set(ev.events.components)
    gaps = np.diff(sorted(e["t"] for e in beats if e["component"] == "rollout-worker"))
    assert 29 < np.median(gaps) < 31
    after = [e for e in events["good"] if e.get("engine") == "vllm-b" and e["t"] > last[silent["component"]] + 600]
    assert after == []


def test_the_staged_inputs_of_the_crash_and_incremental_tests_work_at_any_hour(ev, tmp_path):
    """bench/crash.Inputs serves an archive and a growing file from the demo's events whatever their day split
    (ending at midnight the demo writes a single file); stage B serves what stage A did and more."""
    demo_dir = tmp_path / "demo"
    (demo_dir / "events").mkdir(parents=True)
    for path in ev.events_dir.iterdir():
        (demo_dir / "events" / path.name).write_bytes(path.read_bytes())
    for run in ev.runs:  # the runs' bytes are not what this test is about
        folder = demo_dir / "wandb" / f"offline-run-20260101_000000-{run.run_id}"
        folder.mkdir(parents=True)
        (folder / f"run-{run.run_id}.wandb").write_bytes(b"")
    for event_lines in (3000, None):
        inputs = crash.Inputs(demo_dir, tmp_path / f"served-{event_lines}", event_lines)
        served = {}
        for stage in ("A", "B"):
            inputs.stage(stage)
            files = sorted(p.name for p in inputs.events.iterdir())
            assert files == sorted([crash.ARCHIVE_NAME, crash.GROWING_NAME]), files
            archive = gzip.decompress((inputs.events / crash.ARCHIVE_NAME).read_bytes())
            growing = (inputs.events / crash.GROWING_NAME).read_bytes()
            served[stage] = (archive, growing)
            assert archive and growing
        assert served["A"][0] == served["B"][0]
        assert served["B"][1].startswith(served["A"][1]) and len(served["B"][1]) > len(served["A"][1])
        assert len(inputs.demo_lines) == ev.events.lines
        if event_lines:
            assert len(inputs.archive_lines) == len(inputs.growing_lines) == event_lines
