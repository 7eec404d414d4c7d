"""W&B runs read straight from local `.wandb` transaction logs (offline or synced run folders).

Discovery accepts project dirs (holding `wandb/`), `wandb/` dirs, single run
folders and `.wandb` files. Reading folds the run's records into metadata, a
long numeric history table and a table of non-numeric history values.

A run resumed after a preemption (`wandb.init(id=..., resume="allow")`) has
one run folder and `.wandb` file per segment, all with the same run id. They
are one run: segments are ordered by their run records' start times (then the
files' modification times), histories merged by step (a step logged by two
segments takes the later segment's values, as a rewound run would), config
and summary folded in that order (latest wins), the state taken from the last
segment. Two files of one segment (a copy: the same start time) count once,
the larger one read.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError
from wandb.proto.wandb_internal_pb2 import ConfigItem, HistoryItem, SummaryItem

from pipelines.sources.base import (
    HISTORY_COLUMNS,
    HISTORY_OTHER_COLUMNS,
    RunMeta,
    RunRead,
    RunRef,
)
from pipelines.sources.wandb_file import (
    RECORD_TYPE,
    Record,
    WandbFileError,
    iter_payloads,
    parse,
    raw_views,
    record_type_number,
)
from pipelines.raw.schemas import UTC_TS

__all__ = ["LocalRunSource", "WandbFileError", "read_run_file", "read_run_segments"]

RUN_FILE_SUFFIX = ".wandb"
# Keys wandb-core adds to every history row; they become columns, not metrics.
STEP_KEY, RUNTIME_KEY, TIMESTAMP_KEY = "_step", "_runtime", "_timestamp"
_SPECIAL_KEYS = frozenset({STEP_KEY, RUNTIME_KEY, TIMESTAMP_KEY})
_INTERNAL_KEY = "_wandb"
# An item whose nested_key starts with "_wandb": field 2, length 6, the name.
_INTERNAL_NESTED_PREFIX = b"\x12\x06" + _INTERNAL_KEY.encode()
_REMOVED = object()  # a summary/config remove, in place of a value
# Payload bytes parsed per protobuf call: big enough to amortize the call, small
# enough to bound the per-item Python objects alive at once.
_CHUNK_BYTES = 8 * 1024 * 1024
_NO_STEP = -(2**63)  # a history record that states no step
_HISTORY, _SUMMARY, _CONFIG, _RUN, _EXIT, _METRIC = (
    RECORD_TYPE[t] for t in ("history", "summary", "config", "run", "exit", "metric")
)
# History items named _runtime (top-level key or nested path): an incremental read still
# decodes them for stored steps, so the run's runtime does not depend on where the read began.
_RUNTIME_ITEM_PREFIXES = tuple(tag + bytes([len(RUNTIME_KEY)]) + RUNTIME_KEY.encode() for tag in (b"\x0a", b"\x12"))
# A JSON value is a number (or W&B's NaN/Infinity/-Infinity token) iff it starts with one of these.
_NUMERIC_FIRST_CHARS = list("-0123456789NI")


@dataclass(frozen=True)
class _Handle:
    """Where a discovered run lives (its segments' files, oldest first), plus anything discovery had to say."""

    paths: tuple[Path, ...]
    warnings: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # per segment: what identifies it across syncs (its start time)

    @property
    def path(self) -> Path:
        """The newest segment's file."""
        return self.paths[-1]

    def change_token(self) -> str:
        """Size and mtime of every segment's file: changes when one grows or a new one appears."""
        if len(self.paths) == 1:
            st = self.paths[0].stat()
            return f"file:{st.st_size}:{st.st_mtime_ns}"
        parts = []
        for key, path in zip(self.keys, self.paths):
            st = path.stat()
            parts.append(f"{key}={st.st_size}:{st.st_mtime_ns}")
        return _SEGMENTS_TOKEN + ",".join(parts)


_SEGMENTS_TOKEN = "segments:"


class LocalRunSource:
    """Runs from local W&B run folders (`wandb/offline-run-*/run-<id>.wandb`, `wandb/run-*/...`)."""

    name = "wandb-local"

    def __init__(self, dirs: Sequence[str | Path]) -> None:
        self.dirs = [Path(d) for d in dirs]

    def runs(self) -> Iterator[RunRef]:
        """Every run under the configured dirs, once each (all its segments), in a stable order."""
        segments, keys, warnings = _discover(self.dirs)
        for run_id, paths in sorted(segments.items()):
            label = str(paths[-1]) if len(paths) == 1 else f"{paths[-1]} (and {len(paths) - 1} earlier segment(s))"
            handle = _Handle(tuple(paths), tuple(warnings.get(run_id, ())), tuple(keys[run_id]))
            yield RunRef(run_id=run_id, label=label, handle=handle)

    def read(self, ref: RunRef, after_step: int | None, stored_token: str | None = None) -> RunRead:
        """Metadata plus history rows with step > after_step (all rows if None), and steps a new segment restates."""
        fn, args = self.read_task(ref, after_step, stored_token)
        return fn(*args)

    def read_task(
        self, ref: RunRef, after_step: int | None, stored_token: str | None = None
    ) -> tuple[Callable[..., RunRead], tuple]:
        """`read(...)` as a picklable (function, args): the ingest can run it in a worker process."""
        handle = ref.handle if isinstance(ref.handle, _Handle) else _Handle((Path(ref.label),))
        return _read_handle, (handle, after_step, stored_token)

    def close(self) -> None:
        """Nothing to release: files are opened and closed per read."""


def _read_handle(handle: _Handle, after_step: int | None, stored_token: str | None = None) -> RunRead:
    new = _new_segments(handle, stored_token) if after_step is not None else None
    result = read_run_segments(handle.paths, after_step, new_segments=new)
    result.warnings[:0] = handle.warnings
    return result


def _new_segments(handle: _Handle, stored_token: str | None) -> set[int]:
    """The handle's segments to read whole: those not there when the run was last stored (by its token
    then), and an older segment that changed since (it grew after a newer one was stored: its new steps lie
    below the stored ones, so an incremental read would never reach them)."""
    n = len(handle.paths)
    if n == 1 or stored_token is None:
        return set()
    stats = [f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in handle.paths]
    if stored_token.startswith(_SEGMENTS_TOKEN):
        known = dict(part.split("=", 1) for part in stored_token[len(_SEGMENTS_TOKEN) :].split(","))
        # grown: a larger file (a copy made again has a new mtime but the same bytes)
        return {
            k for k, key in enumerate(handle.keys)
            if key not in known or (k < n - 1 and _size_of(stats[k]) > _size_of(known[key]))
        }  # fmt: skip
    # Stored while the run had one file: that one is the segment whose size and mtime match, else the oldest.
    old = stats.index(stored_token.removeprefix("file:")) if stored_token.removeprefix("file:") in stats else 0
    return set(range(n)) - {old}


def _size_of(stat_text: str) -> int:
    try:
        return int(stat_text.split(":", 1)[0])
    except ValueError:
        return -1


# --- discovery ---------------------------------------------------------------


def _discover(dirs: Iterable[Path]) -> tuple[dict[str, list[Path]], dict[str, list[str]], dict[str, list[str]]]:
    """(run id -> segment files oldest first, run id -> segment keys, run id -> warnings).

    Files are deduplicated by real path (so `latest-run` adds nothing). A run
    id with several files is a resumed run: its segments are ordered by the
    start time of their run records, then by modification time and path. Two
    files with the same start time are copies of one segment: the larger one
    is kept, with a warning.
    """
    seen: set[Path] = set()
    found: dict[str, list[Path]] = {}
    for d in dirs:
        for path in _run_files_under(Path(d)):
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            found.setdefault(run_id_from_filename(path), []).append(path)
    segments: dict[str, list[Path]] = {}
    keys: dict[str, list[str]] = {}
    warnings: dict[str, list[str]] = {}
    for run_id, paths in found.items():
        if len(paths) == 1:
            segments[run_id], keys[run_id] = paths, [""]
            continue
        by_start: dict[Any, list[Path]] = {}
        for path in paths:
            by_start.setdefault(_segment_start(path) or ("unknown", str(path)), []).append(path)
        kept = []
        for start, copies in by_start.items():
            keep = max(copies, key=lambda p: (_size(p), str(p)))
            when = start if isinstance(start, dt.datetime) else None
            kept.append((when, _mtime(keep), str(keep), keep))
            for drop in copies:
                if drop != keep:
                    warnings.setdefault(run_id, []).append(
                        f"run {run_id}: {drop} and {keep} are copies of one segment (same start time); "
                        f"reading the larger {keep} and ignoring {drop}"
                    )
        max_time = dt.datetime.max.replace(tzinfo=dt.UTC)
        kept.sort(key=lambda k: (k[0] or max_time, k[1], k[2]))
        segments[run_id] = [k[3] for k in kept]
        keys[run_id] = [k[0].isoformat() if k[0] else f"file {k[3].name} in {k[3].parent.name}" for k in kept]
    return segments, keys, warnings


# The run record comes first in a run file: discovery reads only this much of each segment
# (every sync, for every resumed run) unless the record is not in it.
_RUN_RECORD_WITHIN = 1024 * 1024


def _segment_start(path: Path) -> dt.datetime | None:
    """The start time in a run file's first run record (None when it has none yet or cannot be read)."""
    warnings: list[str] = []
    try:
        for max_bytes in (_RUN_RECORD_WITHIN, None):
            for offset, payload in iter_payloads(path, warnings, max_bytes):
                if record_type_number(payload) == _RUN:
                    record = parse(Record, path, offset, payload, warnings)
                    return _started_at(record.run) if record is not None else None
            if _size(path) <= _RUN_RECORD_WITHIN:
                break
    except (OSError, WandbFileError):
        return None
    return None


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


def _run_files_under(d: Path) -> list[Path]:
    """The `.wandb` files a user means by `d`: itself, a run folder, a `wandb/` dir or a project dir."""
    if not d.exists():
        raise FileNotFoundError(f"W&B run directory or file not found: {d}")
    if d.is_file():
        if d.suffix != RUN_FILE_SUFFIX:
            raise WandbFileError(f"{d}: not a W&B run file (expected a run-<id>.wandb file or a directory)")
        return [d]
    found = list(d.glob(f"run-*{RUN_FILE_SUFFIX}"))  # a run folder
    for wandb_dir in (d, d / "wandb"):  # a wandb/ dir, or a project dir holding one
        found += wandb_dir.glob(f"*run-*/run-*{RUN_FILE_SUFFIX}")
    return sorted(found)


def run_id_from_filename(path: Path) -> str:
    """`run-<id>.wandb` -> `<id>`; other names keep their stem."""
    return path.stem.removeprefix("run-")


def _size(path: Path) -> int:
    return path.stat().st_size


# --- decoding items in bulk ---------------------------------------------------
#
# History, summary and config items share one wire layout (key=1, nested_key=2,
# value_json=16). Nearly every item wandb-core writes is exactly
#     0x12|0x0A <len> <name> 0x82 0x01 <len> <json>
# with one name element and both lengths under 128. Such items are decoded for
# a whole file at once with numpy over the concatenated bytes; anything else
# (nested paths, long values, typed values, removes) goes through protobuf.


@dataclass(frozen=True)
class _Decoded:
    """Key paths and JSON texts of serialized items: the bulk-decoded ones as Arrow, the rest as lists."""

    fast_pos: np.ndarray  # positions in the input of the bulk-decoded items
    fast_keys: pa.Array  # large_string: their one-element key paths
    fast_values: pa.Array  # large_string: their value_json
    slow_pos: list[int]
    slow_paths: list[str | tuple[str, ...]]  # a str is a top-level key, a tuple a nested path
    slow_values: list[str]


def decode_items(
    blobs: list[bytes],
    item_cls: type,
    force_slow: np.ndarray | None = None,
    drop: np.ndarray | None = None,
    drop_prefix: bytes | None = None,
    typed: bool = False,
    keep_prefixes: tuple[bytes, ...] = (),
    last_per_key: bool = False,
) -> _Decoded:
    """Decode serialized History/Summary/ConfigItems.

    `force_slow` marks items to decode with protobuf; `drop` marks items to
    skip, unless their bytes start with one of `keep_prefixes`; items starting
    with `drop_prefix` are skipped too; `typed` fills an empty value_json from
    the typed value (history items). With `last_per_key`, of the bulk-decoded
    items only the last one of each key is returned (folding summaries needs
    no other, and most of a run's summary items are overwritten ones).
    """
    arr = pa.array(blobs, pa.large_binary())
    probe = _Probe(arr)
    ok, key_len = probe.simple_layout()
    if force_slow is not None:
        ok &= ~force_slow
    wanted = ~drop if drop is not None else np.ones(len(blobs), dtype=bool)
    for prefix in keep_prefixes if drop is not None else ():
        wanted |= probe.starts_with(prefix)
    if drop_prefix is not None:
        wanted &= ~probe.starts_with(drop_prefix)
    ok &= wanted
    fast_pos = np.flatnonzero(ok)
    # The layout check placed every part: the name follows the tag and its length,
    # the value follows the name, the value tag and its length.
    key_start = probe.start[fast_pos] + 2
    key_end = key_start + key_len[fast_pos]
    parts = _NamesAndValues(arr, key_start, key_end, key_end + len(_VALUE_TAG) + 1, probe.end[fast_pos])
    chosen = np.arange(len(fast_pos), dtype=np.int64)
    keys = parts.names(chosen)
    if last_per_key and len(fast_pos):
        codes = keys.dictionary_encode().indices.to_numpy()
        last = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        np.maximum.at(last, codes, chosen)
        chosen = np.sort(last)
        fast_pos = fast_pos[chosen]
        keys = keys.take(pa.array(chosen))
    values = parts.values(chosen)
    try:
        keys, values = keys.cast(pa.large_string()), values.cast(pa.large_string())  # validates UTF-8
    except pa.ArrowInvalid:  # not UTF-8: let protobuf judge every item
        fast_pos = np.empty(0, dtype=np.int64)
        keys = values = pa.array([], pa.large_string())
        ok[:] = False

    slow_pos: list[int] = []
    slow_paths: list[str | tuple[str, ...]] = []
    slow_values: list[str] = []
    for i in np.flatnonzero(~ok & wanted).tolist():
        try:
            item = item_cls.FromString(blobs[i])
        except DecodeError:  # an item the writer could not have meant: leave it out
            continue
        nested = item.nested_key
        slow_pos.append(i)
        slow_paths.append(nested[0] if len(nested) == 1 else (tuple(nested) if nested else item.key))
        value_json = item.value_json
        slow_values.append(value_json if value_json or not typed else _typed_json(item))
    return _Decoded(fast_pos, keys, values, slow_pos, slow_paths, slow_values)


class _Probe:
    """Vectorized byte probes into an Arrow array of serialized items."""

    def __init__(self, arr: pa.Array) -> None:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1)
        total = int(offsets[-1])
        self.start, self.end = offsets[:-1], offsets[1:]
        # One zero byte when empty, so probes always have something to read.
        self.data = np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=total) if total else np.zeros(1, np.uint8)
        self.last = max(total - 1, 0)

    def at(self, index: np.ndarray) -> np.ndarray:
        """Bytes at `index`, clipped to the buffer; items a probe overruns fail their length checks."""
        return self.data[np.minimum(index, self.last)]

    def simple_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """(is simple, name length) per item; simple is exactly `0x12|0x0A <len> <name> 0x82 0x01 <len> <json>`."""
        start, end, at = self.start, self.end, self.at
        tag = at(start)
        key_len = at(start + 1).astype(np.int64)
        value_tag = start + 2 + key_len
        value_len = at(value_tag + 2).astype(np.int64)
        simple = (
            (end - start >= 5)
            & ((tag == 0x12) | (tag == 0x0A))
            & (key_len < 0x80)
            & (value_tag + 3 <= end)
            & (at(value_tag) == 0x82)
            & (at(value_tag + 1) == 0x01)
            & (value_len < 0x80)
            & (value_tag + 3 + value_len == end)
        )
        return simple, key_len

    def starts_with(self, prefix: bytes) -> np.ndarray:
        hit = self.end - self.start >= len(prefix)
        for i, byte in enumerate(prefix):
            hit &= self.at(self.start + i) == byte
        return hit


