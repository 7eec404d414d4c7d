"""A resumed run's segments (one `.wandb` file each, same run id) read as one run: histories merged
by step (a step two segments log takes the later segment's values), config and summary folded
oldest to newest (latest wins), the state taken from the last segment, and the stored steps a
new segment logs again reported as restated."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.sources.base import RunMeta, RunRead
from pipelines.sources.wandb_file import WandbFileError
from pipelines.sources.wandb_segment_reader import Segment, is_number, read_run_file, read_segment


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
            parts.append(read_segment(p, None if k in new else after_step))
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


def _after(
    parts: list[Segment], merged: _Merged, after_step: int, new: set[int]
) -> tuple[pa.Table, pa.Table, list[int]]:
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


def _merge_histories(parts: list[Segment]) -> _Merged:
    """Histories of the segments merged by step (the later segment wins a step), and what disagreed."""
    tables = {"history": [p.read.history for p in parts], "other": [p.read.other for p in parts]}
    seg_of = {
        name: np.concatenate([np.full(t.num_rows, k, dtype=np.int64) for k, t in enumerate(ts)])
        for name, ts in tables.items()
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
    parts: list[Segment], history: pa.Table, steps: np.ndarray, segs: np.ndarray, uniq: np.ndarray, winner: np.ndarray
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


def _merge_meta(parts: list[Segment]) -> RunMeta:
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
    runtimes = [m.runtime_s for m in metas if is_number(m.runtime_s)]
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
