"""Fuzzing the readers with damaged copies of real files.

The `.wandb` logs are written once per module by the real `wandb` library in
offline mode; the NDJSON lines are the demo's own events (`pipelines/demo/`),
re-timed in every form the reader accepts and mixed with junk. Hypothesis
damages them (byte flips, truncations, insertions, deletions, corrupted chunk
headers, CRC-valid but wrong chunks and payloads, duplicated blocks, garbage
appended; for NDJSON also invalid UTF-8, huge lines, nested junk, odd `_time`
values, CRLF, a BOM, gzip members and damaged gzip) and checks what a user
relies on:

* `.wandb`: reading never raises, except `WandbFileError` when the 7-byte
  header itself is damaged; every case finishes within CASE_SECONDS; every
  record that ends before the first damaged byte comes back exactly as from
  the undamaged file, and so do the history rows of those records.
* NDJSON: every line is accounted for (events + rejects with a reason + blank
  lines == lines read, each line number at most once); every line that is
  byte-identical to a good generated line loads with its exact text and time;
  junk lines are rejected with the expected reason; results do not depend on
  how the file is split into reads or syncs, nor on gzip; damaged gzip loses
  nothing of the members before the damage.

`bench/fuzz.py` drives the same properties for minutes at a time.
"""

from __future__ import annotations

import _thread
import datetime as dt
import gzip
import json
import math
import os
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import note as hypothesis_note
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from wandb.proto.wandb_internal_pb2 import Record
from wandb_fixtures import BLOCK, HEADER, Span, chunk_starts, record_spans, write_log, write_runs

from pipelines.sources.base import EVENT_COLUMNS, REJECT_COLUMNS
from pipelines.sources.ndjson import NdjsonEventSource
from pipelines.sources.wandb_file import WandbFileError, iter_payloads
from pipelines.sources.wandb_segment_merging import read_run_segments
from pipelines.sources.wandb_segment_reader import read_run_file

# A case that takes longer than this is a hang (the slowest real case is well under a second).
CASE_SECONDS = 20.0
# The CI subset: examples per property (GRPO_FUZZ_SCALE multiplies them). A `.wandb`
# case costs ~10 ms, an NDJSON case ~100 ms (each read opens an in-memory DuckDB).
# bench/fuzz.py runs the same properties for minutes.
SCALE = float(os.environ.get("GRPO_FUZZ_SCALE", "1"))
WANDB_EXAMPLES = max(int(300 * SCALE), 1)
NDJSON_EXAMPLES = max(int(60 * SCALE), 1)
# Longest generated NDJSON line and most lines per file; bench/fuzz.py raises them.
HUGE_LINE_MAX = 150_000
MAX_LINES = 25


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # no .hypothesis/ folder in the working directory
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        print_blob=True,
    )


@pytest.fixture(scope="module", autouse=True)
def _hypothesis_storage_outside_the_working_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis caches constants under ./.hypothesis; keep that in a temporary folder."""
    saved = os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(tmp_path_factory.mktemp("hypothesis"))
    yield
    if saved is None:
        os.environ.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
    else:
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = saved


def note(text: str) -> None:
    """Hypothesis' note (printed with a failing example); a no-op outside a hypothesis test."""
    with suppress(InvalidArgument):
        hypothesis_note(text)