_VALUE_TAG = b"\x82\x01"  # field 16 (value_json), wire type 2


class _NamesAndValues:
    """Names and values of items inside one binary array, by byte ranges, copied out only when asked for.

    Item i's name is arr's data[name_start[i]:name_end[i]], its value
    data[value_start[i]:value_end[i]]. All four bounds of all items, in order,
    are the offsets of one zero-copy array over arr's data: its element 4i is
    item i's name, 4i + 2 its value (the others are the bytes in between).
    """

    def __init__(
        self, arr: pa.Array, name_start: np.ndarray, name_end: np.ndarray, value_start: np.ndarray, value_end: np.ndarray
    ) -> None:
        cuts = np.empty(4 * len(name_start), dtype=np.int64)
        for i, bound in enumerate((name_start, name_end, value_start, value_end)):
            cuts[i::4] = bound
        self.parts = None
        if len(cuts):
            buffers = [None, pa.py_buffer(cuts), arr.buffers()[2]]
            self.parts = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(cuts) - 1, buffers)

    def names(self, items: np.ndarray) -> pa.Array:
        return self._part(items, 0)

    def values(self, items: np.ndarray) -> pa.Array:
        return self._part(items, 2)

    def _part(self, items: np.ndarray, which: int) -> pa.Array:
        if self.parts is None:
            return pa.array([], pa.large_binary())
        return self.parts.take(pa.array(items * 4 + which))


