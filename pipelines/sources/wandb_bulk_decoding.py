"""Record payloads and their items decoded in bulk: payloads parsed a chunk at a time in one
protobuf call, and history/summary/config items of the common layout decoded together with numpy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf.message import DecodeError

from pipelines.sources.wandb_file import parse

# Payload bytes parsed per protobuf call: big enough to amortize the call, small
# enough to bound the per-item Python objects alive at once.
_CHUNK_BYTES = 8 * 1024 * 1024


class PayloadChunk:
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


# History, summary and config items share one wire layout (key=1, nested_key=2,
# value_json=16). Nearly every item wandb-core writes is exactly
#     0x12|0x0A <len> <name> 0x82 0x01 <len> <json>
# with one name element and both lengths under 128. Such items are decoded for
# a whole file at once with numpy over the concatenated bytes; anything else
# (nested paths, long values, typed values, removes) goes through protobuf.


@dataclass(frozen=True)
class Decoded:
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
) -> Decoded:
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
    return Decoded(fast_pos, keys, values, slow_pos, slow_paths, slow_values)


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
        self,
        arr: pa.Array,
        name_start: np.ndarray,
        name_end: np.ndarray,
        value_start: np.ndarray,
        value_end: np.ndarray,
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