@contextmanager
def time_bound(what: str, seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Fail (rather than hang) when the body runs longer than `seconds`."""
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        _thread.interrupt_main()

    timer = threading.Timer(seconds, interrupt)
    start = time.perf_counter()
    timer.start()
    try:
        yield
    except KeyboardInterrupt:
        if fired.is_set():
            raise AssertionError(f"{what} did not finish within {seconds:g} s (a hang)") from None
        raise
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"{what} took {elapsed:.1f} s"


class CompactRepr:
    """Hypothesis prints dataclasses field by field; these print their own short __repr__."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


# =====================================================================================
# .wandb transaction logs
# =====================================================================================


def wandb_specs(root: Path) -> list[dict[str, Any]]:
    """Two real runs: one spanning several 32 KiB blocks with a multi-block record, one short crashed run."""
    rng = np.random.default_rng(20251126)
    steps = []
    for i in range(120):
        data: dict[str, Any] = {
            "train/loss": float(rng.normal()),
            "train/kl": float(rng.exponential()),
            "elo/base_model": float(rng.normal(1000, 30)),
            "reward": {"mean": float(rng.random()), "std": float(rng.random())},
            "tokens": int(rng.integers(0, 2**40)),
        }
        if i % 10 == 0:
            data["sample"] = f'completion {i}: "quoted" ünïcode'
        if i == 7:
            data["train/kl"] = math.nan
        if i == 8:
            data["train/kl"] = math.inf
        if i == 60:
            data["long_text"] = "z" * 70_000  # one record over three blocks
        steps.append({"step": i, "data": data})
    short = [{"step": i, "data": {"loss": float(rng.normal()), "elo/chaos_bot": 900.0 + i}} for i in range(12)]
    return [
        {
            "dir": str(root / "long"),
            "init": {"project": "fuzz", "name": "long-run", "group": "fuzz-sweep", "config": {"lr": 3e-4, "n": 4}},
            "steps": steps,
            "summary": {"best": 0.5},
            "exit_code": 0,
        },
        {
            "dir": str(root / "short"),
            "init": {"project": "fuzz", "name": "short-run", "config": {"a.b": 1}},
            "steps": short,
            "exit_code": 1,
        },
    ]


Row = tuple[int, str, Any]


@dataclass(frozen=True)
class WandbBase(CompactRepr):
    """An undamaged real log and everything read from it."""

    name: str
    data: bytes
    spans: tuple[Span, ...]  # records, found by the independent walker in wandb_fixtures
    chunk_starts: tuple[int, ...]  # every chunk header
    step_of_record: dict[int, int]  # span index -> step, for history records
    run_record_end: int
    run_id: str
    run_name: str
    history: tuple[Row, ...]
    other: tuple[Row, ...]
    kinds: tuple[str, ...]  # record_type of each record

    def __repr__(self) -> str:
        return f"WandbBase({self.name}, {len(self.data):,} bytes, {len(self.spans)} records)"

    @property
    def hot_positions(self) -> list[int]:
        """Offsets where damage is most interesting: chunk and record edges, block boundaries."""
        spots = {len(HEADER), len(self.data)}
        spots.update(self.chunk_starts)
        spots.update(s.end for s in self.spans)
        spots.update(range(BLOCK, len(self.data), BLOCK))
        spots.update(p - 1 for p in range(BLOCK, len(self.data), BLOCK))
        return sorted(p for p in spots if 0 <= p <= len(self.data))


def history_rows(table: pa.Table, value_column: str) -> list[Row]:
    """(step, key, value) per row; floats as their bit pattern so NaN compares equal to NaN."""
    steps = table.column("step").to_pylist()
    keys = table.column("key").to_pylist()
    values = table.column(value_column).to_pylist()
    if value_column == "value":
        values = [struct.pack("<d", v) if not math.isnan(v) else b"nan" for v in values]
    return list(zip(steps, keys, values))


def load_base(name: str, path: Path) -> WandbBase:
    data = path.read_bytes()
    spans = record_spans(data)
    warnings: list[str] = []
    intact = [(o, bytes(p)) for o, p in iter_payloads(path, warnings)]
    assert not warnings and intact == [(s.start, s.payload) for s in spans], "the reader disagrees on an intact file"
    assert any(len(s.chunk_types) > 2 for s in spans) or name != "long", "no multi-block record in the fixture"
    step_of_record, run_end, run_id, run_name = {}, None, "", ""
    kinds = []
    for i, span in enumerate(spans):
        record = Record.FromString(span.payload)
        kind = record.WhichOneof("record_type")
        kinds.append(kind)
        if kind == "history":
            steps = [int(json.loads(it.value_json)) for it in record.history.item if list(it.nested_key) == ["_step"]]
            step_of_record[i] = record.history.step.num if record.history.HasField("step") else steps[0]
        elif kind == "run" and run_end is None:
            run_end, run_id, run_name = span.end, record.run.run_id, record.run.display_name
    read = read_run_file(path)
    assert not read.warnings
    return WandbBase(
        name=name,
        data=data,
        spans=tuple(spans),
        chunk_starts=tuple(chunk_starts(data)),
        step_of_record=step_of_record,
        run_record_end=run_end,
        run_id=run_id,
        run_name=run_name,
        history=tuple(history_rows(read.history, "value")),
        other=tuple(history_rows(read.other, "value_json")),
        kinds=tuple(kinds),
    )


def make_wandb_corpus(root: Path) -> list[WandbBase]:
    """Write the runs with real wandb (offline, in a child process) and read them once undamaged."""
    specs = wandb_specs(root)
    write_runs(specs, root / "work")
    bases = []
    for spec in specs:
        (path,) = Path(spec["dir"]).glob("wandb/offline-run-*/run-*.wandb")
        bases.append(load_base(Path(spec["dir"]).name, path))
    return bases


@dataclass(frozen=True)
class Damaged(CompactRepr):
    data: bytes
    first: int  # offset of the first byte that may differ from the undamaged file
    steps: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Damaged({len(self.data):,} bytes, first={self.first}, steps={list(self.steps)})"


def _frame(ctype: int, payload: bytes) -> bytes:
    return struct.pack("<IHB", zlib.crc32(bytes([ctype]) + payload), len(payload), ctype) + payload


@st.composite
def wandb_damage(draw: st.DrawFn, base: WandbBase) -> Damaged:
    """One structural change to the real log (or none), then up to three byte-level ones."""
    data = bytearray(base.data)
    first = len(data)
    steps: list[str] = []

    def position(size: int) -> int:
        hot = [p for p in base.hot_positions if p <= size]
        return draw(st.one_of(st.integers(0, size), st.sampled_from(hot)) if hot else st.integers(0, size))

    structural = draw(
        st.sampled_from(
            ["none", "chunk_field", "retype_valid_crc", "payload_valid_crc", "absurd_values", "duplicate_block",
             "duplicate_slice"]
        )
    )  # fmt: skip
    if structural == "chunk_field":
        at = draw(st.sampled_from(base.chunk_starts))
        crc, length, ctype = struct.unpack_from("<IHB", data, at)
        which = draw(st.sampled_from(["crc", "length", "type"]))
        if which == "crc":
            crc = draw(st.integers(0, 2**32 - 1).filter(lambda c: c != crc))
        elif which == "length":
            length = draw(
                st.sampled_from([0, 1, max(length - 1, 0), length + 1, 0xFFFF, 32761]) | st.integers(0, 0xFFFF)
            )
        else:
            ctype = draw(st.sampled_from([0, 5, 7, 255]) | st.integers(0, 255))
        struct.pack_into("<IHB", data, at, crc, length, ctype)
        first = min(first, at)
        steps.append(f"chunk header at {at}: {which} -> crc={crc} length={length} type={ctype}")
    elif structural == "retype_valid_crc":
        # Damage the CRC cannot see: a chunk of another type whose checksum is right.
        at = draw(st.sampled_from(base.chunk_starts))
        _, length, ctype = struct.unpack_from("<IHB", data, at)
        new_type = draw(st.sampled_from([t for t in (1, 2, 3, 4) if t != ctype]))
        payload = bytes(data[at + 7 : at + 7 + length])
        data[at : at + 7 + length] = _frame(new_type, payload)
        first = min(first, at)
        steps.append(f"chunk at {at}: type {ctype} -> {new_type} with a valid CRC")
    elif structural == "payload_valid_crc":
        # A record whose bytes are wrong but framed and checksummed correctly: protobuf sees garbage.
        index = draw(st.integers(0, len(base.spans) - 1))
        payload = bytearray(base.spans[index].payload)
        how = draw(st.sampled_from(["flip", "cut", "insert", "random"]))
        if how == "flip" and payload:
            i = draw(st.integers(0, len(payload) - 1))
            payload[i] ^= draw(st.integers(1, 255))
        elif how == "cut":
            payload = payload[: draw(st.integers(0, len(payload)))]
        elif how == "insert":
            i = draw(st.integers(0, len(payload)))
            payload[i:i] = draw(st.binary(min_size=1, max_size=40))
        else:
            payload = bytearray(draw(st.binary(min_size=0, max_size=300)))
        payloads = [s.payload for s in base.spans]
        payloads[index] = bytes(payload)
        data = bytearray(_write_log_bytes(payloads))
        first = min(first, base.spans[index].start)
        steps.append(f"record {index} at {base.spans[index].start}: payload {how}, valid CRC")
    elif structural == "absurd_values":
        # A well-formed record (valid protobuf, valid CRC) whose values no sane writer produces.
        kind = draw(st.sampled_from(sorted(set(base.kinds))))  # rare kinds (run, exit) as often as history
        index = draw(st.sampled_from([i for i, k in enumerate(base.kinds) if k == kind]))
        record = Record.FromString(base.spans[index].payload)
        what = absurd_record(draw, record)
        payloads = [s.payload for s in base.spans]
        payloads[index] = record.SerializeToString()
        data = bytearray(_write_log_bytes(payloads))
        first = min(first, base.spans[index].start)
        steps.append(f"record {index} at {base.spans[index].start}: {what}")
    elif structural == "duplicate_block" and len(data) > BLOCK:
        k = draw(st.integers(0, len(data) // BLOCK - 1))
        dest = draw(st.sampled_from([(k + 1) * BLOCK, len(data)]))
        block = bytes(data[k * BLOCK : (k + 1) * BLOCK])
        data[dest:dest] = block
        first = min(first, dest)
        steps.append(f"block {k} duplicated at {dest}")
    elif structural == "duplicate_slice":
        src = position(len(data))
        n = draw(st.integers(1, 5000))
        dest = position(len(data))
        chunk = bytes(data[src : src + n])
        data[dest:dest] = chunk
        first = min(first, dest)
        steps.append(f"{len(chunk)} bytes from {src} duplicated at {dest}")

    for _ in range(draw(st.integers(0 if structural != "none" else 1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "zero", "append"]))
        size = len(data)
        if kind == "flip" and size:
            at = min(position(size), size - 1)
            mask = draw(st.integers(1, 255))
            data[at] ^= mask
            steps.append(f"flip byte {at} ^ {mask:#x}")
        elif kind == "truncate":
            at = position(size)
            del data[at:]
            steps.append(f"truncate at {at}")
        elif kind == "insert":
            at = position(size)
            blob = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=64),
                    st.just(b"\x00" * 7),
                    st.builds(_frame, st.integers(0, 255), st.binary(max_size=40)),  # a forged chunk
                )
            )
            data[at:at] = blob
            steps.append(f"insert {len(blob)} bytes at {at}")
        elif kind == "delete":
            at = position(size)
            n = draw(st.integers(1, 300))
            del data[at : at + n]
            steps.append(f"delete {n} bytes at {at}")
        elif kind == "zero":
            at = position(size)
            n = draw(st.integers(1, 200))
            data[at : at + n] = bytes(len(data[at : at + n]))
            steps.append(f"zero {n} bytes at {at}")
        else:
            at = size
            data += draw(st.binary(min_size=1, max_size=500))
            steps.append(f"append garbage at {at}")
        first = min(first, at)
    return Damaged(bytes(data), first, tuple(steps))