def _typed_json(item: Any) -> str:
    """JSON text of an item written only in the typed encoding (WANDB__HISTORY_VALUE_ENCODING)."""
    kind = item.WhichOneof("value")
    if kind in ("number", "integer", "boolean", "text"):
        return json.dumps(getattr(item, kind), ensure_ascii=False)
    if kind == "json":
        return item.json
    return "null"


# --- config and summary ----------------------------------------------------------


class _ItemLog:
    """Config or summary writes (updates and removes) folded in file order: the last write per path wins.

    Record payloads wait in a chunk and are parsed together (one protobuf call
    per chunk); their items are then decoded in bulk and only the last write
    per key path is kept.
    """

    def __init__(self, path: Path, field: str, item_cls: type, warnings: list[str]) -> None:
        self.chunk = _Chunk(path, warnings)
        self.field = field  # "summary" or "config": the Record field the payloads fill
        self.item_cls = item_cls
        self.last: dict[str | tuple[str, ...], tuple[int, Any]] = {}  # path -> (position, value_json)
        self.count = 0  # items folded so far: the position of the next one

    def add(self, offset: int, payload: bytes | memoryview) -> None:
        if self.chunk.add(offset, payload):
            self._flush()

    def add_items(self, blobs: list[bytes]) -> None:
        """Serialized items from elsewhere (the run record), at this point in file order."""
        self._flush()
        self._fold(blobs, [])

    def _flush(self) -> None:
        merged, pending = self.chunk.parse(raw_views().merged)
        if merged is None:
            return
        writes = getattr(merged, self.field)
        if not len(writes.remove):
            self._fold(list(writes.update), [])
            return
        # Removes are a separate list in each record: rebuild the per-record order.
        blobs: list[bytes] = []
        remove_at: list[int] = []
        for _, payload in pending:
            one = getattr(raw_views().merged.FromString(payload), self.field)
            blobs += one.update
            start = len(blobs)
            blobs += one.remove
            remove_at.extend(range(start, len(blobs)))
        self._fold(blobs, remove_at)

    def _fold(self, blobs: list[bytes], remove_at: list[int]) -> None:
        force_slow = np.zeros(len(blobs), dtype=bool)
        force_slow[remove_at] = True
        # Items under `_wandb` (wandb-core's runtime heartbeats) are dropped from the result
        # anyway; skipping them here keeps their nested paths off the slow path.
        decoded = decode_items(
            blobs, self.item_cls, force_slow, drop_prefix=_INTERNAL_NESTED_PREFIX, last_per_key=True
        )
        base, last = self.count, self.last
        for name, (pos, value_json) in _last_fast_writes(decoded).items():
            last[name] = (base + pos, value_json)  # later than anything from earlier chunks
        removed = set(remove_at)
        for pos, path, value_json in zip(decoded.slow_pos, decoded.slow_paths, decoded.slow_values):
            prev = last.get(path)
            if prev is None or prev[0] < base + pos:
                last[path] = (base + pos, _REMOVED if pos in removed else value_json)
        self.count += len(blobs)

    def result(self) -> dict[str, Any]:
        """The folded writes as nested dicts, without wandb's internal `_wandb` key."""
        self._flush()
        # Replaying only the last write per path, in the order of those writes, nests
        # parents and children exactly as replaying every write would.
        out: dict[str, Any] = {}
        for path, (_, value_json) in sorted(self.last.items(), key=lambda kv: kv[1][0]):
            keys = (path,) if isinstance(path, str) else path
            if value_json is _REMOVED:
                _delete_path(out, keys)
            else:
                _set_path(out, keys, _loads(value_json))
        out.pop(_INTERNAL_KEY, None)
        return out


