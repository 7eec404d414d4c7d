"""The local W&B source reads `.wandb` files written by the real wandb library.

Expected values are always the ones these tests logged (generated with numpy),
never the reader's own output.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from wandb.proto import wandb_internal_pb2 as pb
from wandb_fixtures import BLOCK, HEADER, Span, record_spans, write_log, write_runs

from pipelines.sources.base import HISTORY_COLUMNS, HISTORY_OTHER_COLUMNS, RunSource
from pipelines.sources.wandb_file import WandbFileError, iter_payloads, iter_records
from pipelines.sources.wandb_local import LocalRunSource
from pipelines.sources.wandb_segment_reader import read_run_file

MAIN_STEPS = 60
BIG_HISTORY_STRING = "z" * 100_000
BIG_SUMMARY_STRING = "y" * 100_000
INIT_CONFIG = {"lr": 3e-4, "model": {"name": "qwen", "layers": 4}, "a.b": 1, "seed": 7}
CONFIG_UPDATE = {"extra": {"k": [1, 2]}}
USER_SUMMARY = {"best_reward": 0.875, "big_note": BIG_SUMMARY_STRING, "eval": {"acc": 0.5}}


def main_steps() -> list[dict[str, Any]]:
    """What the main run logs: random metrics plus every awkward kind of value."""
    rng = np.random.default_rng(20251126)
    steps = []
    for i in range(MAIN_STEPS):
        data: dict[str, Any] = {
            "loss": float(rng.normal()),
            "train/kl": float(rng.exponential()),
            "elo/base_model": float(rng.normal(1000, 50)),
            "grad_norm": float(rng.lognormal()),
            "reward": {"mean": float(rng.random()), "std": float(rng.random())},
            "tokens": int(rng.integers(0, 2**40)),
            "tiny": float(rng.random() * 1e-300),
        }
        if i == 5:
            data["big_int"] = 2**63 - 1  # exact digits in the JSON; float64 must round it like float()
        if i == 7:
            data["grad_norm"] = math.nan
        if i == 8:
            data["train/kl"] = math.inf
        if i == 9:
            data["train/kl"] = -math.inf
        if i % 10 == 0:
            data["sample"] = f'completion {i}: "quoted" ünïcode'
            data["is_eval"] = i % 20 == 0
            data["lens"] = [i, i + 1, i + 2]
        if i == 30:
            data["maybe"] = None
        if i == 40:
            data["long_text"] = BIG_HISTORY_STRING
        steps.append({"step": i, "data": data})
    return steps


def short_steps(seed: int, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"step": i, "data": {"loss": float(rng.normal())}} for i in range(n)]


@dataclass(frozen=True)
class Runs:
    project_a: Path  # holds the main run and the crashed run
    project_b: Path  # holds one more run
    main_file: Path
    crashed_file: Path
    other_file: Path
    specs: dict[str, dict[str, Any]]
    started: dt.datetime
    ended: dt.datetime


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("wandb-runs")
    project_a, project_b = root / "project-a", root / "project-b"
    specs = {
        "main": {
            "dir": str(project_a),
            "init": {
                "project": "grpo-test",
                "name": "main-run",
                "group": "grp-1",
                "job_type": "train",
                "tags": ["alpha", "beta"],
                "notes": "hello notes",
                "config": INIT_CONFIG,
            },
            "steps": main_steps(),
            "summary": USER_SUMMARY,
            "config_update": CONFIG_UPDATE,
            "exit_code": 0,
        },
        "crashed": {
            "dir": str(project_a),
            "init": {"project": "grpo-test", "name": "crashed-run"},
            "steps": short_steps(1, 5),
            "exit_code": 1,
        },
        "other": {
            "dir": str(project_b),
            "init": {"project": "grpo-test", "name": "other-run"},
            "steps": short_steps(2, 3),
        },
    }
    started = dt.datetime.now(dt.UTC)
    write_runs(list(specs.values()), root / "work")
    ended = dt.datetime.now(dt.UTC)
    files = {}
    for name, spec in specs.items():
        candidates = sorted(Path(spec["dir"]).glob("wandb/offline-run-*/run-*.wandb"))
        files[name] = next(p for p in candidates if display_name(p) == spec["init"]["name"])
    return Runs(project_a, project_b, files["main"], files["crashed"], files["other"], specs, started, ended)


def display_name(path: Path) -> str:
    """The run name in a file's run record, read with wandb's own protobuf classes."""
    for span in record_spans(path.read_bytes()):
        record = pb.Record.FromString(span.payload)
        if record.WhichOneof("record_type") == "run":
            return record.run.display_name
    raise AssertionError(f"{path} has no run record")


# --- expectations from what the tests logged ----------------------------------


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def is_numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def expected_numeric(steps: list[dict[str, Any]], after: int | None = None) -> dict[tuple[int, str], float]:
    return {
        (row["step"], key): float(value)
        for row in steps
        if after is None or row["step"] > after
        for key, value in flatten(row["data"]).items()
        if is_numeric(value)
    }


def expected_other(steps: list[dict[str, Any]], after: int | None = None) -> dict[tuple[int, str], Any]:
    return {
        (row["step"], key): value
        for row in steps
        if after is None or row["step"] > after
        for key, value in flatten(row["data"]).items()
        if not is_numeric(value)
    }


def same_floats(a: dict[Any, float], b: dict[Any, float]) -> bool:
    """Dict equality where NaN equals NaN (a NaN is a value here, not a missing one)."""
    return a.keys() == b.keys() and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def history_dict(table) -> dict[tuple[int, str], float]:
    rows = table.to_pydict()
    pairs = list(zip(rows["step"], rows["key"], strict=True))
    assert len(set(pairs)) == len(pairs), "a (step, key) pair came back twice"
    return dict(zip(pairs, rows["value"], strict=True))


def other_dict(table) -> dict[tuple[int, str], Any]:
    rows = table.to_pydict()
    return {(s, k): json.loads(v) for s, k, v in zip(rows["step"], rows["key"], rows["value_json"], strict=True)}


def copy_run(src: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    return dest


# --- values -------------------------------------------------------------------


def test_every_logged_number_comes_back_exactly(runs: Runs) -> None:
    read = read_run_file(runs.main_file)
    assert read.history.schema == HISTORY_COLUMNS
    assert same_floats(history_dict(read.history), expected_numeric(runs.specs["main"]["steps"]))
    assert set(read.history.column("run_id").to_pylist()) == {read.meta.run_id}
    assert read.warnings == []


def test_nan_grad_norm_is_kept_as_nan(runs: Runs) -> None:
    got = history_dict(read_run_file(runs.main_file).history)
    assert math.isnan(got[(7, "grad_norm")])


def test_infinities_are_kept_with_their_sign(runs: Runs) -> None:
    got = history_dict(read_run_file(runs.main_file).history)
    assert got[(8, "train/kl")] == math.inf
    assert got[(9, "train/kl")] == -math.inf


def test_nested_keys_are_joined_with_dots_and_slashes_stay_inside_a_key(runs: Runs) -> None:
    keys = set(read_run_file(runs.main_file).history.column("key").to_pylist())
    assert {"reward.mean", "reward.std", "train/kl", "elo/base_model"} <= keys
    assert not keys & {"reward", "train", "elo", "_step", "_runtime", "_timestamp"}


def test_large_integers_keep_their_float_value(runs: Runs) -> None:
    got = history_dict(read_run_file(runs.main_file).history)
    logged = runs.specs["main"]["steps"][3]["data"]["tokens"]
    assert got[(3, "tokens")] == float(logged)
    assert got[(5, "big_int")] == float(2**63 - 1)


def test_non_numeric_values_land_in_other_and_are_counted(runs: Runs) -> None:
    read = read_run_file(runs.main_file)
    expected = expected_other(runs.specs["main"]["steps"])
    assert read.other.schema == HISTORY_OTHER_COLUMNS
    assert read.other.num_rows == len(expected) == 6 * 3 + 2
    assert other_dict(read.other) == expected
    assert other_dict(read.other)[(20, "is_eval")] is True
    assert other_dict(read.other)[(30, "maybe")] is None


def test_a_100kb_history_string_spanning_blocks_is_read(runs: Runs) -> None:
    data = runs.main_file.read_bytes()
    assert any(len(span.chunk_types) > 2 for span in record_spans(data)), "fixture has no multi-block record"
    assert other_dict(read_run_file(runs.main_file).other)[(40, "long_text")] == BIG_HISTORY_STRING


def test_wall_time_is_the_utc_time_of_logging(runs: Runs) -> None:
    read = read_run_file(runs.main_file)
    times = read.history.column("wall_time").to_pylist() + read.other.column("wall_time").to_pylist()
    assert None not in times
    assert all(runs.started - dt.timedelta(seconds=1) <= t <= runs.ended for t in times)
    by_step = {}
    for step, t in zip(read.history.column("step").to_pylist(), read.history.column("wall_time").to_pylist()):
        by_step.setdefault(step, set()).add(t)
    assert all(len(ts) == 1 for ts in by_step.values()), "one row's items must share its wall time"


# --- metadata -----------------------------------------------------------------


def test_run_metadata_comes_from_the_init_call(runs: Runs) -> None:
    meta = read_run_file(runs.main_file).meta
    init = runs.specs["main"]["init"]
    assert meta.run_id == runs.main_file.stem.removeprefix("run-")
    assert (meta.run_name, meta.project, meta.run_group, meta.job_type, meta.notes) == (
        init["name"],
        init["project"],
        init["group"],
        init["job_type"],
        init["notes"],
    )
    assert meta.tags == tuple(init["tags"])
    assert meta.started_at is not None and meta.started_at.tzinfo is not None
    assert runs.started - dt.timedelta(seconds=1) <= meta.started_at <= runs.ended
    assert meta.source == str(runs.main_file)
    assert meta.host


def test_config_is_init_config_plus_later_updates_without_wandb_internals(runs: Runs) -> None:
    config = read_run_file(runs.main_file).meta.config
    assert config == {**INIT_CONFIG, **CONFIG_UPDATE}


def test_final_summary_holds_the_last_logged_values_and_user_summary(runs: Runs) -> None:
    summary = dict(read_run_file(runs.main_file).meta.summary)
    last: dict[str, Any] = {}
    for row in runs.specs["main"]["steps"]:
        for key, value in row["data"].items():
            if isinstance(value, dict):
                last.setdefault(key, {}).update(value)
            elif value is not None:  # wandb-core keeps nulls out of the summary
                last[key] = value
    expected = {**last, **USER_SUMMARY}
    assert "_wandb" not in summary
    assert summary["_step"] == MAIN_STEPS - 1
    assert {k: summary[k] for k in expected} == expected


def test_a_run_finished_normally_is_finished(runs: Runs) -> None:
    meta = read_run_file(runs.main_file).meta
    assert (meta.state, meta.exit_code, meta.last_step) == ("finished", 0, MAIN_STEPS - 1)
    assert meta.runtime_s is not None and meta.runtime_s >= 0


def test_a_run_finished_with_exit_code_1_is_crashed(runs: Runs) -> None:
    meta = read_run_file(runs.crashed_file).meta
    assert (meta.state, meta.exit_code, meta.last_step) == ("crashed", 1, 4)


def test_after_step_returns_only_later_steps_but_full_metadata(runs: Runs) -> None:
    steps = runs.specs["main"]["steps"]
    read = read_run_file(runs.main_file, after_step=29)
    assert same_floats(history_dict(read.history), expected_numeric(steps, after=29))
    assert other_dict(read.other) == expected_other(steps, after=29)
    assert read.meta.last_step == MAIN_STEPS - 1
    assert read.meta.summary == read_run_file(runs.main_file).meta.summary


def test_after_the_last_step_nothing_is_returned(runs: Runs) -> None:
    read = read_run_file(runs.main_file, after_step=MAIN_STEPS - 1)
    assert (read.history.num_rows, read.other.num_rows) == (0, 0)
    assert read.meta.last_step == MAIN_STEPS - 1


# --- truncation and damage ----------------------------------------------------


def truncation_points(spans: list[Span], size: int) -> list[int]:
    multi = next(s for s in spans if len(s.chunk_types) > 2)
    history = [s for s in spans if pb.Record.FromString(s.payload).WhichOneof("record_type") == "history"]
    mid = history[len(history) // 2]
    return sorted(
        {
            7,  # header only
            9,  # inside the first chunk header
            spans[1].start + 7 + 3,  # inside a payload
            mid.start,  # at a chunk boundary
            mid.start + 4,  # inside a chunk header
            mid.end - 1,  # one byte short of a whole record
            BLOCK,  # exactly at a block boundary
            BLOCK + 3,
            multi.start + 7 + 100,  # inside the FIRST chunk of a multi-block record
            multi.end - 50,  # inside its LAST chunk
            size - 1,
        }
    )


def test_a_truncated_file_reads_every_whole_record_before_the_cut(runs: Runs, tmp_path: Path) -> None:
    data = runs.main_file.read_bytes()
    spans = record_spans(data)
    for cut in truncation_points(spans, len(data)):
        path = tmp_path / f"cut-{cut}" / runs.main_file.name
        path.parent.mkdir()
        path.write_bytes(data[:cut])
        warnings: list[str] = []
        got = [bytes(p) for _, p in iter_payloads(path, warnings)]
        assert got == [s.payload for s in spans if s.end <= cut], f"cut at byte {cut}"
        assert warnings == [], f"cut at byte {cut}"


def test_a_truncated_file_is_a_running_run_with_the_steps_written_so_far(runs: Runs, tmp_path: Path) -> None:
    data = runs.main_file.read_bytes()
    spans = record_spans(data)
    cut = spans[len(spans) // 2].end + 5
    whole = [pb.Record.FromString(s.payload) for s in spans if s.end <= cut]
    steps_written = {r.history.step.num for r in whole if r.WhichOneof("record_type") == "history"}
    path = copy_run(runs.main_file, tmp_path)
    path.write_bytes(data[:cut])
    read = read_run_file(path)
    assert read.meta.state == "running" and read.meta.exit_code is None
    assert set(read.history.column("step").to_pylist()) == steps_written
    assert read.meta.last_step == max(steps_written)
    assert read.warnings == []


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def test_a_flipped_byte_warns_with_file_and_offset_and_later_blocks_are_read(runs: Runs, tmp_path: Path) -> None:
    data = runs.main_file.read_bytes()
    spans = record_spans(data)
    last_block = (len(data) - 1) // BLOCK
    bad = next(
        s
        for s in spans
        if s.start >= BLOCK
        and s.start // BLOCK < last_block
        and s.chunk_types == (1,)
        and pb.Record.FromString(s.payload).WhichOneof("record_type") == "history"
    )
    path = copy_run(runs.main_file, tmp_path)
    path.write_bytes(flip(data, bad.start + 7 + len(bad.payload) // 2))
    warnings: list[str] = []
    got = [bytes(p) for _, p in iter_payloads(path, warnings)]
    next_block = (bad.start // BLOCK + 1) * BLOCK
    assert any(s.start >= next_block for s in spans), "fixture has no record after the damaged block"
    assert got == [s.payload for s in spans if s.end <= bad.start or s.start >= next_block]
    assert any(str(path) in w and f"byte {bad.start}" in w and "checksum" in w for w in warnings), warnings

    read = read_run_file(path)
    assert read.warnings and all(str(path) in w for w in read.warnings)
    assert read.meta.state == "finished"
    lost_step = pb.Record.FromString(bad.payload).history.step.num
    steps = set(read.history.column("step").to_pylist())
    assert lost_step not in steps and MAIN_STEPS - 1 in steps


def test_an_impossible_chunk_length_skips_the_block_with_a_warning(runs: Runs, tmp_path: Path) -> None:
    data = runs.main_file.read_bytes()
    spans = record_spans(data)
    last_block = (len(data) - 1) // BLOCK
    bad = next(s for s in spans if s.start >= BLOCK and s.start // BLOCK < last_block and s.chunk_types == (1,))
    damaged = bytearray(data)
    damaged[bad.start + 4 : bad.start + 6] = (0xFFFF).to_bytes(2, "little")
    path = copy_run(runs.main_file, tmp_path)
    path.write_bytes(bytes(damaged))
    warnings: list[str] = []
    got = [bytes(p) for _, p in iter_payloads(path, warnings)]
    next_block = (bad.start // BLOCK + 1) * BLOCK
    assert got == [s.payload for s in spans if s.end <= bad.start or s.start >= next_block]
    assert any(f"byte {bad.start}" in w for w in warnings), warnings


def test_damage_inside_a_multi_block_record_drops_only_that_record(runs: Runs, tmp_path: Path) -> None:
    data = runs.main_file.read_bytes()
    spans = record_spans(data)
    big = next(s for s in spans if len(s.chunk_types) > 2)
    # The second chunk starts at the first block boundary after the record's start.
    second_chunk = (big.start // BLOCK + 1) * BLOCK
    path = copy_run(runs.main_file, tmp_path)
    path.write_bytes(flip(data, second_chunk + 7 + 10))
    warnings: list[str] = []
    got = [bytes(p) for _, p in iter_payloads(path, warnings)]
    assert big.payload not in got
    assert got == [s.payload for s in spans if s is not big]
    assert any(f"byte {second_chunk}" in w for w in warnings) and len(warnings) >= 2, warnings


def test_a_wrong_header_is_an_error_naming_the_file(tmp_path: Path) -> None:
    for name, header in [("version", HEADER[:6] + b"\x01"), ("magic", b":W&B\x00\x00\x00"), ("ident", b"LEVELDB")]:
        path = tmp_path / f"run-{name}.wandb"
        write_log(path, [], header=header)
        with pytest.raises(WandbFileError, match=re.escape(str(path))):
            read_run_file(path)


def test_a_file_cut_inside_its_header_has_no_records_yet(tmp_path: Path) -> None:
    for size in (0, 3, 6):
        path = tmp_path / f"run-new{size}.wandb"
        path.write_bytes(HEADER[:size])
        read = read_run_file(path)
        assert (read.meta.state, read.meta.last_step, read.history.num_rows) == ("running", None, 0)
        assert read.meta.run_id == f"new{size}"
        assert any(str(path) in w for w in read.warnings)


def test_a_file_that_is_not_a_wandb_log_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "run-text.wandb"
    path.write_text("hello, this is not a log")
    with pytest.raises(WandbFileError, match=re.escape(str(path))):
        list(iter_records(path, []))


def test_typed_history_values_without_json_are_read(tmp_path: Path) -> None:
    record = pb.Record()
    record.run.run_id = "typed1"
    history = pb.Record()
    items = [
        ("_step", {"integer": 3}),
        ("a", {"number": 0.0}),
        ("b", {"integer": -5}),
        ("c", {"boolean": True}),
        ("d", {"text": "hi"}),
        ("e", {"json": "[1]"}),
        ("f", {"number": math.nan}),
    ]
    for key, value in items:
        item = history.history.item.add()
        item.nested_key.append(key)
        for field, v in value.items():
            setattr(item, field, v)
    path = tmp_path / "run-typed1.wandb"
    write_log(path, [record.SerializeToString(), history.SerializeToString()])
    read = read_run_file(path)
    got = history_dict(read.history)
    assert got.keys() == {(3, "a"), (3, "b"), (3, "f")}
    assert (got[(3, "a")], got[(3, "b")], math.isnan(got[(3, "f")])) == (0.0, -5.0, True)
    assert other_dict(read.other) == {(3, "c"): True, (3, "d"): "hi", (3, "e"): [1]}
    assert read.meta.last_step == 3 and read.meta.state == "running"
    assert read_run_file(path, after_step=2).history.num_rows == 3
    assert read_run_file(path, after_step=3).history.num_rows == 0


def test_summary_writes_fold_in_file_order_with_nesting_and_removes(tmp_path: Path) -> None:
    def summary(updates=(), removes=()) -> bytes:
        record = pb.Record()
        for path, value in updates:
            item = record.summary.update.add()
            if isinstance(path, tuple):
                item.nested_key.extend(path)
            else:
                item.key = path
            item.value_json = json.dumps(value)
        for path in removes:
            item = record.summary.remove.add()
            item.nested_key.extend(path) if isinstance(path, tuple) else setattr(item, "key", path)
        return record.SerializeToString()

    records = [
        summary([("a", 1), (("b", "x"), 1), ("c", {"old": 1})]),
        # A one-element tuple is a top-level nested_key, the way wandb-core writes logged values.
        summary([(("a", "y"), 2), (("b",), 5), (("c", "new"), 2)]),  # a becomes a dict; b a scalar again
        summary([(("a",), 3)], removes=[("gone",)]),  # a scalar again
        summary([("gone", 1), ("kept", 1)]),
        summary(removes=[("gone",)]),
    ]
    path = tmp_path / "run-fold.wandb"
    write_log(path, records)
    assert read_run_file(path).meta.summary == {"a": 3, "b": 5, "c": {"old": 1, "new": 2}, "kept": 1}


# --- discovery ----------------------------------------------------------------


def run_ids(source: LocalRunSource) -> list[str]:
    return [ref.run_id for ref in source.runs()]


def test_local_source_satisfies_the_run_source_protocol() -> None:
    source: RunSource = LocalRunSource([])
    assert source.name == "wandb-local"


def test_discovery_finds_each_run_once_despite_the_latest_run_symlink(runs: Runs) -> None:
    assert (runs.project_a / "wandb" / "latest-run").is_symlink()
    ids = sorted(p.stem.removeprefix("run-") for p in (runs.main_file, runs.crashed_file))
    assert sorted(run_ids(LocalRunSource([runs.project_a]))) == ids
    assert sorted(run_ids(LocalRunSource([runs.project_a / "wandb"]))) == ids
    overlapping = [runs.project_a, runs.project_a / "wandb", runs.project_a / "wandb" / "latest-run", runs.main_file]
    assert sorted(run_ids(LocalRunSource(overlapping))) == ids


def test_discovery_accepts_a_run_folder_or_a_run_file(runs: Runs) -> None:
    run_id = runs.other_file.stem.removeprefix("run-")
    assert run_ids(LocalRunSource([runs.other_file.parent])) == [run_id]
    assert run_ids(LocalRunSource([str(runs.other_file)])) == [run_id]


def test_discovery_spans_several_dirs(runs: Runs) -> None:
    source = LocalRunSource([runs.project_a, runs.project_b])
    files = {p.stem.removeprefix("run-") for p in (runs.main_file, runs.crashed_file, runs.other_file)}
    refs = list(source.runs())
    assert sorted(ref.run_id for ref in refs) == sorted(files)
    names = {source.read(ref, None).meta.run_name for ref in refs}
    assert names == {"main-run", "crashed-run", "other-run"}


def test_a_missing_dir_is_a_clear_error_naming_it(runs: Runs, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        list(LocalRunSource([runs.project_a, missing]).runs())


def test_a_non_wandb_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    with pytest.raises(WandbFileError, match="notes.txt"):
        list(LocalRunSource([stray]).runs())
    with pytest.raises(WandbFileError, match="notes.txt"):
        read_run_file(stray)


def test_the_same_run_in_two_files_keeps_the_larger_with_a_warning(runs: Runs, tmp_path: Path) -> None:
    run_id = runs.other_file.stem.removeprefix("run-")
    partial = copy_run(runs.other_file, tmp_path / "copy" / "wandb" / f"offline-run-20000101_000000-{run_id}")
    partial.write_bytes(runs.other_file.read_bytes()[:2000])
    source = LocalRunSource([tmp_path / "copy", runs.project_b])
    (ref,) = list(source.runs())
    assert ref.label == str(runs.other_file)
    read = source.read(ref, None)
    assert any(run_id in w and str(partial) in w for w in read.warnings), read.warnings
    assert read.meta.state == "finished"


def test_a_dir_without_runs_yields_nothing(tmp_path: Path) -> None:
    assert run_ids(LocalRunSource([tmp_path])) == []


def test_read_through_the_source_filters_by_step(runs: Runs) -> None:
    source = LocalRunSource([runs.project_a])
    ref = next(r for r in source.runs() if r.label == str(runs.main_file))
    read = source.read(ref, 50)
    assert set(read.history.column("step").to_pylist()) == set(range(51, MAIN_STEPS))


# --- bulk decoding and chunking -----------------------------------------------


def odd_history_items() -> list[pb.HistoryItem]:
    """Items that take every path through the bulk decoder, including its protobuf fallback."""
    items = []

    def item(path: tuple[str, ...] | str, value_json: str = "", **typed: Any) -> None:
        it = pb.HistoryItem(value_json=value_json, **typed)
        if isinstance(path, tuple):
            it.nested_key.extend(path)
        else:
            it.key = path
        items.append(it)

    item(("loss",), "0.5")
    item("by_key", "1")
    item(("a", "b"), "2")  # a nested path
    item(("x" * 200,), "3")  # a name too long for a one-byte length
    item(("v",), json.dumps("y" * 300))  # a value too long for a one-byte length
    item(("ünï/ß",), "-1e-5")
    item(("\u0082\u0001z",), "4")  # its UTF-8 holds the bytes of the value tag
    item(("t",), number=1.5)  # typed only
    item(("n",))  # no value at all
    item(("",), "5")  # an empty name
    return items


def protobuf_view(item: pb.HistoryItem) -> tuple[str | tuple[str, ...], str]:
    nested = list(item.nested_key)
    path = nested[0] if len(nested) == 1 else (tuple(nested) if nested else item.key)
    if item.value_json:
        return path, item.value_json
    kind = item.WhichOneof("value")
    return path, json.dumps(getattr(item, kind)) if kind else "null"


def test_bulk_item_decoding_agrees_with_protobuf_on_odd_items() -> None:
    from pipelines.sources.wandb_bulk_decoding import decode_items

    items = odd_history_items() * 3
    decoded = decode_items([i.SerializeToString() for i in items], pb.HistoryItem, typed=True)
    got = sorted(
        list(zip(decoded.fast_pos.tolist(), decoded.fast_keys.to_pylist(), decoded.fast_values.to_pylist()))
        + list(zip(decoded.slow_pos, decoded.slow_paths, decoded.slow_values))
    )
    assert [(path, value) for _, path, value in got] == [protobuf_view(i) for i in items]
    assert len(decoded.fast_pos) >= 4 * 3, "the common layouts must take the bulk path"


def test_odd_items_in_a_file_come_back_as_protobuf_reads_them(tmp_path: Path) -> None:
    history = pb.Record()
    history.history.step.num = 5
    history.history.item.extend(odd_history_items())
    path = tmp_path / "run-odd.wandb"
    write_log(path, [history.SerializeToString()])
    read = read_run_file(path)
    expected = {}
    for item in odd_history_items():
        path_, value = protobuf_view(item)
        expected[(5, path_ if isinstance(path_, str) else ".".join(path_))] = value
    numeric = history_dict(read.history)
    rows = read.other.to_pydict()
    other = dict(zip(zip(rows["step"], rows["key"]), rows["value_json"]))
    assert numeric.keys() | other.keys() == expected.keys() and not numeric.keys() & other.keys()
    assert all(value == float(expected[key]) for key, value in numeric.items())
    assert all(value == expected[key] for key, value in other.items())


def test_small_parse_chunks_read_the_same_values(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.sources import wandb_bulk_decoding as wandb_local

    monkeypatch.setattr(wandb_local, "_CHUNK_BYTES", 2000)
    read = read_run_file(runs.main_file)
    assert same_floats(history_dict(read.history), expected_numeric(runs.specs["main"]["steps"]))
    assert other_dict(read.other) == expected_other(runs.specs["main"]["steps"])
    assert read.meta.summary["best_reward"] == USER_SUMMARY["best_reward"]
    assert read.meta.config == {**INIT_CONFIG, **CONFIG_UPDATE}


def test_a_record_that_is_not_protobuf_is_skipped_with_a_warning(tmp_path: Path) -> None:
    def history(step: int) -> bytes:
        record = pb.Record()
        record.history.step.num = step
        item = record.history.item.add(value_json=str(step * 10))
        item.nested_key.append("loss")
        return record.SerializeToString()

    garbage = b"\x12\x05\xff"  # says "history", then claims 5 bytes it does not have
    path = tmp_path / "run-garbage.wandb"
    write_log(path, [history(0), garbage, history(1), history(2)])
    bad = record_spans(path.read_bytes())[1]
    read = read_run_file(path)
    assert history_dict(read.history) == {(0, "loss"): 0.0, (1, "loss"): 10.0, (2, "loss"): 20.0}
    assert any(str(path) in w and f"byte {bad.start}" in w for w in read.warnings), read.warnings
