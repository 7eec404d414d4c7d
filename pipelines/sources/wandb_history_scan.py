"""Live history pages of a W&B run straight into the long tables, without a dict per row.

`run.scan_history` pages the run through wandb-core (its `HistoryPage`
queries) and hands back each row as protobuf items of (key, JSON text);
wandb then calls `json.loads` once per value and builds a dict per row, and
`rows_to_long` walks those dicts again. Here the scan keeps each row's keys
and texts as they arrive, every text of the scan is parsed by one
`json.loads`, and the long tables are filled in one pass. The result is what
`rows_to_long` gives for the same rows, one row per step: when part of a
running run is already exported, wandb-core reads the export *and* pages the
same steps live (seen with 0.31 against the loopback server: steps 0-99 came
twice), so rows are keyed by step and the later (live) row wins.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from pipelines.sources.base import HISTORY_COLUMNS, HISTORY_OTHER_COLUMNS, dumps
from pipelines.sources.wandb_api_conversion import SPECIAL_KEYS, STEP_KEY, TIMESTAMP_KEY, long_table, rows_to_long

__all__ = ["scan_long"]


def _raw_row(history_row: Any) -> tuple[list[str], list[str]]:
    items = history_row.history_items
    return [item.key for item in items], [item.value_json for item in items]


def scan_long(run: Any, lo: int, hi: int, page_size: int) -> tuple[pa.Table, pa.Table]:
    """(numeric, other) long tables of steps lo..hi of a run, paged live through wandb-core."""
    scan = run.scan_history(page_size=page_size, min_step=lo, max_step=hi + 1, use_cache=False)
    # The scan converts each row with this (static) method, looked up on the instance.
    scan._convert_history_row_to_dict = _raw_row
    keys_of: list[list[str]] = []
    texts: list[str] = []
    dict_rows: list[dict[str, Any]] = []
    for row in scan:
        if isinstance(row, dict):  # a wandb whose scan does not call the method above
            dict_rows.append(row)
            continue
        keys, values = row
        keys_of.append(keys)
        texts.extend(values)
    if dict_rows:
        by_step = {int(r[STEP_KEY]): r for r in dict_rows if r.get(STEP_KEY) is not None}
        return rows_to_long((by_step[k] for k in sorted(by_step)), run.id)
    return _rows_long(keys_of, _parse_all(texts), run.id)


def _parse_all(texts: list[str]) -> list[Any]:
    """Every JSON text parsed, in one `json.loads` when they form a list item by item."""
    try:
        values = json.loads("[" + ",".join(texts) + "]")
        if len(values) == len(texts):
            return values
    except ValueError:
        pass
    return [json.loads(t) for t in texts]  # raises on the text that is not JSON, as wandb would


def _rows_long(keys_of: list[list[str]], values: list[Any], run_id: str) -> tuple[pa.Table, pa.Table]:
    # Row r's values are values[starts[r]:starts[r] + len(keys_of[r])].
    starts, at = [], 0
    for keys in keys_of:
        starts.append(at)
        at += len(keys)
    by_step: dict[int, int] = {}
    for r, keys in enumerate(keys_of):
        if STEP_KEY in keys:
            step = values[starts[r] + keys.index(STEP_KEY)]
            if step is not None:
                by_step[int(step)] = r  # a step read twice (export and live page): the later row wins
    num: tuple[list, list, list, list] = ([], [], [], [])
    oth: tuple[list, list, list, list] = ([], [], [], [])
    for step in sorted(by_step):
        r = by_step[step]
        keys = keys_of[r]
        row = values[starts[r] : starts[r] + len(keys)]
        if len(set(keys)) != len(keys):  # a key twice in one row: the later value, as in a dict
            fields = dict(zip(keys, row, strict=True))
            keys, row = list(fields), list(fields.values())
        ts = row[keys.index(TIMESTAMP_KEY)] if TIMESTAMP_KEY in keys else None
        ts = float(ts) if type(ts) in (int, float) else math.nan
        _add_items(keys, row, step, ts, "", num, oth)
    rid = pa.scalar(run_id, pa.string())
    return (
        long_table(HISTORY_COLUMNS, rid, num[0], num[1], num[2], pa.array(num[3], pa.float64())),
        long_table(HISTORY_OTHER_COLUMNS, rid, oth[0], oth[1], oth[2], pa.array(oth[3], pa.string())),
    )


def _add_items(keys: list[str], row: list[Any], step: int, ts: float, prefix: str, num: tuple, oth: tuple) -> None:
    """A row's items into the numeric or other lists, as `rows_to_long` sorts them."""
    n_step, n_time, n_key, n_val = num
    o_step, o_time, o_key, o_val = oth
    for key, value in zip(keys, row, strict=True):
        kind = type(value)
        if kind is float or kind is int:
            name = prefix + key
            if name in SPECIAL_KEYS:
                continue
            n_step.append(step)
            n_time.append(ts)
            n_key.append(name)
            n_val.append(float(value))
        elif value is None:
            continue
        elif kind is dict and "_type" not in value:
            _add_items(list(value), list(value.values()), step, ts, f"{prefix}{key}.", num, oth)
        else:
            name = prefix + key
            if name in SPECIAL_KEYS:
                continue
            o_step.append(step)
            o_time.append(ts)
            o_key.append(name)
            o_val.append(dumps(value))