EXTREME_INTS = [0, -1, 1, 2**31 - 1, -(2**31), 2**62, -(2**62), 2**63 - 1, -(2**63)]
ODD_JSON = ["1e999", "-1e999", "NaN", "-0", '"s"', "1_000", "", "{", "[1,2]", "true", "null", "0x10", "Infinity",
            "-Infinity", "1e-400", " 1", "１", "123456789012345678901234567890", "1e300", "-1e300", "\u0000"]  # fmt: skip


def absurd_record(draw: st.DrawFn, record: Record) -> str:
    """Set extreme or odd values in `record` (in place); describe what changed."""
    kind = record.WhichOneof("record_type")
    if kind == "run":
        record.run.start_time.seconds = draw(st.sampled_from(EXTREME_INTS + [253402300800, -62135596801]))
        record.run.start_time.nanos = draw(st.sampled_from([0, -1, 999_999_999, 2**31 - 1, -(2**31)]))
        record.run.display_name = draw(st.sampled_from(["", "\x00", "x" * 70_000, "../../etc"]))
        return f"run start_time {record.run.start_time.seconds}.{record.run.start_time.nanos}"
    if kind == "history":
        if draw(st.booleans()):
            record.history.step.num = draw(st.sampled_from(EXTREME_INTS))
        items = record.history.item
        for _ in range(draw(st.integers(1, 3))):
            if not items:
                break
            item = items[draw(st.integers(0, len(items) - 1))]
            item.value_json = draw(st.sampled_from(ODD_JSON))
            if draw(st.booleans()):
                del item.nested_key[:]
                item.nested_key.extend(
                    draw(st.lists(st.sampled_from(["", "_step", "_timestamp", "a.b", "\x00", "k"]), max_size=3))
                )
        return f"history step {record.history.step.num} with odd values"
    if kind in ("summary", "config"):
        updates = getattr(record, kind)
        item = updates.update.add()
        item.key = draw(st.sampled_from(["", "_wandb", "a.b", "k"]))
        item.value_json = draw(st.sampled_from(ODD_JSON))
        if draw(st.booleans()):
            removed = updates.remove.add()
            removed.nested_key.extend(draw(st.lists(st.sampled_from(["", "_wandb", "k", "x"]), max_size=3)))
        return f"{kind} with odd items"
    if kind == "exit":
        record.exit.exit_code = draw(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31)]))
        record.exit.runtime = draw(st.sampled_from([0, -1, 2**31 - 1, -(2**31)]))
        return f"exit {record.exit.exit_code} runtime {record.exit.runtime}"
    return f"{kind} unchanged"


def _write_log_bytes(payloads: list[bytes]) -> bytes:
    """The bytes wandb-core would write for these payloads (wandb_fixtures.write_log, in memory)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "run-x.wandb"
        write_log(p, payloads)
        return p.read_bytes()


def check_wandb_case(base: WandbBase, damaged: Damaged, path: Path, after_step: int | None = None) -> str:
    """Read a damaged copy of `base`; assert the properties; return what happened (for statistics)."""
    for s in damaged.steps:
        note(s)
    path.write_bytes(damaged.data)
    warnings: list[str] = []
    try:
        with time_bound(f"iter_payloads on {damaged.steps}"):
            got = [(o, bytes(p)) for o, p in iter_payloads(path, warnings)]
    except WandbFileError as exc:
        assert damaged.first < len(HEADER), f"WandbFileError without header damage: {exc}"
        assert str(path) in str(exc)
        with pytest.raises(WandbFileError):
            read_run_file(path)
        return "bad header"

    intact = [(s.start, s.payload) for s in base.spans if s.end <= damaged.first]
    assert got[: len(intact)] == intact, "a record before the first damaged byte was lost or changed"
    if damaged.data == base.data:
        assert got == [(s.start, s.payload) for s in base.spans] and not warnings
    assert all(w.startswith(str(path)) for w in warnings), warnings

    with time_bound(f"read_run_file on {damaged.steps}"):
        read = read_run_file(path, after_step=after_step)
    assert all(w.startswith(str(path)) for w in read.warnings), read.warnings
    intact_steps = {
        step
        for i, step in base.step_of_record.items()
        if base.spans[i].end <= damaged.first and (after_step is None or step > after_step)
    }
    for name, table, column, rows in (
        ("history", read.history, "value", base.history),
        ("history_other", read.other, "value_json", base.other),
    ):
        expected = Counter(r for r in rows if r[0] in intact_steps)
        missing = expected - Counter(history_rows(table, column))
        assert not missing, f"{name} rows of intact records lost: {list(missing)[:5]}"
    if base.run_record_end is not None and base.run_record_end <= damaged.first:
        assert (read.meta.run_id, read.meta.run_name) == (base.run_id, base.run_name)
    return "warned" if read.warnings else "clean"


@pytest.fixture(scope="module")
def wandb_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[WandbBase]:
    return make_wandb_corpus(tmp_path_factory.mktemp("fuzz-wandb"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per module for the damaged copies (hypothesis cannot use function-scoped tmp_path)."""
    return tmp_path_factory.mktemp("fuzz-scratch")