class _Chunk:
    """Record payloads of one kind waiting to be parsed in a single protobuf call."""

    def __init__(self, path: Path, warnings: list[str]) -> None:
        self.path = path
        self.warnings = warnings
        self.pending: list[tuple[int, bytes | memoryview]] = []
        self.size = 0

    def add(self, offset: int, payload: bytes | memoryview) -> bool:
        """Queue a payload; True when the chunk is big enough to parse."""
        self.pending.append((offset, payload))
        self.size += len(payload)
        return self.size >= _CHUNK_BYTES

    def parse(self, cls: type) -> tuple[Any, list[tuple[int, bytes | memoryview]]]:
        """(the queued payloads parsed as one `cls` message, the (offset, payload) pairs in it); empties the queue."""
        pending, self.pending, self.size = self.pending, [], 0
        if not pending:
            return None, []
        try:
            return cls.FromString(b"".join(p for _, p in pending)), pending
        except DecodeError:
            # Some payload passed its CRC but is not a Record: warn about it and parse the rest.
            pending = [(o, p) for o, p in pending if parse(cls, self.path, o, p, self.warnings) is not None]
            return cls.FromString(b"".join(p for _, p in pending)), pending


def _last_fast_writes(decoded: _Decoded) -> dict[str | tuple[str, ...], tuple[int, Any]]:
    """Top-level key -> (position, value_json) of its last bulk-decoded write."""
    if not len(decoded.fast_pos):
        return {}
    encoded = decoded.fast_keys.dictionary_encode()
    codes = encoded.indices.to_numpy()
    last = np.full(len(encoded.dictionary), -1, dtype=np.int64)
    np.maximum.at(last, codes, np.arange(len(codes), dtype=np.int64))
    names = encoded.dictionary.to_pylist()
    values = decoded.fast_values.take(pa.array(last)).to_pylist()
    positions = decoded.fast_pos[last].tolist()
    return {name: (pos, value) for name, pos, value in zip(names, positions, values)}


