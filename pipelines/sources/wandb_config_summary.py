"""A run's config and summary folded from their records' writes (updates and removes), the last write
per key path winning, into nested dicts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.sources.wandb_bulk_decoding import Decoded, PayloadChunk, decode_items
from pipelines.sources.wandb_file import raw_views

_INTERNAL_KEY = "_wandb"
# An item whose nested_key starts with "_wandb": field 2, length 6, the name.
_INTERNAL_NESTED_PREFIX = b"\x12\x06" + _INTERNAL_KEY.encode()
_REMOVED = object()  # a summary/config remove, in place of a value


class ItemLog:
    """Config or summary writes (updates and removes) folded in file order: the last write per path wins.

    Record payloads wait in a chunk and are parsed together (one protobuf call
    per chunk); their items are then decoded in bulk and only the last write
    per key path is kept.
    """

    def __init__(self, path: Path, field: str, item_cls: type, warnings: list[str]) -> None:
        self.chunk = PayloadChunk(path, warnings)
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
        decoded = decode_items(blobs, self.item_cls, force_slow, drop_prefix=_INTERNAL_NESTED_PREFIX, last_per_key=True)
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


def _last_fast_writes(decoded: Decoded) -> dict[str | tuple[str, ...], tuple[int, Any]]:
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
