"""W&B runs read straight from local `.wandb` transaction logs (offline or synced run folders).

Discovery accepts project dirs (holding `wandb/`), `wandb/` dirs, single run
folders and `.wandb` files. Reading folds the run's records into metadata, a
long numeric history table and a table of non-numeric history values.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.sources.base import (
    HISTORY_COLUMNS,
    HISTORY_OTHER_COLUMNS,
    RunMeta,
    RunRead,
    RunRef,
)
from pipelines.sources.wandb_file import WandbFileError, iter_records
from pipelines.warehouse import UTC_TS

__all__ = ["LocalRunSource", "WandbFileError", "discover_run_files", "read_run_file"]

RUN_FILE_SUFFIX = ".wandb"
# Keys wandb-core adds to every history row; they become columns, not metrics.
STEP_KEY, RUNTIME_KEY, TIMESTAMP_KEY = "_step", "_runtime", "_timestamp"
_SPECIAL_KEYS = frozenset({STEP_KEY, RUNTIME_KEY, TIMESTAMP_KEY})
_INTERNAL_KEY = "_wandb"
# Record types the reader uses; the rest (console output, system stats...) is skipped unparsed.
_NEEDED_TYPES = frozenset({"run", "history", "summary", "config", "exit"})
_REMOVED = object()


@dataclass(frozen=True)
class _Handle:
    """Where a discovered run lives, plus anything discovery had to say about it."""

    path: Path
    warnings: tuple[str, ...] = ()


class LocalRunSource:
    """Runs from local W&B run folders (`wandb/offline-run-*/run-<id>.wandb`, `wandb/run-*/...`)."""

    name = "wandb-local"

    def __init__(self, dirs: Sequence[str | Path]) -> None:
        self.dirs = [Path(d) for d in dirs]

    def runs(self) -> Iterator[RunRef]:
        """Every run under the configured dirs, once each, in a stable order."""
        files, warnings = discover_run_files(self.dirs)
        for run_id, path in sorted(files.items()):
            yield RunRef(run_id=run_id, label=str(path), handle=_Handle(path, tuple(warnings.get(run_id, ()))))

    def read(self, ref: RunRef, after_step: int | None) -> RunRead:
        """Metadata plus history rows with step > after_step (all rows if None)."""
        handle = ref.handle if isinstance(ref.handle, _Handle) else _Handle(Path(ref.label))
        result = read_run_file(handle.path, after_step)
        result.warnings[:0] = handle.warnings
        return result


# --- discovery ---------------------------------------------------------------


def discover_run_files(dirs: Iterable[Path]) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """Map run id -> run file across `dirs`, plus per-run warnings about duplicates.

    Files are deduplicated by real path (so `latest-run` adds nothing); when one
    run id has two different files the larger one wins, with a warning.
    """
    seen: set[Path] = set()
    chosen: dict[str, Path] = {}
    warnings: dict[str, list[str]] = {}
    for d in dirs:
        for path in _run_files_under(Path(d)):
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            run_id = run_id_from_filename(path)
            other = chosen.get(run_id)
            if other is None:
                chosen[run_id] = path
                continue
            keep, drop = (path, other) if _size(path) > _size(other) else (other, path)
            chosen[run_id] = keep
            warnings.setdefault(run_id, []).append(
                f"run {run_id} appears in two files; reading the larger {keep} and ignoring {drop}"
            )
    return chosen, warnings


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


# --- reading -----------------------------------------------------------------


class _Fold:
    """Config or summary updates/removes folded in file order into nested dicts.

    Only the last write per key path is kept, moved to the end so replaying
    writes in order still nests parents and children correctly.
    """

    def __init__(self) -> None:
        self.writes: dict[str | tuple[str, ...], Any] = {}

    def update(self, items: Iterable[Any]) -> None:
        writes = self.writes
        for item in items:
            path = _item_path(item)
            writes.pop(path, None)
            writes[path] = item.value_json

    def remove(self, items: Iterable[Any]) -> None:
        writes = self.writes
        for item in items:
            path = _item_path(item)
            writes.pop(path, None)
            writes[path] = _REMOVED

    def get_json(self, key: str) -> str | None:
        value = self.writes.get(key)
        return value if isinstance(value, str) else None

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, value_json in self.writes.items():
            keys = (path,) if isinstance(path, str) else path
            if value_json is _REMOVED:
                _delete_path(out, keys)
            else:
                _set_path(out, keys, _loads(value_json))
        out.pop(_INTERNAL_KEY, None)
        return out


def _item_path(item: Any) -> str | tuple[str, ...]:
    """A top-level key as a str, a nested path as a tuple (so both spellings of one key match)."""
    nested = item.nested_key
    n = len(nested)
    if n == 1:
        return nested[0]
    if n:
        return tuple(nested)
    return item.key


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


class _HistoryBuilder:
    """Columns of the numeric and non-numeric history tables, built as plain lists."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[float] = []
        self.row_steps: list[int] = []
        self.row_times: list[float] = []  # NaN when a row has no _timestamp
        self.row_counts: list[int] = []
        self.other: list[tuple[int, float, str, str]] = []  # step, time, key, value_json
        self.max_step: int | None = None
        self.max_runtime: float | None = None
        self._joined: dict[tuple[str, ...], str] = {}

    def add(self, history: Any, after_step: int | None) -> None:
        """Append one HistoryRecord's items, unless its step is at or before `after_step`."""
        step: int | None = None
        if history.HasField("step"):
            step = history.step.num
            self._saw_step(step)
            if after_step is not None and step <= after_step:
                return  # skip the item loop entirely: the cheap path for incremental reads
        keys, values, joined = self.keys, self.values, self._joined
        start = len(keys)
        others: list[tuple[str, str]] = []
        timestamp = math.nan
        item_step: int | None = None
        for item in history.item:
            nested = item.nested_key
            n = len(nested)
            if n == 1:
                key = nested[0]
            elif n:
                t = tuple(nested)
                key = joined.get(t) or joined.setdefault(t, ".".join(t))
            else:
                key = item.key
            value_json = item.value_json
            if key in _SPECIAL_KEYS:
                if key == STEP_KEY:
                    item_step = int(_number(value_json, item))
                elif key == TIMESTAMP_KEY:
                    timestamp = _number(value_json, item)
                else:
                    runtime = _number(value_json, item)
                    if self.max_runtime is None or runtime > self.max_runtime:
                        self.max_runtime = runtime
                continue
            try:
                # float() parses JSON numbers and W&B's NaN/Infinity/-Infinity tokens; every other
                # JSON value (string, true/false/null, list, object) starts with a char it rejects.
                values.append(float(value_json))
            except ValueError:
                if value_json:
                    others.append((key, value_json))
                    continue
                typed = _typed_value(item)
                if isinstance(typed, float):
                    values.append(typed)
                else:
                    others.append((key, typed))
                    continue
            keys.append(key)
        if item_step is not None:
            step = item_step  # the _step item is the row's own statement of its step
            self._saw_step(step)
        if step is None or (after_step is not None and step <= after_step):
            del keys[start:], values[start:]
            return
        count = len(keys) - start
        if count:
            self.row_steps.append(step)
            self.row_times.append(timestamp)
            self.row_counts.append(count)
        for key, value_json in others:
            self.other.append((step, timestamp, key, value_json))

    def _saw_step(self, step: int) -> None:
        if self.max_step is None or step > self.max_step:
            self.max_step = step

    def tables(self, run_id: str) -> tuple[pa.Table, pa.Table]:
        counts = np.asarray(self.row_counts, dtype=np.int64)
        steps = np.repeat(np.asarray(self.row_steps, dtype=np.int64), counts)
        times = np.repeat(np.asarray(self.row_times, dtype=np.float64), counts)
        history = pa.Table.from_arrays(
            [
                pa.repeat(pa.scalar(run_id, pa.string()), len(self.keys)),
                pa.array(steps, pa.int64()),
                _utc_column(times),
                pa.array(self.keys, pa.string()),
                pa.array(self.values, pa.float64()),
            ],
            schema=HISTORY_COLUMNS,
        )
        o_steps, o_times, o_keys, o_values = zip(*self.other) if self.other else ((), (), (), ())
        other = pa.Table.from_arrays(
            [
                pa.repeat(pa.scalar(run_id, pa.string()), len(self.other)),
                pa.array(o_steps, pa.int64()),
                _utc_column(np.asarray(o_times, dtype=np.float64)),
                pa.array(o_keys, pa.string()),
                pa.array(o_values, pa.string()),
            ],
            schema=HISTORY_OTHER_COLUMNS,
        )
        return history, other