def test_the_fixture_logs_are_real_multi_block_wandb_files(wandb_corpus: list[WandbBase]) -> None:
    long = wandb_corpus[0]
    assert len(long.data) > 3 * BLOCK
    assert any(s.chunk_types[0] == 2 and len(s.chunk_types) >= 3 for s in long.spans)
    assert len(long.step_of_record) == 120 and long.run_name == "long-run"
    assert len(long.history) > 120 * 5


def wandb_case(data: st.DataObject, corpus: list[WandbBase], scratch: Path) -> str:
    """One fuzz case: a damaged copy of one of the real logs (shared with bench/fuzz.py)."""
    base = data.draw(st.sampled_from(corpus), label="file")
    damaged = data.draw(wandb_damage(base), label="damage")
    after_step = data.draw(st.one_of(st.none(), st.integers(-1, 130)), label="after_step")
    return check_wandb_case(base, damaged, scratch / f"run-{base.name}.wandb", after_step)


@fuzz_settings(WANDB_EXAMPLES)
@given(data=st.data())
def test_a_damaged_wandb_log_keeps_every_record_before_the_damage_and_never_crashes(
    wandb_corpus: list[WandbBase], scratch: Path, data: st.DataObject
) -> None:
    wandb_case(data, wandb_corpus, scratch)


