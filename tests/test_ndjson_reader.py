"""The NDJSON event source: every event kept, bad lines rejected, incremental reads."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import random
import time
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.sources.base import EVENT_COLUMNS, REJECT_COLUMNS, EventChunk
from pipelines.sources.ndjson import NdjsonEventSource

UTC = dt.UTC

ROLLOUT = {
    "_time": "2024-05-01T12:00:00.250Z",
    "event": "rollout",
    "run_id": "run-a",
    "rollout_id": "ro-1",
    "duration_s": 12.5,
    "status": "ok",
    "engine": "vllm",
    "worker": "w3",
}
INFERENCE = {
    "_time": "2024-05-01T12:00:01Z",
    "event": "inference",
    "run_id": "run-a",
    "engine": "vllm",
    "latency_s": 0.42,
    "tokens_per_s": 1834.5,
    "batch_size": 32,
    "queue_s": 0.01,
}
EXTRACTION = {
    "_time": "2024-05-01T12:00:02Z",
    "event": "extraction",
    "run_id": "run-a",
    "orders_expected": 10,
    "orders_extracted": 9,
}
ERROR = {
    "_time": "2024-05-01T12:00:03Z",
    "level": "error",
    "run_id": "run-a",
    "component": "reward",
    "error_type": "ValueError",
    "message": 'could not parse order: "qty" missing',
}
HEARTBEAT = {
    "_time": "2024-05-01T12:00:04Z",
    "event": "heartbeat",
    "component": "rollout-worker",
    "host": "gpu-node-7",
    "status": "alive",
    "gpu_util": 0.93,
    "gpu_mem_gb": 71.2,
}
UNKNOWN = {
    "_time": "2024-05-01T12:00:05Z",
    "event": "checkpoint_saved",
    "run_id": "run-a",
    "step": 120,
    "path": "s3://bucket/ckpt/120",
    "nested": {"shards": [1, 2, 3], "ok": True, "note": None},
    "unicode": "café ✓",
}
SHAPES = [ROLLOUT, INFERENCE, EXTRACTION, ERROR, HEARTBEAT, UNKNOWN]


# --- helpers -------------------------------------------------------------------


def write_lines(path: Path, lines: list[str], mode: str = "w") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8", newline="") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return path


def append_text(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(text)
    # Ensure the change is visible even on filesystems with coarse mtimes.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def read(source: NdjsonEventSource, cursors: dict[str, dict] | None = None) -> list[EventChunk]:
    return list(source.chunks(cursors or {}))


def commit(chunks: list[EventChunk], cursors: dict[str, dict] | None = None) -> dict[str, dict]:
    """What the ingest layer does: keep each chunk's cursor, in order."""
    cursors = dict(cursors or {})
    for chunk in chunks:
        cursors[chunk.source_key] = chunk.cursor
    return cursors


def events_of(chunks: list[EventChunk]) -> list[dict]:
    tables = [c.events for c in chunks] or [EVENT_COLUMNS.empty_table()]
    return pa.concat_tables(tables).to_pylist()


def rejects_of(chunks: list[EventChunk]) -> list[dict]:
    tables = [c.rejects for c in chunks] or [REJECT_COLUMNS.empty_table()]
    return pa.concat_tables(tables).to_pylist()