def _number(value_json: str, item: Any) -> float:
    """A special item's numeric value (NaN if it is somehow not a number)."""
    try:
        return float(value_json)
    except ValueError:
        typed = _typed_value(item) if not value_json else None
        return typed if isinstance(typed, float) else math.nan


def _typed_value(item: Any) -> float | str:
    """An item written only in the typed encoding: a float if numeric, else its JSON text."""
    kind = item.WhichOneof("value")
    if kind in ("number", "integer"):
        return float(getattr(item, kind))
    if kind == "boolean":
        return "true" if item.boolean else "false"
    if kind == "text":
        return json.dumps(item.text, ensure_ascii=False)
    if kind == "json":
        return item.json
    return "null"


def _utc_column(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds (NaN = unknown) -> a UTC microsecond timestamp column."""
    missing = ~np.isfinite(seconds)
    micros = np.rint(np.where(missing, 0.0, seconds) * 1e6).astype(np.int64)
    return pa.array(micros, pa.int64(), mask=missing if missing.any() else None).cast(UTC_TS)


def read_run_file(path: str | Path, after_step: int | None = None) -> RunRead:
    """Read one `run-<id>.wandb` file into metadata and history rows with step > after_step."""
    path = Path(path)
    if path.suffix != RUN_FILE_SUFFIX:
        raise WandbFileError(f"{path}: not a W&B run file (expected run-<id>.wandb)")
    warnings: list[str] = []
    run: Any = None
    config = _Fold()
    summary = _Fold()
    history = _HistoryBuilder()
    exit_record: Any = None

    for record in iter_records(path, warnings, _NEEDED_TYPES):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.add(record.history, after_step)
        elif kind == "summary":
            summary.update(record.summary.update)
            summary.remove(record.summary.remove)
        elif kind == "config":
            config.update(record.config.update)
            config.remove(record.config.remove)
        elif kind == "run":
            if run is None:
                # The first run record carries the init config and any resumed summary.
                config.update(record.run.config.update)
                summary.update(record.run.summary.update)
                run = record.run
            else:
                run = _merge_run(run, record.run)
        elif kind == "exit":
            exit_record = record.exit

    meta = _run_meta(path, run, config, summary, history, exit_record)
    hist_table, other_table = history.tables(meta.run_id)
    return RunRead(meta=meta, history=hist_table, other=other_table, warnings=warnings)


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
    path: Path, run: Any, config: _Fold, summary: _Fold, history: _HistoryBuilder, exit_record: Any
) -> RunMeta:
    runtime: float | None = history.max_runtime
    summary_runtime = summary.get_json(RUNTIME_KEY)
    if summary_runtime is not None:
        try:
            runtime = max(runtime if runtime is not None else -math.inf, float(summary_runtime))
        except ValueError:
            pass
    state, exit_code = "running", None
    if exit_record is not None:
        exit_code = exit_record.exit_code
        state = "finished" if exit_code == 0 else "crashed"
        runtime = float(exit_record.runtime)

    def text(field: str) -> str | None:
        return (getattr(run, field) or None) if run is not None else None

    return RunMeta(
        run_id=text("run_id") or run_id_from_filename(path),
        run_name=text("display_name"),
        project=text("project"),
        entity=text("entity"),
        run_group=text("run_group"),
        job_type=text("job_type"),
        sweep_id=text("sweep_id"),
        tags=tuple(run.tags) if run is not None else (),
        notes=text("notes"),
        host=text("host"),
        config=config.result(),
        summary=summary.result(),
        state=state,
        exit_code=exit_code,
        started_at=_started_at(run),
        runtime_s=runtime,
        last_step=history.max_step,
        source=str(path),
    )


def _started_at(run: Any) -> dt.datetime | None:
    if run is None or not run.HasField("start_time"):
        return None
    ts = run.start_time
    return dt.datetime.fromtimestamp(ts.seconds, dt.UTC) + dt.timedelta(microseconds=ts.nanos // 1000)
