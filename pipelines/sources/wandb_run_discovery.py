"""The `.wandb` files a user's paths name (project dirs, `wandb/` dirs, run folders, single files),
grouped by run id into a run's segments, ordered by their run records' start times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines.sources.wandb_file import RECORD_TYPE, Record, WandbFileError, iter_payloads, parse, record_type_number
from pipelines.sources.wandb_segment_reader import RUN_FILE_SUFFIX, run_id_from_filename, started_at

_RUN = RECORD_TYPE["run"]


def discover(dirs: Iterable[Path]) -> tuple[dict[str, list[Path]], dict[str, list[str]], dict[str, list[str]]]:
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
                    return started_at(record.run) if record is not None else None
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


def _size(path: Path) -> int:
    return path.stat().st_size
