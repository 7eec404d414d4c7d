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
import pyarrow.compute as pc

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

    Only the last write per key path is kept. Writes that take part in nesting
    (a tuple path, or a top-level key that some tuple path starts with) move to
    the end, so replaying in dict order nests parents and children exactly as
    the file did; all other writes skip that bookkeeping, which keeps the
    per-step summary records cheap.
    """

    def __init__(self) -> None:
        self.writes: dict[str | tuple[str, ...], Any] = {}
        self.roots: set[str] = set()  # first elements of tuple paths seen so far

    def update(self, items: Iterable[Any]) -> None:
        writes, roots = self.writes, self.roots
        for item in items:
            nested = item.nested_key
            if len(nested) == 1:
                path: str | tuple[str, ...] = nested[0]
                if path in roots:
                    writes.pop(path, None)
            else:
                path = self._path(item, nested)
            writes[path] = item.value_json

    def remove(self, items: Iterable[Any]) -> None:
        writes = self.writes
        for item in items:
            nested = item.nested_key
            path = nested[0] if len(nested) == 1 else self._path(item, nested)
            writes.pop(path, None)
            writes[path] = _REMOVED

    def _path(self, item: Any, nested: Sequence[str]) -> str | tuple[str, ...]:
        """The path of an item without a one-element nested_key, moved to the end of the writes."""
        path: str | tuple[str, ...]
        if nested:
            path = tuple(nested)
            self.roots.add(path[0])
        else:
            path = item.key
        self.writes.pop(path, None)
        return path

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


# A JSON value is a number (or W&B's NaN/Infinity/-Infinity token) iff it starts with one of these.
_NUMERIC_FIRST_CHARS = pa.array(list("-0123456789NI"), pa.string())
_NO_STEP = -(2**63)


class _HistoryBuilder:
    """History rows collected as flat Python lists, then split and typed in bulk with Arrow.

    The per-item loop only appends each item's key path and JSON text; deciding
    numeric vs other, pulling out _step/_timestamp/_runtime and filtering by
    step all happen once over whole columns, which is where the speed comes from.
    """

    def __init__(self, after_step: int | None) -> None:
        self.after_step = after_step
        self.paths: list[str | tuple[str, ...]] = []
        self.value_jsons: list[str] = []
        self.row_steps: list[int] = []  # _NO_STEP when the record has no step field
        self.row_counts: list[int] = []
        self.skipped_max_step: int | None = None

    def add(self, history: Any) -> None:
        """Append one HistoryRecord, or only note its step when it is at or before `after_step`."""
        step = history.step.num if history.HasField("step") else _NO_STEP
        if step != _NO_STEP and self.after_step is not None and step <= self.after_step:
            # The cheap path for incremental reads: no item is touched.
            if self.skipped_max_step is None or step > self.skipped_max_step:
                self.skipped_max_step = step
            return
        paths, value_jsons = self.paths, self.value_jsons
        start = len(paths)
        for item in history.item:
            nested = item.nested_key
            paths.append(nested[0] if len(nested) == 1 else (tuple(nested) or item.key))
            value_json = item.value_json
            value_jsons.append(value_json if value_json else _typed_json(item))
        self.row_steps.append(step)
        self.row_counts.append(len(paths) - start)

    def build(self, run_id: str) -> _BuiltHistory:
        """Split the collected items into the numeric and other tables, plus step/runtime facts."""
        n_items = len(self.paths)
        counts = np.asarray(self.row_counts, dtype=np.int64)
        row_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)

        # Key paths -> codes into a small table of distinct keys.
        distinct = list(dict.fromkeys(self.paths))
        code_of = {p: i for i, p in enumerate(distinct)}
        codes = np.fromiter(map(code_of.__getitem__, self.paths), dtype=np.int64, count=n_items)
        names = [p if isinstance(p, str) else ".".join(p) for p in distinct]
        special = np.zeros(len(distinct), dtype=bool)
        special_code = {}
        for i, p in enumerate(distinct):
            if isinstance(p, str) and p in _SPECIAL_KEYS:
                special[i] = True
                special_code[p] = i

        texts = pa.array(self.value_jsons, pa.string())
        is_num = _numeric_mask(texts)
        values = np.full(n_items, np.nan)
        values[is_num] = _parse_floats(texts.filter(pa.array(is_num)))

        def per_row(key: str) -> tuple[np.ndarray, np.ndarray]:
            """(row numbers, values) of a wandb-core bookkeeping item such as _step."""
            code = special_code.get(key)
            if code is None:
                return np.empty(0, np.int64), np.empty(0)
            hit = (codes == code) & is_num
            return row_of[hit], values[hit]

        steps = np.asarray(self.row_steps, dtype=np.int64)
        rows, step_values = per_row(STEP_KEY)
        # A record without a step field takes its step from the _step item.
        missing = (steps[rows] == _NO_STEP) & np.isfinite(step_values)
        steps[rows[missing]] = step_values[missing].astype(np.int64)
        times = np.full(len(counts), np.nan)
        rows, ts_values = per_row(TIMESTAMP_KEY)
        times[rows] = ts_values
        _, runtimes = per_row(RUNTIME_KEY)

        known = steps != _NO_STEP
        keep_row = known if self.after_step is None else known & (steps > self.after_step)
        keep = keep_row[row_of] & ~special[codes]
        numeric, other = keep & is_num, keep & ~is_num

        names_arr = pa.array(names, pa.string())
        history = pa.Table.from_arrays(
            [
                pa.repeat(pa.scalar(run_id, pa.string()), int(numeric.sum())),
                pa.array(steps[row_of[numeric]], pa.int64()),
                _utc_column(times[row_of[numeric]]),
                names_arr.take(pa.array(codes[numeric])),
                pa.array(values[numeric], pa.float64()),
            ],
            schema=HISTORY_COLUMNS,
        )
        other_table = pa.Table.from_arrays(
            [
                pa.repeat(pa.scalar(run_id, pa.string()), int(other.sum())),
                pa.array(steps[row_of[other]], pa.int64()),
                _utc_column(times[row_of[other]]),
                names_arr.take(pa.array(codes[other])),
                texts.filter(pa.array(other)),
            ],
            schema=HISTORY_OTHER_COLUMNS,
        )
        max_step = int(steps[known].max(initial=_NO_STEP))
        if self.skipped_max_step is not None:
            max_step = max(max_step, self.skipped_max_step)
        return _BuiltHistory(
            history=history,
            other=other_table,
            max_step=None if max_step == _NO_STEP else max_step,
            max_runtime=float(np.nanmax(runtimes)) if runtimes.size and not np.isnan(runtimes).all() else None,
        )


@dataclass(frozen=True)
class _BuiltHistory:
    history: pa.Table
    other: pa.Table
    max_step: int | None
    max_runtime: float | None


def _numeric_mask(texts: pa.StringArray) -> np.ndarray:
    """True where the JSON text is a number or a NaN/Infinity/-Infinity token."""
    if len(texts) == 0:
        return np.zeros(0, dtype=bool)
    first = pc.utf8_slice_codeunits(texts, 0, 1)
    return pc.is_in(first, value_set=_NUMERIC_FIRST_CHARS).to_numpy(zero_copy_only=False)


def _parse_floats(texts: pa.StringArray) -> np.ndarray:
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


def _typed_json(item: Any) -> str:
    """JSON text of an item written only in the typed encoding (WANDB__HISTORY_VALUE_ENCODING)."""
    kind = item.WhichOneof("value")
    if kind in ("number", "integer", "boolean", "text"):
        return json.dumps(getattr(item, kind), ensure_ascii=False)
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
    history = _HistoryBuilder(after_step)
    exit_record: Any = None

    for record in iter_records(path, warnings, _NEEDED_TYPES):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.add(record.history)
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

    run_id = (run.run_id if run is not None else "") or run_id_from_filename(path)
    built = history.build(run_id)
    meta = _run_meta(path, run_id, run, config, summary, built, exit_record)
    return RunRead(meta=meta, history=built.history, other=built.other, warnings=warnings)


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
    path: Path, run_id: str, run: Any, config: _Fold, summary: _Fold, history: _BuiltHistory, exit_record: Any
) -> RunMeta:
    """Fold what the records said about the run into one RunMeta."""
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
