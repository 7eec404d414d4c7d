"""A run file's history records folded into the long numeric history table and the table of
non-numeric values, plus the step and runtime facts the run's metadata needs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from wandb.proto.wandb_internal_pb2 import HistoryItem

from pipelines.raw.schemas import UTC_TS
from pipelines.sources.base import HISTORY_COLUMNS, HISTORY_OTHER_COLUMNS
from pipelines.sources.wandb_bulk_decoding import Decoded, PayloadChunk, decode_items
from pipelines.sources.wandb_file import parse, raw_views

# Keys wandb-core adds to every history row; they become columns, not metrics.
STEP_KEY, RUNTIME_KEY, TIMESTAMP_KEY = "_step", "_runtime", "_timestamp"
_SPECIAL_KEYS = frozenset({STEP_KEY, RUNTIME_KEY, TIMESTAMP_KEY})
_NO_STEP = -(2**63)  # a history record that states no step
# History items named _runtime (top-level key or nested path): an incremental read still
# decodes them for stored steps, so the run's runtime does not depend on where the read began.
_RUNTIME_ITEM_PREFIXES = tuple(tag + bytes([len(RUNTIME_KEY)]) + RUNTIME_KEY.encode() for tag in (b"\x0a", b"\x12"))
# A JSON value is a number (or W&B's NaN/Infinity/-Infinity token) iff it starts with one of these.
_NUMERIC_FIRST_CHARS = list("-0123456789NI")


@dataclass(frozen=True)
class BuiltHistory:
    history: pa.Table
    other: pa.Table
    max_step: int | None
    min_step: int | None  # of every step the file states, read or not
    max_runtime: float | None


class HistoryLog:
    """History records parsed a chunk at a time into Arrow columns, split into tables at the end."""

    def __init__(self, path: Path, after_step: int | None, warnings: list[str]) -> None:
        self.chunk = PayloadChunk(path, warnings)
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

    def build(self, run_id: str) -> BuiltHistory:
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
        return BuiltHistory(
            history=_table(
                HISTORY_COLUMNS,
                run_id,
                steps,
                times,
                row_of,
                names,
                codes,
                numeric,
                pa.array(values[numeric], pa.float64()),
            ),
            other=_table(
                HISTORY_OTHER_COLUMNS,
                run_id,
                steps,
                times,
                row_of,
                names,
                codes,
                other,
                texts.filter(pa.array(other)).cast(pa.string()),
            ),
            max_step=None if max_step == _NO_STEP else max_step,
            min_step=min_step,
            max_runtime=float(finite_runtimes.max()) if finite_runtimes.size else None,
        )


def _in_order(decoded: Decoded) -> tuple[pa.Array, pa.Array, np.ndarray]:
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