@fuzz_settings(max(WANDB_EXAMPLES // 3, 1))
@given(data=st.data())
def test_a_resumed_run_whose_newer_segment_is_damaged_keeps_every_step_of_the_intact_one(
    wandb_corpus: list[WandbBase], scratch: Path, data: st.DataObject
) -> None:
    """Two segments of one run: an intact one and a damaged copy written after it. The merge never fails
    (a segment whose header is damaged is skipped, with a warning naming it), stores each (step, key) once,
    and loses no step of the intact segment; warnings name a file."""
    base = data.draw(st.sampled_from(wandb_corpus), label="base")
    damaged = data.draw(wandb_damage(base), label="damage")
    for s in damaged.steps:
        note(s)
    older, newer = (scratch / name / f"run-{base.name}.wandb" for name in ("segment-1", "segment-2"))
    for path, content in ((older, base.data), (newer, damaged.data)):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    after_step = data.draw(st.one_of(st.none(), st.integers(-1, 130)), label="after_step")
    new = data.draw(st.sampled_from([set(), {1}]), label="new segments")
    with time_bound(f"read_run_segments on {damaged.steps}"):
        read = read_run_segments([older, newer], after_step, new_segments=new)
    try:
        alone = read_run_file(newer)
    except WandbFileError as exc:  # a damaged header: the segment is skipped, named, and the intact one read
        assert damaged.first < len(HEADER) and str(newer) in str(exc)
        assert any(w.startswith(f"{newer}: skipped") for w in read.warnings), read.warnings
        alone = None
    # the steps the damaged newer segment logs at all (a step's winner is decided over both tables)
    newer_steps = (
        set(alone.history.column("step").to_pylist()) | set(alone.other.column("step").to_pylist()) if alone else set()
    )
    for table, column, rows, newer_rows in (
        (read.history, "value", base.history, history_rows(alone.history, "value") if alone else []),
        (read.other, "value_json", base.other, history_rows(alone.other, "value_json") if alone else []),
    ):
        got = Counter((step, key) for step, key, _ in history_rows(table, column))
        # a step is taken from one segment only (a damaged segment may repeat one of its own records)
        own = Counter((step, key) for step, key, _ in newer_rows)
        twice = [k for k, n in got.items() if n > max(own[k], 1)]
        assert not twice, f"steps taken from both segments: {twice[:5]}"
        # every step survives; a step the newer segment logs again is wholly the newer segment's
        wanted = {step for step, _, _ in rows if after_step is None or step > after_step}
        kept = {step for step, _ in got}
        lost = wanted - kept - newer_steps
        assert not lost, f"steps of the intact segment lost: {sorted(lost)[:5]}"
        intact_keys = {
            (st, k) for st, k, _ in rows if (after_step is None or st > after_step) and st not in newer_steps
        }
        assert intact_keys <= set(got), (
            f"values of steps only the intact segment logs lost: {sorted(intact_keys - set(got))[:5]}"
        )
    assert all(w.startswith((str(older), str(newer), "run ")) for w in read.warnings), read.warnings


def test_every_single_byte_flip_of_the_header_is_a_clear_error(wandb_corpus: list[WandbBase], tmp_path: Path) -> None:
    base = wandb_corpus[1]
    path = tmp_path / "run-header.wandb"
    for at in range(len(HEADER)):
        for mask in (0x01, 0x80, 0xFF):
            data = bytearray(base.data)
            data[at] ^= mask
            path.write_bytes(bytes(data))
            with pytest.raises(WandbFileError, match="run-header.wandb"):
                read_run_file(path)


def test_every_truncation_of_a_real_log_reads_the_records_before_the_cut(
    wandb_corpus: list[WandbBase], tmp_path: Path
) -> None:
    """Cuts at and next to record edges, chunk headers and block boundaries (a run still being written)."""
    path = tmp_path / "run-cut.wandb"
    short, long = wandb_corpus[1], wandb_corpus[0]
    blocks = range(BLOCK, len(long.data) + 1, BLOCK)
    long_cuts = {b + d for b in blocks for d in (-8, -7, -6, -1, 0, 1, 6, 7, 8)}
    long_cuts |= set(long.hot_positions[:: max(len(long.hot_positions) // 60, 1)])
    for base, cuts in ((short, {p + d for p in short.hot_positions for d in (0, 1, 7)}), (long, long_cuts)):
        for cut in sorted(c for c in cuts if 0 <= c <= len(base.data)):
            check_wandb_case(base, Damaged(base.data[:cut], cut, (f"truncate at {cut}",)), path)


# =====================================================================================
# NDJSON events
# =====================================================================================

BOM = b"\xef\xbb\xbf"
GOOD, JUNK, BLANK = "good", "junk", "blank"


def demo_event_lines(n_per_kind: int = 40) -> list[str]:
    """Event lines exactly as `grpo demo` writes them: rollout, error, inference, extraction, heartbeat."""
    from pipelines.demo.event_stream import _events
    from pipelines.demo.league_truth import demo_runs

    parts, _ = _events(demo_runs(seed=7, steps=400), dt.datetime(2026, 1, 1, tzinfo=dt.UTC), np.random.default_rng(3))
    lines: list[str] = []
    for part in parts:
        lines += part.lines[:n_per_kind]
    return lines


DEMO_LINES = demo_event_lines()


def _short(data: bytes, keep: int = 120) -> str:
    return repr(data) if len(data) <= keep else f"{data[:keep]!r}...<{len(data):,} bytes>"


@dataclass(frozen=True)
class Line(CompactRepr):
    text: bytes  # without its terminator
    kind: str  # good | junk | blank
    time_us: int | None = None  # good lines: the expected event time
    time_tolerance_us: int = 0  # epoch numbers go through float64: a µs or two
    reason: str | None = None  # junk lines: a word the reject reason must contain

    def __repr__(self) -> str:  # failing examples stay readable when a line is 300 KB
        return f"Line({self.kind}, {_short(self.text)}, time_us={self.time_us}, reason={self.reason!r})"


def _utc_us(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


@st.composite
def time_forms(draw: st.DrawFn) -> tuple[Any, int, int]:
    """(a `_time` value in one of the accepted forms, its instant in µs, the tolerance in µs)."""
    t = draw(
        st.datetimes(min_value=dt.datetime(1973, 6, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC))
    )
    form = draw(st.sampled_from(["iso_ms_z", "iso_offset", "iso_space", "iso_ns", "s", "ms", "us", "ns", "digits"]))
    us = _utc_us(t)
    if form == "iso_ms_z":
        us -= us % 1000
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z", us, 0
    if form == "iso_offset":
        minutes = draw(st.integers(-14 * 60, 14 * 60))
        local = t.astimezone(dt.timezone(dt.timedelta(minutes=minutes)))
        return local.isoformat(), us, 0
    if form == "iso_space":
        return t.strftime("%Y-%m-%d %H:%M:%S.%f"), us, 0  # no offset: UTC
    if form == "iso_ns":
        extra = draw(st.integers(0, 999))
        return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{extra:03d}Z", us, 0  # digits below the µs dropped
    seconds = us // 1_000_000
    if form == "s":
        return seconds, seconds * 1_000_000, 0
    if form == "ms":
        return us // 1000, (us // 1000) * 1000, 1
    if form == "us":
        return us, us, 1
    if form == "ns":
        return us * 1000 + draw(st.integers(0, 999)), us, 2  # float64 arithmetic: within 2 µs
    return str(seconds), seconds * 1_000_000, 0


ODD_TIMES = [None, True, {"a": 1}, [1], "", "x", "epoch", "infinity", "-1", -5, "2024-02-30T00:00:00Z",
             "99999-01-01", "0001-01-01T00:00:00+01:00", "   2024-01-01", 1e300]  # fmt: skip


@st.composite
def good_line(draw: st.DrawFn) -> Line:
    record = json.loads(draw(st.sampled_from(DEMO_LINES)))
    value, us, tol = draw(time_forms())
    record["_time"] = value
    extra = draw(st.sampled_from(["", "unicode", "quotes", "nested", "huge", "deep"]))
    if extra == "unicode":
        record["note"] = "Ωμέγα 🚀 ü \u2028 \u0000"
    elif extra == "quotes":
        record["message"] = '\'); drop table x; -- "q" \\ /'
    elif extra == "nested":
        record["nested"] = {"a": [1, {"b": None}], "c": {"d": [True, 1.5e300]}}
    elif extra == "huge":
        record["blob"] = "h" * draw(st.integers(60_000, HUGE_LINE_MAX))
    elif extra == "deep":
        depth = draw(st.integers(100, 5000))
        record["deep"] = "DEEP"
        text = json.dumps(record, ensure_ascii=False).replace('"DEEP"', "[" * depth + "]" * depth)
        return Line(text.encode(), GOOD, us, tol)
    ascii_only = draw(st.booleans())
    text = json.dumps(record, ensure_ascii=ascii_only)
    return Line(text.encode(), GOOD, us, tol)


@st.composite
def junk_line(draw: st.DrawFn) -> Line:
    good = json.loads(draw(st.sampled_from(DEMO_LINES)))
    text = json.dumps(good).encode()
    kind = draw(
        st.sampled_from(
            ["utf8", "truncated", "missing", "odd_time", "not_object", "deep_array", "nul", "words", "huge"]
        )
    )
    if kind == "utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]))
        at = draw(st.integers(0, len(text)))
        return Line(text[:at] + bad + text[at:], JUNK, reason="UTF-8")
    if kind == "truncated":
        return Line(text[: draw(st.integers(1, len(text) - 1))], JUNK, reason="JSON")
    if kind == "missing":
        good.pop("_time")
        return Line(json.dumps(good).encode(), JUNK, reason="missing _time")
    if kind == "odd_time":
        good["_time"] = draw(st.sampled_from(ODD_TIMES))
        return Line(json.dumps(good).encode(), JUNK, reason="_time")
    if kind == "not_object":
        value = draw(st.sampled_from([[1, 2], "text", 42, None, True, [good]]))
        return Line(json.dumps(value).encode(), JUNK, reason="not a JSON object")
    if kind == "deep_array":
        depth = draw(st.integers(1, 20000))
        return Line(b"[" * depth + b"]" * draw(st.sampled_from([depth, 0, depth // 2])), JUNK, reason="")
    if kind == "nul":
        at = draw(st.integers(1, len(text) - 1))
        return Line(text[:at] + b"\x00" + text[at:], JUNK, reason="JSON")
    if kind == "huge":
        return Line(b"x" * draw(st.integers(70_000, HUGE_LINE_MAX)), JUNK, reason="JSON")
    words = draw(
        st.sampled_from([b"Traceback (most recent call last): worker-3 crashed", b"'); drop table x; --", b"{", b"}"])
    )
    return Line(words, JUNK, reason="JSON")


BLANKS = [b"", b"   ", b"\t", b" \t \x0b\x0c "]


@st.composite
def ndjson_lines(draw: st.DrawFn) -> list[Line]:
    kinds = draw(st.lists(st.sampled_from([GOOD] * 6 + [JUNK] * 3 + [BLANK]), min_size=1, max_size=MAX_LINES))
    out = []
    for k in kinds:
        if k == GOOD:
            out.append(draw(good_line()))
        elif k == JUNK:
            out.append(draw(junk_line()))
        else:
            out.append(Line(draw(st.sampled_from(BLANKS)), BLANK))
    return out


@dataclass(frozen=True)
class NdjsonFile(CompactRepr):
    lines: tuple[Line, ...]
    data: bytes  # the file's bytes
    bom: bool

    def __repr__(self) -> str:
        return f"NdjsonFile(bom={self.bom}, data={_short(self.data, 400)}, lines={list(self.lines)})"


@st.composite
def ndjson_files(draw: st.DrawFn) -> NdjsonFile:
    lines = draw(ndjson_lines())
    crlf = draw(st.sampled_from(["lf", "crlf", "mixed"]))
    bom = draw(st.booleans())
    out = bytearray(BOM if bom else b"")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        term = b"\r\n" if crlf == "crlf" or (crlf == "mixed" and draw(st.booleans())) else b"\n"
        if last and draw(st.booleans()):
            term = b""  # the writer has not finished the last line (or never ends files with a newline)
        out += line.text + term
    return NdjsonFile(tuple(lines), bytes(out), bom)


@st.composite
def byte_damage(draw: st.DrawFn, data: bytes) -> tuple[bytes, list[str]]:
    """Up to three byte-level changes anywhere in `data`."""
    out = bytearray(data)
    steps = []
    for _ in range(draw(st.integers(0, 3))):
        size = len(out)
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "bad_utf8", "newline", "append"]))
        at = draw(st.integers(0, size))
        if kind == "flip" and size:
            at = min(at, size - 1)
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "delete":
            del out[at : at + draw(st.integers(1, 64))]
        elif kind == "bad_utf8":
            out[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
        elif kind == "newline":
            out[at:at] = draw(st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n"]))
        else:
            out += draw(st.binary(min_size=1, max_size=200))
        steps.append(f"{kind} at {at}")
    return bytes(out), steps


@dataclass
class Read:
    events: list[dict[str, Any]]
    rejects: list[dict[str, Any]]
    warnings: list[str]
    lines: int  # the last chunk's cursor: lines consumed
    consumed: int
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_ndjson(path: Path, cursors: dict[str, dict] | None = None, chunk_bytes: int | None = None) -> Read:
    kwargs = {"chunk_bytes": chunk_bytes} if chunk_bytes else {}
    with time_bound(f"reading {path.name}"):
        chunks = list(NdjsonEventSource([path], time_field="_time", **kwargs).chunks(cursors or {}))
    events = pa.concat_tables([c.events for c in chunks] or [EVENT_COLUMNS.empty_table()])
    rejects = pa.concat_tables([c.rejects for c in chunks] or [REJECT_COLUMNS.empty_table()])
    cursor = chunks[-1].cursor if chunks else (cursors or {}).get(str(path), {})
    ev = events.to_pydict()
    ev["time_us"] = events.column("time").cast(pa.int64()).to_pylist()
    rows = [
        {"line": ln, "record": rec, "time_us": us, "event_key": key}
        for ln, rec, us, key in zip(ev["line"], ev["record"], ev["time_us"], ev["event_key"])
    ]
    return Read(
        events=rows,
        rejects=rejects.select(["line", "reason", "raw"]).to_pylist(),
        warnings=[w for c in chunks for w in c.warnings],
        lines=int(cursor.get("lines") or 0),
        consumed=int(cursor.get("bytes") or 0),
        cursors={str(path): cursor} if cursor else {},
    )


def physical_lines(data: bytes) -> tuple[list[bytes], bool]:
    """(lines without their LF, whether the last one is unterminated), as the file holds them."""
    parts = data.split(b"\n")
    if parts[-1] == b"":
        return parts[:-1], False
    return parts, True


def _content(raw: bytes, number: int, data: bytes) -> bytes:
    """A line's text as the reader sees it: no BOM on line 1, no CR before the LF."""
    if number == 1 and data.startswith(BOM):
        raw = raw[len(BOM) :]
    return raw[:-1] if raw.endswith(b"\r") else raw


def check_ndjson_accounting(data: bytes, got: Read, generated: tuple[Line, ...]) -> dict[str, int]:
    """Every line accounted for; byte-identical good lines load exactly; intact junk is rejected."""
    lines, open_tail = physical_lines(data)
    event_at = {e["line"]: e for e in got.events}
    reject_at = {r["line"]: r for r in got.rejects}
    assert len(event_at) == len(got.events), "two events with one line number"
    assert len(reject_at) == len(got.rejects), "two rejects with one line number"
    assert not event_at.keys() & reject_at.keys(), "a line both loaded and rejected"
    good = {line.text: line for line in generated if line.kind == GOOD}
    junk = {line.text: line for line in generated if line.kind == JUNK}
    blanks = 0
    for number, raw in enumerate(lines, start=1):
        if number > got.lines:
            # Only an unterminated last line may be left for a later read.
            assert open_tail and number == len(lines) == got.lines + 1, f"line {number} of {len(lines)} never read"
            assert number not in event_at and number not in reject_at
            continue
        text = _content(raw, number, data)
        if not text.strip(b" \t\r\x0b\x0c"):
            blanks += 1
            assert number not in event_at and number not in reject_at, f"blank line {number} stored"
            continue
        assert (number in event_at) != (number in reject_at), f"line {number} neither loaded nor rejected"
        if number in reject_at:
            reject = reject_at[number]
            assert reject["reason"], f"line {number} rejected without a reason"
            assert len(reject["raw"]) <= 64 * 1024
        terminated = number < len(lines) or not open_tail
        if text in good and terminated:
            line = good[text]
            assert number in event_at, f"good line {number} not loaded: {reject_at[number]['reason']}"
            event = event_at[number]
            assert event["record"].encode() == text, f"line {number} record changed"
            assert abs(event["time_us"] - line.time_us) <= line.time_tolerance_us, (
                f"line {number}: time {event['time_us']} != {line.time_us}"
            )
        elif text in junk and terminated:
            assert number in reject_at, f"junk line {number} loaded: {text[:80]!r}"
            assert junk[text].reason in reject_at[number]["reason"], (junk[text].reason, reject_at[number]["reason"])
            expected_raw = text.decode("utf-8", "replace")[: 64 * 1024]
            assert reject_at[number]["raw"] == expected_raw, f"line {number}: raw text changed"
    assert len(got.events) + len(got.rejects) + blanks == got.lines, "events + rejects + blank lines != lines read"
    assert got.lines in (len(lines), len(lines) - 1)
    return {"lines": len(lines), "events": len(got.events), "rejects": len(got.rejects), "blanks": blanks}


def is_json_object(text: bytes) -> bool:
    try:
        return isinstance(json.loads(text.decode("utf-8")), dict)
    except (ValueError, RecursionError):
        return False


def comparable(read: Read) -> tuple[list, list]:
    """Events and rejects without the file identity (source/event_key), to compare two files."""
    return (
        [(e["line"], e["record"], e["time_us"]) for e in read.events],
        [(r["line"], r["reason"], r["raw"]) for r in read.rejects],
    )


def check_ndjson_case(
    f: NdjsonFile, damaged: bytes, steps: list[str], folder: Path, chunk_bytes: int | None
) -> dict[str, int]:
    for s in steps:
        note(s)
    path = folder / "events.ndjson"
    path.write_bytes(damaged)
    got = read_ndjson(path)
    assert not got.warnings, got.warnings
    stats = check_ndjson_accounting(damaged, got, f.lines)
    if damaged == f.data:
        # An unterminated last line is read only once it is a whole JSON object.
        tail = f.lines[-1]
        tail_left = not f.data.endswith(b"\n") and not is_json_object(tail.text)
        assert len(got.events) == sum(1 for line in f.lines if line.kind == GOOD), "not every good line loaded"
        junk = sum(1 for line in f.lines if line.kind == JUNK)
        assert len(got.rejects) == junk - (1 if tail_left and tail.kind == JUNK else 0), "not every junk line rejected"
    if chunk_bytes:
        # The same file read through tiny reads and chunks: the same answer.
        small = read_ndjson(path, chunk_bytes=chunk_bytes)
        assert comparable(small) == comparable(got), f"chunk_bytes={chunk_bytes} changed the result"
        assert [e["event_key"] for e in small.events] == [e["event_key"] for e in got.events]
        assert (small.lines, small.consumed) == (got.lines, got.consumed)
    return stats


@dataclass(frozen=True)
class Gzipped(CompactRepr):
    data: bytes
    member_ends: tuple[int, ...]  # compressed offset where each member ends
    plain_ends: tuple[int, ...]  # uncompressed offset where each member's text ends

    def __repr__(self) -> str:
        return f"Gzipped({len(self.data):,} bytes, member_ends={self.member_ends}, plain_ends={self.plain_ends})"


@st.composite
def gzip_members(draw: st.DrawFn, plain: bytes) -> Gzipped:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(plain)), max_size=3))) | {len(plain)})
    out, member_ends, start = bytearray(), [], 0
    for cut in cuts:
        out += gzip.compress(plain[start:cut], compresslevel=draw(st.sampled_from([1, 6, 9])), mtime=0)
        member_ends.append(len(out))
        start = cut
    if draw(st.booleans()):
        out += b"\x00" * draw(st.integers(1, 1024))  # zero padding, as tape/archive tools leave
    return Gzipped(bytes(out), tuple(member_ends), tuple(cuts))


def check_gzip_case(f: NdjsonFile, gz: Gzipped, damage: list[tuple[str, int, bytes]], folder: Path) -> str:
    """A gzip copy of `f`: undamaged it reads like the plain file; damaged it keeps whole members before the damage."""
    plain_path = folder / "plain.ndjson"
    plain_path.write_bytes(f.data)
    plain = read_ndjson(plain_path)
    data = bytearray(gz.data)
    first = len(data)
    for kind, at, blob in damage:
        note(f"gzip {kind} at {at}")
        if kind == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= blob[0] or 1
        elif kind == "truncate":
            del data[at:]
        else:
            at = len(data)
            data += blob
        first = min(first, at)
    path = folder / "events.bin"  # recognised by its bytes, not its name
    path.write_bytes(bytes(data))
    got = read_ndjson(path)
    if not data.startswith(b"\x1f\x8b"):
        # The damage hit the magic bytes: it is no gzip file any more, and is read as text.
        assert not got.warnings, got.warnings
        check_ndjson_accounting(bytes(data), got, ())
        return "not gzip"
    plain_events, plain_rejects = comparable(plain)
    got_events, got_rejects = comparable(got)
    if bytes(data) == gz.data:
        assert not got.warnings
        assert (got_events, got_rejects, got.lines) == (plain_events, plain_rejects, plain.lines)
        return "intact"
    for w in got.warnings:
        assert str(path) in w and "gzip" in w, w
    # Lines whose newline lies inside members that end before the damage load exactly as in the plain file.
    intact_text = max([p for p, m in zip(gz.plain_ends, gz.member_ends) if m <= first], default=0)
    whole_lines = f.data[:intact_text].count(b"\n")
    assert got.lines >= whole_lines, f"lost lines of intact gzip members ({got.lines} < {whole_lines})"
    assert [e for e in got_events if e[0] <= whole_lines] == [e for e in plain_events if e[0] <= whole_lines]
    assert [r for r in got_rejects if r[0] <= whole_lines] == [r for r in plain_rejects if r[0] <= whole_lines]
    lines = {e[0] for e in got_events} | {r[0] for r in got_rejects}
    assert len(lines) == len(got_events) + len(got_rejects) and all(0 < n <= got.lines for n in lines)
    if all(kind == "truncate" for kind, _, _ in damage):
        # A cut stream reads as a file still being written: what it holds so far is what the
        # plain file holds, except perhaps a last line cut short. (Other damage to the last
        # member can also look unfinished: zlib then never reaches the CRC, see bench/fuzz.py.)
        assert not got.warnings, got.warnings
        assert got.lines <= plain.lines
        assert [e for e in got_events if e[0] < got.lines] == [e for e in plain_events if e[0] < got.lines]
    return "warned" if got.warnings else "quiet"


def ndjson_case(data: st.DataObject, scratch: Path) -> str:
    f = data.draw(ndjson_files(), label="file")
    damaged, steps = data.draw(byte_damage(f.data), label="damage")
    chunk_bytes = data.draw(st.one_of(st.none(), st.integers(1, 4096)), label="chunk_bytes")
    if chunk_bytes:
        # A line longer than a read is re-joined on every read (quadratic): keep reads per file bounded.
        chunk_bytes = max(chunk_bytes, len(damaged) // 512)
    folder = scratch / "ndjson"
    folder.mkdir(exist_ok=True)
    check_ndjson_case(f, damaged, steps, folder, chunk_bytes)
    return "damaged" if damaged != f.data else "intact"


@fuzz_settings(NDJSON_EXAMPLES)
@given(data=st.data())
def test_every_ndjson_line_is_accounted_for_and_undamaged_lines_load_exactly(
    scratch: Path, data: st.DataObject
) -> None:
    ndjson_case(data, scratch)


def gzip_case(data: st.DataObject, scratch: Path) -> str:
    f = data.draw(ndjson_files(), label="file")
    gz = data.draw(gzip_members(f.data), label="gzip")
    damage = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "truncate", "append"]),
                st.integers(0, len(gz.data)),
                st.binary(min_size=1, max_size=64),
            ),
            max_size=2,
        ),
        label="damage",
    )
    folder = scratch / "gzip"
    folder.mkdir(exist_ok=True)
    return check_gzip_case(f, gz, damage, folder)