def _loads(value_json: str) -> Any:
    # W&B writes NaN/Infinity tokens, which json.loads accepts; keep a raw string rather than fail.
    try:
        return json.loads(value_json)
    except ValueError:
        return value_json


def _set_path(root: dict[str, Any], keys: Sequence[str], value: Any) -> None:
    node = root
    for k in keys[:-1]:
        child = node.get(k)
        if not isinstance(child, dict):
            child = node[k] = {}
        node = child
    node[keys[-1]] = value


def _delete_path(root: dict[str, Any], keys: Sequence[str]) -> None:
    node: Any = root
    for k in keys[:-1]:
        node = node.get(k) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(keys[-1], None)


# --- history -----------------------------------------------------------------------


@dataclass(frozen=True)
class _BuiltHistory:
    history: pa.Table
    other: pa.Table
    max_step: int | None
    min_step: int | None  # of every step the file states, read or not
    max_runtime: float | None


class _HistoryLog:
    """History records parsed a chunk at a time into Arrow columns, split into tables at the end."""

    def __init__(self, path: Path, after_step: int | None, warnings: list[str]) -> None:
        self.chunk = _Chunk(path, warnings)
        self.after_step = after_step
        self.row_steps: list[int] = []  # per history record; _NO_STEP when it states none
        self.keys: list[pa.Array] = []  # per chunk: joined key of each kept item
        self.texts: list[pa.Array] = []  # per chunk: value_json of each kept item
        self.rows: list[np.ndarray] = []  # per chunk: row (record) number of each kept item

    def add(self, offset: int, payload: bytes | memoryview) -> None:
        if self.chunk.add(offset, payload):
            self._flush()

    def _flush(self) -> None:
        rows, pending = self.chunk.parse(raw_views().rows)
        if rows is None:
            return
        if len(rows.history) == len(pending):
            self._add_rows(rows, [p for _, p in pending])
            return
        # Joined, a damaged payload swallowed bytes of its neighbour: go one record at a time.
        for offset, payload in pending:
            one = parse(raw_views().rows, self.chunk.path, offset, payload, self.chunk.warnings)
            if one is not None and len(one.history) == 1:
                self._add_rows(one, [payload])

    def _add_rows(self, rows: Any, payloads: list[bytes | memoryview]) -> None:
        """Decode the items of parsed history records (`rows`, one entry per payload)."""
        steps: list[int] = []
        counts: list[int] = []
        for row in rows.history:
            steps.append(row.step.num if row.HasField("step") else _NO_STEP)
            counts.append(len(row.item))
        blobs = list(raw_views().merged.FromString(b"".join(payloads)).history.item)
        step_arr = np.asarray(steps, dtype=np.int64)
        count_arr = np.asarray(counts, dtype=np.int64)
        item_rows = np.repeat(np.arange(len(steps), dtype=np.int64) + len(self.row_steps), count_arr)
        self.row_steps += steps
        drop = None
        if self.after_step is not None:
            # Incremental reads: items of steps already stored are never decoded, but for _runtime.
            drop = np.repeat((step_arr != _NO_STEP) & (step_arr <= self.after_step), count_arr)
        decoded = decode_items(blobs, HistoryItem, drop=drop, typed=True, keep_prefixes=_RUNTIME_ITEM_PREFIXES)
        keys, texts, positions = _in_order(decoded)
        self.keys.append(keys)
        self.texts.append(texts)
        self.rows.append(item_rows[positions])

    def build(self, run_id: str) -> _BuiltHistory:
        """Split the kept items into the numeric and other tables, plus step/runtime facts."""
        self._flush()
        keys = pa.concat_arrays(self.keys) if self.keys else pa.array([], pa.large_string())
        texts = pa.concat_arrays(self.texts) if self.texts else pa.array([], pa.large_string())
        row_of = np.concatenate(self.rows) if self.rows else np.empty(0, dtype=np.int64)

        encoded = keys.dictionary_encode()
        codes = encoded.indices.to_numpy().astype(np.int64)
        names = encoded.dictionary.cast(pa.string())
        name_list = names.to_pylist()
        special = np.array([name in _SPECIAL_KEYS for name in name_list], dtype=bool)

        is_num = _numeric_mask(texts)
        values = np.full(len(texts), np.nan)
        values[is_num] = _parse_floats(texts.filter(pa.array(is_num)))

        def per_row(key: str) -> tuple[np.ndarray, np.ndarray]:
            """(row numbers, values) of one wandb-core bookkeeping item such as _step."""
            if key not in name_list:
                return np.empty(0, np.int64), np.empty(0)
            hit = (codes == name_list.index(key)) & is_num
            return row_of[hit], values[hit]

        steps = np.asarray(self.row_steps, dtype=np.int64)
        rows, step_values = per_row(STEP_KEY)
        # A record without a step field takes its step from the _step item.
        missing = (steps[rows] == _NO_STEP) & np.isfinite(step_values)
        steps[rows[missing]] = step_values[missing].astype(np.int64)
        times = np.full(len(steps), np.nan)
        rows, ts_values = per_row(TIMESTAMP_KEY)
        times[rows] = ts_values
        _, runtimes = per_row(RUNTIME_KEY)

        known = steps != _NO_STEP
        keep_row = known if self.after_step is None else known & (steps > self.after_step)
        keep = keep_row[row_of] & ~special[codes]
        numeric, other = keep & is_num, keep & ~is_num

        max_step = int(steps[known].max(initial=_NO_STEP))
        min_step = int(steps[known].min(initial=2**63 - 1)) if known.any() else None
        finite_runtimes = runtimes[~np.isnan(runtimes)]
        return _BuiltHistory(
            history=_table(HISTORY_COLUMNS, run_id, steps, times, row_of, names, codes, numeric,
                           pa.array(values[numeric], pa.float64())),
            other=_table(HISTORY_OTHER_COLUMNS, run_id, steps, times, row_of, names, codes, other,
                         texts.filter(pa.array(other)).cast(pa.string())),
            max_step=None if max_step == _NO_STEP else max_step,
            min_step=min_step,
            max_runtime=float(finite_runtimes.max()) if finite_runtimes.size else None,
        )