def utc(text: str) -> dt.datetime:
    """The expected UTC instant of an ISO-8601 string, computed by the standard library."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def event(record: dict, **changes) -> str:
    return json.dumps({**record, **changes}, ensure_ascii=False)


# --- what a file holds ------------------------------------------------------------


def test_every_default_event_shape_and_an_unknown_kind_load_with_all_their_fields(tmp_path):
    path = write_lines(tmp_path / "events.ndjson", [event(e) for e in SHAPES])

    chunks = read(NdjsonEventSource([path], time_field="_time"))

    rows = events_of(chunks)
    assert [json.loads(r["record"]) for r in rows] == SHAPES
    assert [r["time"] for r in rows] == [utc(e["_time"]) for e in SHAPES]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {r["source"] for r in rows} == {str(path.resolve())}
    assert len({r["event_key"] for r in rows}) == 6
    assert rejects_of(chunks) == []
    assert all(c.events.schema == EVENT_COLUMNS and c.rejects.schema == REJECT_COLUMNS for c in chunks)


def test_the_time_field_defaults_to_the_configured_event_field(tmp_path):
    path = write_lines(tmp_path / "events.ndjson", [event(ROLLOUT)])

    rows = events_of(read(NdjsonEventSource([path])))

    assert [r["time"] for r in rows] == [utc(ROLLOUT["_time"])]


def test_another_time_field_name_can_be_chosen(tmp_path):
    lines = [json.dumps({"ts": "2024-05-01T00:00:00Z", "event": "rollout"}), json.dumps({"_time": "2024-05-01"})]
    path = write_lines(tmp_path / "events.ndjson", lines)

    chunks = read(NdjsonEventSource([path], time_field="ts"))

    assert [r["line"] for r in events_of(chunks)] == [1]
    assert [(r["line"], r["reason"]) for r in rejects_of(chunks)] == [(2, "missing ts")]


def test_bad_lines_are_rejected_with_file_line_and_reason_while_the_rest_loads(tmp_path):
    lines = [
        event(ROLLOUT),  # 1
        '{"_time": "2024-05-01T12:00:00Z", "event": "rollout"',  # 2 truncated object
        "not json at all",  # 3
        "[1, 2, 3]",  # 4 JSON, not an object
        '"just a string"',  # 5
        json.dumps({"event": "rollout", "run_id": "run-a"}),  # 6 no _time
        json.dumps({"_time": None, "event": "rollout"}),  # 7 null _time
        json.dumps({"_time": "yesterday-ish", "event": "rollout"}),  # 8 garbage _time
        json.dumps({"_time": "2024-13-45T99:00:00Z"}),  # 9 impossible date
        json.dumps({"_time": True}),  # 10
        "",  # 11 blank: skipped, not a reject
        "   ",  # 12 blank too
        event(HEARTBEAT),  # 13
    ]
    path = write_lines(tmp_path / "mixed.ndjson", lines)

    chunks = read(NdjsonEventSource([path], time_field="_time"))

    assert [r["line"] for r in events_of(chunks)] == [1, 13]
    rejects = rejects_of(chunks)
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (2, "not valid JSON"),
        (3, "not valid JSON"),
        (4, "not a JSON object (array)"),
        (5, "not a JSON object (varchar)"),
        (6, "missing _time"),
        (7, "missing _time"),
        (8, "unparseable _time 'yesterday-ish'"),
        (9, "unparseable _time '2024-13-45T99:00:00Z'"),
        (10, "unparseable _time 'true'"),
    ]
    assert [r["raw"] for r in rejects] == [lines[i - 1] for i in (2, 3, 4, 5, 6, 7, 8, 9, 10)]
    assert {r["source"] for r in rejects} == {str(path.resolve())}


def test_a_line_that_is_not_utf8_is_rejected_and_its_neighbours_load(tmp_path):
    path = tmp_path / "events.ndjson"
    not_utf8 = b'{"_time": "2024-05-01", "x": "\xff\xfe"}'
    path.write_bytes(b"\n".join([event(ROLLOUT).encode(), not_utf8, event(ERROR).encode()]) + b"\n")

    chunks = read(NdjsonEventSource([path], time_field="_time"))

    assert [r["line"] for r in events_of(chunks)] == [1, 3]
    [reject] = rejects_of(chunks)
    assert (reject["line"], reject["reason"]) == (2, "not valid UTF-8")
    assert reject["raw"] == '{"_time": "2024-05-01", "x": "\ufffd\ufffd"}'


def test_a_huge_rejected_line_keeps_only_the_first_64k_characters(tmp_path):
    huge = "x" * 200_000
    path = write_lines(tmp_path / "events.ndjson", [huge, event(ROLLOUT)])

    chunks = read(NdjsonEventSource([path], time_field="_time"))

    [reject] = rejects_of(chunks)
    assert reject["raw"] == huge[: 64 * 1024]
    assert [r["line"] for r in events_of(chunks)] == [2]


def test_windows_line_endings_and_a_byte_order_mark_do_not_leak_into_records(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + event(ROLLOUT).encode() + b"\r\n" + event(ERROR).encode() + b"\r\n")

    rows = events_of(read(NdjsonEventSource([path], time_field="_time")))

    assert [r["record"] for r in rows] == [event(ROLLOUT), event(ERROR)]


# --- time zones ----------------------------------------------------------------------


def test_times_with_offsets_or_none_are_converted_to_utc(tmp_path):
    stamps = [
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T06:30:00.123456-05:30",
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00",  # naive: UTC
        "2024-05-01 12:00:00.5+00:00",
    ]
    path = write_lines(tmp_path / "events.ndjson", [event(ROLLOUT, _time=s) for s in stamps])

    rows = events_of(read(NdjsonEventSource([path], time_field="_time")))

    assert [r["time"] for r in rows] == [utc(s) for s in stamps]
    assert rows[0]["time"] == dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_epoch_numbers_are_read_in_the_unit_their_size_implies(tmp_path):
    instant = dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    seconds = instant.timestamp()
    values = [seconds, int(seconds * 1e3), int(seconds * 1e6), int(seconds * 1e6) * 1000]
    path = write_lines(tmp_path / "events.ndjson", [json.dumps({"_time": v, "event": "x"}) for v in values])

    rows = events_of(read(NdjsonEventSource([path], time_field="_time")))

    assert [r["time"] for r in rows] == [instant] * 4


# --- files and directories -------------------------------------------------------------


def test_a_gzip_file_loads_and_is_recognised_by_its_bytes_not_its_name(tmp_path):
    lines = [event(e) for e in SHAPES]
    named = tmp_path / "export.ndjson.gz"
    unnamed = tmp_path / "export-compressed.ndjson"  # gzip inside, plain name
    for p in (named, unnamed):
        p.write_bytes(gzip.compress("".join(line + "\n" for line in lines).encode()))

    chunks = read(NdjsonEventSource([named, unnamed], time_field="_time"))

    by_source: dict[str, list] = {}
    for r in events_of(chunks):
        by_source.setdefault(r["source"], []).append(json.loads(r["record"]))
    assert by_source == {str(named.resolve()): SHAPES, str(unnamed.resolve()): SHAPES}


def test_directories_are_searched_recursively_for_event_files(tmp_path):
    root = tmp_path / "exports"
    write_lines(root / "a.ndjson", [event(ROLLOUT)])
    write_lines(root / "day1" / "b.jsonl", [event(INFERENCE)])
    write_lines(root / "day1" / "deep" / "c.json", [event(EXTRACTION)])
    (root / "day2").mkdir()
    (root / "day2" / "d.jsonl.gz").write_bytes(gzip.compress((event(ERROR) + "\n").encode()))
    write_lines(root / "notes.txt", ["not an event file"])
    write_lines(root / "day2" / "e.csv", ["a,b"])

    source = NdjsonEventSource([root], time_field="_time")
    chunks = read(source)

    expected = {
        root / "a.ndjson": ROLLOUT,
        root / "day1" / "b.jsonl": INFERENCE,
        root / "day1" / "deep" / "c.json": EXTRACTION,
        root / "day2" / "d.jsonl.gz": ERROR,
    }
    got = {r["source"]: json.loads(r["record"]) for r in events_of(chunks)}
    assert got == {str(p.resolve()): e for p, e in expected.items()}
    assert rejects_of(chunks) == []


def test_a_missing_path_raises_an_error_that_names_it(tmp_path):
    missing = tmp_path / "nowhere" / "events.ndjson"
    source = NdjsonEventSource([missing], time_field="_time")

    with pytest.raises(FileNotFoundError, match="nowhere"):
        read(source)


# --- incremental reads ---------------------------------------------------------------


def test_a_file_that_grows_between_reads_yields_only_the_new_lines(tmp_path):
    path = write_lines(tmp_path / "events.ndjson", [event(ROLLOUT, rollout_id=f"ro-{i}") for i in range(3)])
    source = NdjsonEventSource([path], time_field="_time")
    first = read(source)
    append_text(path, "".join(event(ROLLOUT, rollout_id=f"ro-{i}") + "\n" for i in range(3, 5)))

    second = read(source, commit(first))

    assert [json.loads(r["record"])["rollout_id"] for r in events_of(second)] == ["ro-3", "ro-4"]
    assert [r["line"] for r in events_of(second)] == [4, 5]
    assert not set(r["event_key"] for r in events_of(first)) & set(r["event_key"] for r in events_of(second))


def test_rereading_an_unchanged_file_yields_no_new_events(tmp_path):
    path = write_lines(tmp_path / "events.ndjson", [event(e) for e in SHAPES] + ["bad line"])
    source = NdjsonEventSource([path], time_field="_time")
    cursors = commit(read(source))

    again = read(source, cursors)

    assert again == []


def test_rereading_an_unchanged_gzip_file_yields_no_new_events(tmp_path):
    path = tmp_path / "events.ndjson.gz"
    path.write_bytes(gzip.compress("".join(event(e) + "\n" for e in SHAPES).encode()))
    source = NdjsonEventSource([path], time_field="_time")
    cursors = commit(read(source))
    os.utime(path, ns=(time.time_ns(), time.time_ns()))  # touched, not changed

    assert events_of(read(source, cursors)) == []


def test_a_gzip_file_that_gains_a_member_yields_only_the_new_lines(tmp_path):
    path = tmp_path / "events.ndjson.gz"
    path.write_bytes(gzip.compress((event(ROLLOUT) + "\n").encode()))
    source = NdjsonEventSource([path], time_field="_time")
    cursors = commit(read(source))
    with open(path, "ab") as fh:  # what `gzip -c more.ndjson >> events.ndjson.gz` does
        fh.write(gzip.compress((event(ERROR) + "\n").encode()))

    rows = events_of(read(source, cursors))

    assert [(r["line"], json.loads(r["record"])) for r in rows] == [(2, ERROR)]


def test_a_half_written_last_line_is_left_for_the_next_read_and_then_loaded(tmp_path):
    whole = event(INFERENCE)
    path = tmp_path / "events.ndjson"
    path.write_text(event(ROLLOUT) + "\n" + whole[:25], encoding="utf-8")
    source = NdjsonEventSource([path], time_field="_time")
    first = read(source)
    assert [r["line"] for r in events_of(first)] == [1]
    assert rejects_of(first) == []

    append_text(path, whole[25:] + "\n")
    second = read(source, commit(first))

    assert [(r["line"], json.loads(r["record"])) for r in events_of(second)] == [(2, INFERENCE)]
    assert rejects_of(second) == []


def test_a_complete_last_line_without_newline_loads_once_and_numbering_continues(tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_text(event(ROLLOUT) + "\n" + event(INFERENCE), encoding="utf-8")
    source = NdjsonEventSource([path], time_field="_time")
    first = read(source)
    assert [r["line"] for r in events_of(first)] == [1, 2]

    append_text(path, "\n" + event(ERROR) + "\n")
    second = read(source, commit(first))

    assert [(r["line"], json.loads(r["record"])) for r in events_of(second)] == [(3, ERROR)]
    assert rejects_of(second) == []


def test_text_appended_to_a_line_already_loaded_is_rejected_not_merged(tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_text(event(ROLLOUT), encoding="utf-8")
    source = NdjsonEventSource([path], time_field="_time")
    first = read(source)
    append_text(path, ', "late": 1}\n' + event(ERROR) + "\n")

    second = read(source, commit(first))

    assert [(r["line"], r["reason"], r["raw"]) for r in rejects_of(second)] == [
        (1, "text appended to a loaded line", ', "late": 1}')
    ]
    assert [(r["line"], json.loads(r["record"])) for r in events_of(second)] == [(2, ERROR)]


def test_a_gzip_file_still_being_written_yields_its_complete_lines_and_later_the_rest(tmp_path):
    lines = [event(HEARTBEAT, seq=i) for i in range(2000)]
    compressed = gzip.compress("".join(line + "\n" for line in lines).encode())
    path = tmp_path / "live.ndjson.gz"
    path.write_bytes(compressed[: len(compressed) // 2])  # the writer is half way
    source = NdjsonEventSource([path], time_field="_time")
    first = read(source)
    loaded = [json.loads(r["record"]) for r in events_of(first)]
    assert 0 < len(loaded) < len(lines)
    assert rejects_of(first) == []
    assert not any(c.warnings for c in first)

    path.write_bytes(compressed)
    second = read(source, commit(first))

    assert loaded + [json.loads(r["record"]) for r in events_of(second)] == [json.loads(x) for x in lines]


def test_corrupt_gzip_data_stops_that_file_with_a_warning(tmp_path):
    compressed = bytearray(gzip.compress("".join(event(HEARTBEAT, seq=i) + "\n" for i in range(2000)).encode()))
    compressed[len(compressed) // 2 : len(compressed) // 2 + 64] = b"\xff" * 64
    path = tmp_path / "broken.ndjson.gz"
    path.write_bytes(bytes(compressed))

    chunks = read(NdjsonEventSource([path], time_field="_time"))

    assert any("corrupt" in w for c in chunks for w in c.warnings)
    assert [json.loads(r["record"])["seq"] for r in events_of(chunks)] == list(range(len(events_of(chunks))))


def test_a_replaced_file_is_read_again_from_line_one_with_a_warning(tmp_path):
    path = write_lines(tmp_path / "events.ndjson", [event(ROLLOUT, rollout_id=f"old-{i}") for i in range(4)])
    source = NdjsonEventSource([path], time_field="_time")
    cursors = commit(read(source))
    replacement = tmp_path / "new.ndjson"
    write_lines(replacement, [event(ERROR, message=f"new-{i}") for i in range(2)])
    os.replace(replacement, path)  # log rotation: a shorter file under the same name

    chunks = read(source, cursors)

    assert [(r["line"], json.loads(r["record"])["message"]) for r in events_of(chunks)] == [(1, "new-0"), (2, "new-1")]
    assert any("line 1" in w for c in chunks for w in c.warnings)
    assert all(c.dedupe for c in chunks)


def test_a_stored_chunk_cursor_resumes_exactly_after_that_chunk(tmp_path):
    n = 3000
    path = write_lines(tmp_path / "events.ndjson", [event(HEARTBEAT, seq=i) for i in range(n)])
    source = NdjsonEventSource([path], time_field="_time", chunk_bytes=64 * 1024)

    chunks = read(source)
    assert len(chunks) > 2
    # The ingest stored only the first chunk, then crashed.
    resumed = read(source, commit(chunks[:1]))

    stored = len(events_of(chunks[:1]))
    assert [r["line"] for r in events_of(resumed)] == list(range(stored + 1, n + 1))
    assert [json.loads(r["record"])["seq"] for r in events_of(resumed)] == list(range(stored, n))


def test_a_line_longer_than_a_chunk_still_loads_whole(tmp_path):
    long_event = event(UNKNOWN, blob="y" * 10_000)
    lines = [event(ROLLOUT), long_event, event(ERROR)]
    path = write_lines(tmp_path / "events.ndjson", lines)

    chunks = read(NdjsonEventSource([path], time_field="_time", chunk_bytes=1024))

    assert [r["record"] for r in events_of(chunks)] == lines
    assert chunks[-1].cursor["bytes"] == path.stat().st_size


def reference_parse(lines: list[str]) -> tuple[list[tuple[int, str]], list[int]]:
    """(line, record) of events and line numbers of rejects, by the standard library."""
    events, rejects = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            utc(obj["_time"])
        except (ValueError, TypeError, KeyError, AttributeError):
            rejects.append(number)
        else:
            events.append((number, line))
    return events, rejects


@pytest.mark.parametrize("seed", range(12))
def test_a_file_read_while_it_is_written_yields_every_line_exactly_once(tmp_path, seed):
    rng = random.Random(seed)
    makers = [
        lambda i: json.dumps({"_time": f"2024-05-01T12:00:{i % 60:02d}Z", "seq": i, "pad": "x" * rng.randint(0, 300)}),
        lambda i: "",
        lambda i: "garbage",
        lambda i: "[1]",
        lambda i: json.dumps({"seq": i}),
        lambda i: json.dumps({"_time": "soon"}),
    ]
    lines = [rng.choices(makers, [80, 5, 4, 3, 4, 4])[0](i) for i in range(rng.randint(1, 400))]
    newline = rng.choice(["\n", "\r\n"])
    data = "".join(line + newline for line in lines).encode()
    compress = rng.random() < 0.3
    path = tmp_path / "live.ndjson"
    source = NdjsonEventSource([path], time_field="_time", chunk_bytes=rng.choice([64, 300, 1024, 1 << 20]))

    cursors: dict[str, dict] = {}
    got_events, got_rejects = [], []
    written = 0
    while written < len(data):  # the writer flushes at arbitrary byte offsets
        written = min(len(data), written + rng.randint(1, len(data)))
        path.write_bytes(gzip.compress(data[:written]) if compress else data[:written])
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        chunks = read(source, cursors)
        cursors = commit(chunks, cursors)
        got_events += [(r["line"], r["record"]) for r in events_of(chunks)]
        got_rejects += [r["line"] for r in rejects_of(chunks)]
        assert not [w for c in chunks for w in c.warnings]

    assert (got_events, got_rejects) == reference_parse(lines)


@pytest.mark.slow
def test_a_million_line_file_read_in_several_chunks_sums_to_a_million_events(tmp_path):
    n = 1_000_000
    path = tmp_path / "big.ndjson"
    pad = "p" * 40
    with open(path, "w", encoding="utf-8") as fh:
        for start in range(0, n, 100_000):
            fh.write(
                "".join(
                    f'{{"_time":"2024-05-01T12:{i // 60 % 60:02d}:{i % 60:02d}Z","event":"rollout",'
                    f'"run_id":"run-{i % 7}","rollout_id":"ro-{i}","duration_s":{i % 997 / 10},'
                    f'"status":"ok","engine":"vllm","worker":"w{i % 16}","pad":"{pad}"}}\n'
                    for i in range(start, start + 100_000)
                )
            )
    source = NdjsonEventSource([path], time_field="_time", chunk_bytes=32 * 1024 * 1024)

    chunks = read(source)

    assert len(chunks) > 1
    assert sum(c.events.num_rows for c in chunks) == n
    assert sum(c.rejects.num_rows for c in chunks) == 0
    lines = pa.chunked_array([c.events["line"] for c in chunks], pa.int64())
    assert lines.to_numpy().tolist() == list(range(1, n + 1))
    assert chunks[-1].cursor["lines"] == n
    assert chunks[-1].cursor["bytes"] == path.stat().st_size
    last = json.loads(chunks[-1].events["record"][-1].as_py())
    assert last["rollout_id"] == f"ro-{n - 1}"