@fuzz_settings(NDJSON_EXAMPLES)
@given(data=st.data())
def test_gzip_reads_like_the_plain_file_and_damage_loses_nothing_before_it(scratch: Path, data: st.DataObject) -> None:
    gzip_case(data, scratch)


def check_incremental_case(f: NdjsonFile, split: int, folder: Path) -> None:
    """A file read in two syncs, split anywhere, loads every good line once, like one read."""
    path = folder / "growing.ndjson"
    path.write_bytes(f.data)
    whole = read_ndjson(path)
    path.write_bytes(f.data[:split])
    first = read_ndjson(path)
    with open(path, "ab") as fh:
        fh.write(f.data[split:])
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000))
    second = read_ndjson(path, first.cursors)
    events = first.events + second.events
    # (by line: byte-identical lines are one event by design and share one event_key)
    assert len({e["line"] for e in events}) == len(events), "a line stored twice"
    assert second.lines == whole.lines and second.consumed == whole.consumed
    good = {line.text for line in f.lines if line.kind == GOOD}
    expected = [(e["line"], e["record"], e["time_us"]) for e in whole.events if e["record"].encode() in good]
    got = [(e["line"], e["record"], e["time_us"]) for e in events if e["record"].encode() in good]
    assert sorted(got) == expected, "a good line lost, changed or repeated across two syncs"