def _in_order(decoded: _Decoded) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(joined keys, value texts, positions) of all decoded items, in input order."""
    if not decoded.slow_pos:
        return decoded.fast_keys, decoded.fast_values, decoded.fast_pos
    slow_keys = [p if isinstance(p, str) else ".".join(p) for p in decoded.slow_paths]
    positions = np.concatenate([decoded.fast_pos, np.asarray(decoded.slow_pos, dtype=np.int64)])
    order = pa.array(np.argsort(positions, kind="stable"))
    keys = pa.concat_arrays([decoded.fast_keys, pa.array(slow_keys, pa.large_string())]).take(order)
    texts = pa.concat_arrays([decoded.fast_values, pa.array(decoded.slow_values, pa.large_string())]).take(order)
    return keys, texts, np.sort(positions)


def _table(
    schema: pa.Schema,
    run_id: str,
    steps: np.ndarray,
    times: np.ndarray,
    row_of: np.ndarray,
    names: pa.Array,
    codes: np.ndarray,
    mask: np.ndarray,
    values: pa.Array,
) -> pa.Table:
    rows = row_of[mask]
    return pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(run_id, pa.string()), len(rows)),
            pa.array(steps[rows], pa.int64()),
            _utc_column(times[rows]),
            names.take(pa.array(codes[mask])),
            values,
        ],
        schema=schema,
    )


def _numeric_mask(texts: pa.Array) -> np.ndarray:
    """True where the JSON text is a number or a NaN/Infinity/-Infinity token."""
    if len(texts) == 0:
        return np.zeros(0, dtype=bool)
    first = pc.utf8_slice_codeunits(texts, 0, 1).cast(pa.string())
    return pc.is_in(first, value_set=pa.array(_NUMERIC_FIRST_CHARS)).to_numpy(zero_copy_only=False)


def _parse_floats(texts: pa.Array) -> np.ndarray:
    """JSON numbers (and NaN/Infinity tokens) -> float64; Arrow's parser rounds like Python's float()."""
    try:
        return pc.cast(texts, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        # Not expected from wandb-core; fall back to Python so one odd value cannot fail the run.
        return np.array([_float_or_nan(t) for t in texts.to_pylist()], dtype=np.float64)


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


# Times outside [0001-01-01, 10000-01-01) UTC (Python's datetime range) are unknown: a
# damaged or foreign log must not put a time into the warehouse that no reader can convert.
_MIN_EPOCH_S, _MAX_EPOCH_S = -62_135_596_800.0, 253_402_300_800.0


def _utc_column(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds (NaN or out of range = unknown) -> a UTC microsecond timestamp column."""
    with np.errstate(invalid="ignore"):
        missing = ~(np.isfinite(seconds) & (seconds >= _MIN_EPOCH_S) & (seconds < _MAX_EPOCH_S))
    micros = np.rint(np.where(missing, 0.0, seconds) * 1e6).astype(np.int64)
    return pa.array(micros, UTC_TS, mask=missing if missing.any() else None)


# --- one file ------------------------------------------------------------------------


def read_run_file(path: str | Path, after_step: int | None = None) -> RunRead:
    """Read one `run-<id>.wandb` file into metadata and history rows with step > after_step."""
    return _read_segment(path, after_step).read


@dataclass(frozen=True)
class _Segment:
    """One file of a run, read."""

    path: Path
    read: RunRead
    min_step: int | None


