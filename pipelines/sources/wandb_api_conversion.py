"""What the W&B API returns, converted into the warehouse's shapes: history (`scan_history` rows and
parquet exports) into the long numeric and other tables, the run config's metric definitions into
step metrics, and W&B's times into UTC."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.sources.base import HISTORY_COLUMNS, HISTORY_OTHER_COLUMNS, dumps

# wandb-core bookkeeping columns: they become `step`/`wall_time`, or are dropped.
STEP_KEY, TIMESTAMP_KEY, RUNTIME_KEY = "_step", "_timestamp", "_runtime"
SPECIAL_KEYS = frozenset({STEP_KEY, TIMESTAMP_KEY, RUNTIME_KEY})


def rows_to_long(rows: Iterator[Mapping[str, Any]], run_id: str) -> tuple[pa.Table, pa.Table]:
    """History rows (dicts, as `scan_history` yields them) -> (numeric, other) long tables.

    Nested dicts become dotted keys; a dict carrying `_type` is a W&B media or
    table reference and stays one JSON value. Numbers (NaN and ±Inf kept) go
    to the numeric table, everything else (text, booleans, lists, media) to
    `other` as JSON. Nulls are dropped: in the parquet export they mean "not
    logged at this step".
    """
    num_step: list[int] = []
    num_time: list[float] = []
    num_key: list[str] = []
    num_val: list[float] = []
    oth_step: list[int] = []
    oth_time: list[float] = []
    oth_key: list[str] = []
    oth_val: list[str] = []
    for row in rows:
        step = row.get(STEP_KEY)
        if step is None:
            continue
        step = int(step)
        ts = row.get(TIMESTAMP_KEY)
        ts = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else math.nan
        for key, value in _flat_items(row):
            if value is None or key in SPECIAL_KEYS:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                num_step.append(step)
                num_time.append(ts)
                num_key.append(key)
                num_val.append(float(value))
            else:
                oth_step.append(step)
                oth_time.append(ts)
                oth_key.append(key)
                oth_val.append(dumps(value))
    rid = pa.scalar(run_id, pa.string())
    history = long_table(HISTORY_COLUMNS, rid, num_step, num_time, num_key, pa.array(num_val, pa.float64()))
    other = long_table(HISTORY_OTHER_COLUMNS, rid, oth_step, oth_time, oth_key, pa.array(oth_val, pa.string()))
    return history, other


def long_table(
    schema: pa.Schema, rid: pa.Scalar, steps: list[int], times: list[float], keys: list[str], values: pa.Array
) -> pa.Table:
    """One long table (run id, step, wall time, key, value) from per-value lists."""
    return pa.Table.from_arrays(
        [
            pa.repeat(rid, len(steps)),
            pa.array(steps, pa.int64()),
            _utc_micros(np.asarray(times, dtype=np.float64)),
            pa.array(keys, pa.string()),
            values,
        ],
        schema=schema,
    )


def history_to_long(table: pa.Table, run_id: str, lo: int = 0, hi: int | None = None) -> tuple[pa.Table, pa.Table]:
    """A wide history table (one column per key, W&B's parquet export) -> long tables, steps lo..hi.

    Column-at-a-time with Arrow: numeric columns are cast, not iterated.
    """
    steps = pc.cast(table[STEP_KEY], pa.int64())
    keep = pc.and_(pc.is_valid(steps), pc.greater_equal(steps, lo))
    if hi is not None:
        keep = pc.and_(keep, pc.less_equal(steps, hi))
    table = table.filter(pc.fill_null(keep, False))
    table = _flatten_structs(table)
    steps = pc.cast(table[STEP_KEY], pa.int64()).combine_chunks()
    if TIMESTAMP_KEY in table.column_names:
        seconds = pc.cast(table[TIMESTAMP_KEY], pa.float64()).to_numpy(zero_copy_only=False)
        seconds = np.where(pc.is_valid(table[TIMESTAMP_KEY]).to_numpy(zero_copy_only=False), seconds, np.nan)
    else:
        seconds = np.full(table.num_rows, np.nan)
    wall = _utc_micros(seconds)

    rid = pa.scalar(run_id, pa.string())
    num_parts: list[pa.Table] = []
    oth_parts: list[pa.Table] = []
    for name in table.column_names:
        if name in SPECIAL_KEYS:
            continue
        col = table[name].combine_chunks()
        typ = col.type
        valid = pc.is_valid(col)
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
            values = pc.cast(col.filter(valid), pa.float64())
            target, parts = HISTORY_COLUMNS, num_parts
        else:
            present = col.filter(valid)
            if pa.types.is_boolean(typ):
                values = pc.if_else(present, "true", "false")
            else:
                values = _json_texts(present)
            target, parts = HISTORY_OTHER_COLUMNS, oth_parts
        n = len(values)
        if n == 0:
            continue
        parts.append(
            pa.Table.from_arrays(
                [pa.repeat(rid, n), steps.filter(valid), wall.filter(valid), pa.repeat(pa.scalar(name), n), values],
                schema=target,
            )
        )
    history = pa.concat_tables(num_parts) if num_parts else HISTORY_COLUMNS.empty_table()
    other = pa.concat_tables(oth_parts) if oth_parts else HISTORY_OTHER_COLUMNS.empty_table()
    return history, other


def _flatten_structs(table: pa.Table) -> pa.Table:
    """Struct columns -> "parent.child" columns, as nested dicts are in `rows_to_long`.

    A struct with a `_type` field is a W&B media/table reference and stays one
    column (one JSON value), again as in `rows_to_long`.
    """
    names: list[str] = []
    columns: list[pa.ChunkedArray] = []
    pending = list(zip(table.column_names, table.columns, strict=True))
    while pending:
        name, col = pending.pop(0)
        typ = col.type
        if pa.types.is_struct(typ) and typ.get_field_index("_type") < 0:
            children = [(f"{name}.{typ.field(i).name}", pc.struct_field(col, [i])) for i in range(typ.num_fields)]
            pending[:0] = children
        else:
            names.append(name)
            columns.append(col)
    return pa.Table.from_arrays(columns, names=names)


def _json_texts(values: pa.Array) -> pa.Array:
    """JSON text of each value; logged text repeats a lot, so each distinct value is encoded once."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        encoded = values.dictionary_encode()
        texts = pa.array([dumps(v) for v in encoded.dictionary.to_pylist()], pa.string())
        return texts.take(encoded.indices)
    return pa.array([dumps(v) for v in values.to_pylist()], pa.string())


def _flat_items(row: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in row.items():
        if isinstance(value, dict) and "_type" not in value:
            yield from _flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _utc_micros(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds (NaN = unknown) -> UTC microsecond timestamps, rounded like the local source."""
    missing = ~np.isfinite(seconds)
    micros = np.rint(np.where(missing, 0.0, seconds) * 1e6).astype(np.int64)
    return pa.array(micros, pa.int64(), mask=missing).cast(HISTORY_COLUMNS.field("wall_time").type)


def as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def parse_time(text: Any) -> dt.datetime | None:
    """W&B's `createdAt` ("2024-01-01T00:00:00", UTC without an offset, or with one)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return as_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def server_step_metrics(rawconfig: Any) -> tuple[tuple[str, str], ...]:
    """The x-axes a run defined with `define_metric(..., step_metric=...)`, as the server keeps them.

    The SDK uploads its metric definitions into the run config as `_wandb.m`: a list
    of MetricRecords encoded by field number (1 name, 4 step_metric, 5 a 1-based index
    into the same list for the step metric), globs expanded to the concrete keys logged.
    Anything else found there is ignored: a run without definitions uses `_step`.
    """
    wandb_part = rawconfig.get("_wandb") if isinstance(rawconfig, Mapping) else None
    if isinstance(wandb_part, Mapping) and isinstance(wandb_part.get("value"), Mapping):
        wandb_part = wandb_part["value"]
    defs = wandb_part.get("m") if isinstance(wandb_part, Mapping) else None
    if not isinstance(defs, list):
        return ()
    names = [d.get("1") if isinstance(d, Mapping) else None for d in defs]
    out: dict[str, str] = {}
    for d, name in zip(defs, names):
        if not isinstance(name, str) or not name:
            continue
        step = d.get("4")
        index = d.get("5")
        if not step and isinstance(index, int) and not isinstance(index, bool) and 1 <= index <= len(names):
            step = names[index - 1]
        if isinstance(step, str) and step:
            out[name] = step
    return tuple(out.items())