def incremental_case(data: st.DataObject, scratch: Path) -> str:
    f = data.draw(ndjson_files(), label="file")
    split = data.draw(st.integers(0, len(f.data)), label="split")
    folder = scratch / "incremental"
    folder.mkdir(exist_ok=True)
    check_incremental_case(f, split, folder)
    return "split"


@fuzz_settings(NDJSON_EXAMPLES)
@given(data=st.data())
def test_a_file_read_in_two_syncs_split_anywhere_loads_each_good_line_once(scratch: Path, data: st.DataObject) -> None:
    incremental_case(data, scratch)


def test_times_outside_the_years_1_to_9999_are_rejected_not_stored(tmp_path: Path) -> None:
    """Year 99999 parses in DuckDB but nowhere downstream; such a line is a reject with a reason."""
    path = tmp_path / "events.ndjson"
    good = json.loads(DEMO_LINES[0])
    lines = [
        json.dumps({**good, "_time": "99999-01-01T00:00:00Z"}),
        json.dumps({**good, "_time": "0001-01-01T00:00:00+01:00"}),
        json.dumps({**good, "_time": "9999-12-31T23:59:59.999999Z"}),
        json.dumps({**good, "_time": "0001-01-01T00:00:00Z"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = read_ndjson(path)
    assert [e["line"] for e in got.events] == [3, 4]
    assert [(r["line"], r["reason"]) for r in got.rejects] == [
        (1, "_time '99999-01-01T00:00:00Z' is outside the years 1 to 9999"),
        (2, "_time '0001-01-01T00:00:00+01:00' is outside the years 1 to 9999"),
    ]


# --- regressions: defects these properties found, pinned down -------------------------------------


def test_a_line_spanning_two_gzip_members_is_read_once(tmp_path: Path) -> None:
    """zlib repeats a member's trailing input in unconsumed_tail; adding it read the next member twice."""
    good = json.loads(DEMO_LINES[0])
    text = b"x" * 10_000 + b"\n" + json.dumps(good).encode() + b"\n"
    path = tmp_path / "two-members.ndjson.gz"
    path.write_bytes(gzip.compress(text[:4097], mtime=0) + gzip.compress(text[4097:], mtime=0))
    got = read_ndjson(path)
    assert [e["line"] for e in got.events] == [2]
    assert [r["line"] for r in got.rejects] == [1]
    assert (got.lines, got.consumed) == (2, len(text))


def test_a_one_line_file_with_a_bom_and_no_newline_loads_its_line(tmp_path: Path) -> None:
    path = tmp_path / "one.ndjson"
    path.write_bytes(BOM + DEMO_LINES[0].encode())
    got = read_ndjson(path)
    assert [e["record"] for e in got.events] == [DEMO_LINES[0]]


def test_a_line_of_letters_v_is_a_reject_and_a_vertical_tab_line_is_blank(tmp_path: Path) -> None:
    """DuckDB's e'' strings have no \\v escape: the blank test used to trim the letter v."""
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"vvv\n\x0b \x0b\n" + DEMO_LINES[0].encode() + b"\n")
    got = read_ndjson(path)
    assert [(r["line"], r["reason"]) for r in got.rejects] == [(1, "not valid JSON")]
    assert [e["line"] for e in got.events] == [3] and got.lines == 3


def test_a_run_whose_start_time_is_no_representable_time_still_reads(
    wandb_corpus: list[WandbBase], tmp_path: Path
) -> None:
    base = wandb_corpus[1]
    for seconds in (2**62, -(2**62), 253_402_300_800):
        payloads = []
        for span in base.spans:
            record = Record.FromString(span.payload)
            if record.WhichOneof("record_type") == "run":
                record.run.start_time.seconds = seconds
            payloads.append(record.SerializeToString())
        path = tmp_path / "run-odd.wandb"
        path.write_bytes(_write_log_bytes(payloads))
        read = read_run_file(path)
        assert read.meta.started_at is None and read.meta.run_name == base.run_name
        assert Counter(history_rows(read.history, "value")) == Counter(base.history)