def _read_segment(path: str | Path, after_step: int | None) -> _Segment:
    path = Path(path)
    if path.suffix != RUN_FILE_SUFFIX:
        raise WandbFileError(f"{path}: not a W&B run file (expected run-<id>.wandb)")
    warnings: list[str] = []
    run: Any = None
    exit_record: Any = None
    step_metrics: dict[str, str] = {}  # metric name or glob -> its step metric, the latest definition winning
    config = _ItemLog(path, "config", ConfigItem, warnings)
    summary = _ItemLog(path, "summary", SummaryItem, warnings)
    history = _HistoryLog(path, after_step, warnings)
    queues = {_HISTORY: history, _SUMMARY: summary, _CONFIG: config}

    for offset, payload in iter_payloads(path, warnings):
        kind = record_type_number(payload)
        record = None
        if kind is None:  # an unusual layout: let protobuf say what it is
            record = parse(Record, path, offset, payload, warnings)
            kind = RECORD_TYPE.get(record.WhichOneof("record_type")) if record is not None else None
        queue = queues.get(kind) if kind is not None else None
        if queue is not None:
            queue.add(offset, payload)
        elif kind in (_RUN, _EXIT, _METRIC):
            record = record or parse(Record, path, offset, payload, warnings)
            if record is None:
                continue
            if kind == _METRIC:
                _define_metric(step_metrics, record.metric)
            elif kind == _EXIT:
                exit_record = record.exit
            elif run is None:
                # The first run record carries the init config and any resumed summary.
                config.add_items([item.SerializeToString() for item in record.run.config.update])
                summary.add_items([item.SerializeToString() for item in record.run.summary.update])
                run = record.run
            else:
                run = _merge_run(run, record.run)

    run_id = (run.run_id if run is not None else "") or run_id_from_filename(path)
    built = history.build(run_id)
    meta = _run_meta(path, run_id, run, config.result(), summary.result(), built, exit_record)
    meta = dataclasses.replace(meta, step_metrics=tuple(step_metrics.items()))
    return _Segment(path, RunRead(meta=meta, history=built.history, other=built.other, warnings=warnings), built.min_step)


def _define_metric(step_metrics: dict[str, str], metric: Any) -> None:
    """Note what one `define_metric` record says about a metric's x-axis.

    `wandb.define_metric("elo/*", step_metric="train/global_step")` writes a MetricRecord
    with `glob_name` and `step_metric`; a later definition of the same name replaces it.
    """
    name = metric.name or metric.glob_name
    if name and metric.step_metric:
        step_metrics.pop(name, None)  # re-inserted last: the newest definition wins and sorts last
        step_metrics[name] = metric.step_metric


def read_run_segments(
    paths: Sequence[str | Path], after_step: int | None = None, new_segments: set[int] | None = None
) -> RunRead:
    """Read a run's segments (oldest first) as one run: metadata and history rows with step > after_step.

    A step that two segments log takes the later segment's values; where their
    values differ, a warning names both files and the steps. `new_segments`
    (indexes into `paths`) were not there when the run was stored up to
    `after_step`: they are read whole, and the stored steps they log again as
    the latest segment come back as `restated_steps` with their rows.
    """
    if len(paths) == 1:
        return read_run_file(paths[0], after_step)
    new = set(new_segments or ()) if after_step is not None else set()
    parts, skipped = [], []
    for k, p in enumerate(paths):
        try:
            parts.append(_read_segment(p, None if k in new else after_step))
        except WandbFileError as exc:  # one unreadable segment must not take the run's other segments with it
            skipped.append(f"{p}: skipped, WandbFileError: {exc} (the run is read from its other segments)")
    if not parts:
        raise WandbFileError("; ".join(skipped))
    new_paths = {Path(paths[i]) for i in new}
    new = {k for k, part in enumerate(parts) if part.path in new_paths}  # indexes into the segments read
    warnings = skipped + [w for part in parts for w in part.read.warnings]
    merged = _merge_histories(parts)
    warnings += merged.notes
    history, other, restated = merged.history, merged.other, []
    if after_step is not None:
        history, other, restated = _after(parts, merged, after_step, new)
        if restated:
            warnings.append(
                f"run {parts[-1].read.meta.run_id}: steps {restated[0]}-{restated[-1]} ({len(restated)} steps) were stored "
                f"from an earlier segment and are logged again by a newer one; the newer values replace them"
            )
    return RunRead(meta=_merge_meta(parts), history=history, other=other, warnings=warnings, restated_steps=restated)


def _after(parts: list[_Segment], merged: _Merged, after_step: int, new: set[int]) -> tuple[pa.Table, pa.Table, list[int]]:
    """The merged rows an incremental read returns: steps after `after_step`, and stored steps a new segment restates.

    A stored step is restated when a new segment logs it and no later segment that was already
    stored spans it (those segments' stored steps are not decoded, so their step ranges decide).
    """
    spans = [(k, p.min_step, p.read.meta.last_step) for k, p in enumerate(parts) if k not in new]
    out, restated = [], set()
    for table, seg in ((merged.history, merged.history_seg), (merged.other, merged.other_seg)):
        steps = table.column("step").to_numpy()
        keep = steps > after_step
        again = ~keep & np.isin(seg, sorted(new))
        for k, lo, hi in spans:
            if lo is not None and hi is not None:
                again &= ~((seg < k) & (steps >= lo) & (steps <= hi))
        restated |= set(steps[again].tolist())
        out.append(table.filter(pa.array(keep | again)))
    return out[0], out[1], sorted(restated)


@dataclass(frozen=True)
class _Merged:
    """Histories of a run's segments merged by step, with the segment each kept row came from."""

    history: pa.Table
    other: pa.Table
    history_seg: np.ndarray
    other_seg: np.ndarray
    notes: list[str]


def _merge_histories(parts: list[_Segment]) -> _Merged:
    """Histories of the segments merged by step (the later segment wins a step), and what disagreed."""
    tables = {"history": [p.read.history for p in parts], "other": [p.read.other for p in parts]}
    seg_of = {
        name: np.concatenate([np.full(t.num_rows, k, dtype=np.int64) for k, t in enumerate(ts)]) for name, ts in tables.items()
    }
    merged = {name: pa.concat_tables(ts) for name, ts in tables.items()}
    steps = {name: merged[name].column("step").to_numpy() for name in merged}
    all_steps = np.concatenate(list(steps.values()))
    all_segs = np.concatenate(list(seg_of.values()))
    uniq, inverse = np.unique(all_steps, return_inverse=True)
    winner = np.full(len(uniq), -1, dtype=np.int64)
    np.maximum.at(winner, inverse, all_segs)
    notes = _disagreements(parts, merged["history"], steps["history"], seg_of["history"], uniq, winner)
    out, segs = {}, {}
    for name in merged:
        keep = seg_of[name] == winner[np.searchsorted(uniq, steps[name])]
        out[name] = merged[name].filter(pa.array(keep))
        segs[name] = seg_of[name][keep]
    return _Merged(out["history"], out["other"], segs["history"], segs["other"], notes)


