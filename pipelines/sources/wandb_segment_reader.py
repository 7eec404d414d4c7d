"""One `.wandb` run file (one segment of a run) read into the run's metadata and history tables:
its records sorted by type, their config, summary and history folded, the run record's fields kept."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wandb.proto.wandb_internal_pb2 import ConfigItem, SummaryItem

from pipelines.sources.base import RunMeta, RunRead
from pipelines.sources.wandb_config_summary import ItemLog
from pipelines.sources.wandb_file import RECORD_TYPE, Record, WandbFileError, iter_payloads, parse, record_type_number
from pipelines.sources.wandb_history_folding import RUNTIME_KEY, BuiltHistory, HistoryLog

RUN_FILE_SUFFIX = ".wandb"
_HISTORY, _SUMMARY, _CONFIG, _RUN, _EXIT, _METRIC = (
    RECORD_TYPE[t] for t in ("history", "summary", "config", "run", "exit", "metric")
)


def read_run_file(path: str | Path, after_step: int | None = None) -> RunRead:
    """Read one `run-<id>.wandb` file into metadata and history rows with step > after_step."""
    return read_segment(path, after_step).read


@dataclass(frozen=True)
class Segment:
    """One file of a run, read."""

    path: Path
    read: RunRead
    min_step: int | None


def read_segment(path: str | Path, after_step: int | None) -> Segment:
    path = Path(path)
    if path.suffix != RUN_FILE_SUFFIX:
        raise WandbFileError(f"{path}: not a W&B run file (expected run-<id>.wandb)")
    warnings: list[str] = []
    run: Any = None
    exit_record: Any = None
    step_metrics: dict[str, str] = {}  # metric name or glob -> its step metric, the latest definition winning
    config = ItemLog(path, "config", ConfigItem, warnings)
    summary = ItemLog(path, "summary", SummaryItem, warnings)
    history = HistoryLog(path, after_step, warnings)
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
    return Segment(
        path, RunRead(meta=meta, history=built.history, other=built.other, warnings=warnings), built.min_step
    )


def _define_metric(step_metrics: dict[str, str], metric: Any) -> None:
    """Note what one `define_metric` record says about a metric's x-axis.

    `wandb.define_metric("elo/*", step_metric="train/global_step")` writes a MetricRecord
    with `glob_name` and `step_metric`; a later definition of the same name replaces it.
    """
    name = metric.name or metric.glob_name
    if name and metric.step_metric:
        step_metrics.pop(name, None)  # re-inserted last: the newest definition wins and sorts last
        step_metrics[name] = metric.step_metric


def run_id_from_filename(path: Path) -> str:
    """`run-<id>.wandb` -> `<id>`; other names keep their stem."""
    return path.stem.removeprefix("run-")


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
    history: BuiltHistory,
    exit_record: Any,
) -> RunMeta:
    """Fold what the records said about the run into one RunMeta."""
    runtimes = [r for r in (history.max_runtime, summary.get(RUNTIME_KEY)) if is_number(r)]
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
        started_at=started_at(run),
        runtime_s=runtime,
        last_step=history.max_step,
        source=str(path),
    )


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def started_at(run: Any) -> dt.datetime | None:
    if run is None or not run.HasField("start_time"):
        return None
    ts = run.start_time
    try:
        return dt.datetime.fromtimestamp(ts.seconds, dt.UTC) + dt.timedelta(microseconds=ts.nanos // 1000)
    except (OverflowError, OSError, ValueError):
        return None  # no representable time (a damaged or foreign log): unknown, not a failed read