def _disagreements(
    parts: list[_Segment], history: pa.Table, steps: np.ndarray, segs: np.ndarray, uniq: np.ndarray, winner: np.ndarray
) -> list[str]:
    """One line per pair of segments whose numeric values differ on steps both logged."""
    if not len(steps):
        return []
    win = winner[np.searchsorted(uniq, steps)]
    lost = segs != win
    if not lost.any():
        return []
    keys = history.column("key").to_pylist()
    values = history.column("value").to_numpy(zero_copy_only=False)
    notes = []
    for loser, kept in sorted({(int(a), int(b)) for a, b in zip(segs[lost], win[lost])}):
        at = set(steps[lost & (segs == loser) & (win == kept)].tolist())
        rows = {k: set() for k in (loser, kept)}
        for i in np.flatnonzero(np.isin(steps, list(at)) & np.isin(segs, [loser, kept])).tolist():
            v = values[i]
            rows[int(segs[i])].add((int(steps[i]), keys[i], "nan" if v != v else float(v)))
        if rows[loser] == rows[kept]:
            continue  # the same values twice (a segment copied, or logged again unchanged)
        lo, hi = min(at), max(at)
        hint = " (a run resumed offline without step= starts again at step 0)" if parts[kept].min_step == 0 else ""
        notes.append(
            f"run {parts[kept].read.meta.run_id}: steps {lo}-{hi} ({len(at)} steps) are in two segments with different "
            f"values, {parts[loser].path} and {parts[kept].path}; kept the later segment's values{hint}"
        )
    return notes


def _merge_meta(parts: list[_Segment]) -> RunMeta:
    """The segments' metadata folded oldest to newest: set fields, config and summary keys of later ones win."""
    metas = [p.read.meta for p in parts]
    first, last = metas[0], metas[-1]
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    step_metrics: dict[str, str] = {}
    for m in metas:
        for name, step_metric in m.step_metrics:
            step_metrics.pop(name, None)
            step_metrics[name] = step_metric
        _deep_update(config, m.config)
        _deep_update(summary, m.summary)
        for name in ("run_name", "project", "entity", "run_group", "job_type", "sweep_id", "notes", "host"):
            if getattr(m, name):
                fields[name] = getattr(m, name)
        if m.tags:
            fields["tags"] = m.tags
    runtimes = [m.runtime_s for m in metas if _is_number(m.runtime_s)]
    steps = [m.last_step for m in metas if m.last_step is not None]
    starts = [m.started_at for m in metas if m.started_at is not None]
    return dataclasses.replace(
        last,
        **fields,
        config=config,
        summary=summary,
        step_metrics=tuple(step_metrics.items()),
        started_at=min(starts) if starts else first.started_at,
        runtime_s=float(sum(runtimes)) if runtimes else None,
        last_step=max(steps) if steps else None,
        source=" + ".join(str(p.path) for p in parts),
    )


def _deep_update(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_update(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _merge_run(first: Any, later: Any) -> Any:
    """A later run record (an update, e.g. a rename) overrides the fields it sets."""
    merged = type(first)()
    merged.CopyFrom(first)
    for field in ("run_id", "entity", "project", "run_group", "job_type", "display_name", "notes", "host", "sweep_id"):
        value = getattr(later, field)
        if value:
            setattr(merged, field, value)
    if later.tags:
        del merged.tags[:]
        merged.tags.extend(later.tags)
    return merged


def _run_meta(
    path: Path,
    run_id: str,
    run: Any,
    config: dict[str, Any],
    summary: dict[str, Any],
    history: _BuiltHistory,
    exit_record: Any,
) -> RunMeta:
    """Fold what the records said about the run into one RunMeta."""
    runtimes = [r for r in (history.max_runtime, summary.get(RUNTIME_KEY)) if _is_number(r)]
    runtime = float(max(runtimes)) if runtimes else None
    state, exit_code = "running", None
    if exit_record is not None:
        exit_code = exit_record.exit_code
        state = "finished" if exit_code == 0 else "crashed"
        runtime = float(exit_record.runtime)

    def text(field: str) -> str | None:
        return (getattr(run, field) or None) if run is not None else None

    return RunMeta(
        run_id=run_id,
        run_name=text("display_name"),
        project=text("project"),
        entity=text("entity"),
        run_group=text("run_group"),
        job_type=text("job_type"),
        sweep_id=text("sweep_id"),
        tags=tuple(run.tags) if run is not None else (),
        notes=text("notes"),
        host=text("host"),
        config=config,
        summary=summary,
        state=state,
        exit_code=exit_code,
        started_at=_started_at(run),
        runtime_s=runtime,
        last_step=history.max_step,
        source=str(path),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _started_at(run: Any) -> dt.datetime | None:
    if run is None or not run.HasField("start_time"):
        return None
    ts = run.start_time
    try:
        return dt.datetime.fromtimestamp(ts.seconds, dt.UTC) + dt.timedelta(microseconds=ts.nanos // 1000)
    except (OverflowError, OSError, ValueError):
        return None  # no representable time (a damaged or foreign log): unknown, not a failed read
