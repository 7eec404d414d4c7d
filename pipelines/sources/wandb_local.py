"""W&B runs read straight from local `.wandb` transaction logs (offline or synced run folders): the
run source, its handle on a run's segment files (a resumed run has one per segment), and which
segments an incremental read takes whole."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.sources.base import RunRead, RunRef
from pipelines.sources.wandb_run_discovery import discover
from pipelines.sources.wandb_segment_merging import read_run_segments

__all__ = ["LocalRunSource"]


@dataclass(frozen=True)
class _Handle:
    """Where a discovered run lives (its segments' files, oldest first), plus anything discovery had to say."""

    paths: tuple[Path, ...]
    warnings: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # per segment: what identifies it across syncs (its start time)

    @property
    def path(self) -> Path:
        """The newest segment's file."""
        return self.paths[-1]

    def change_token(self) -> str:
        """Size and mtime of every segment's file: changes when one grows or a new one appears."""
        if len(self.paths) == 1:
            st = self.paths[0].stat()
            return f"file:{st.st_size}:{st.st_mtime_ns}"
        parts = []
        for key, path in zip(self.keys, self.paths):
            st = path.stat()
            parts.append(f"{key}={st.st_size}:{st.st_mtime_ns}")
        return _SEGMENTS_TOKEN + ",".join(parts)


_SEGMENTS_TOKEN = "segments:"


class LocalRunSource:
    """Runs from local W&B run folders (`wandb/offline-run-*/run-<id>.wandb`, `wandb/run-*/...`)."""

    name = "wandb-local"

    def __init__(self, dirs: Sequence[str | Path]) -> None:
        self.dirs = [Path(d) for d in dirs]

    def runs(self) -> Iterator[RunRef]:
        """Every run under the configured dirs, once each (all its segments), in a stable order."""
        segments, keys, warnings = discover(self.dirs)
        for run_id, paths in sorted(segments.items()):
            label = str(paths[-1]) if len(paths) == 1 else f"{paths[-1]} (and {len(paths) - 1} earlier segment(s))"
            handle = _Handle(tuple(paths), tuple(warnings.get(run_id, ())), tuple(keys[run_id]))
            yield RunRef(run_id=run_id, label=label, handle=handle)

    def read(self, ref: RunRef, after_step: int | None, stored_token: str | None = None) -> RunRead:
        """Metadata plus history rows with step > after_step (all rows if None), and steps a new segment restates."""
        fn, args = self.read_task(ref, after_step, stored_token)
        return fn(*args)

    def read_task(
        self, ref: RunRef, after_step: int | None, stored_token: str | None = None
    ) -> tuple[Callable[..., RunRead], tuple]:
        """`read(...)` as a picklable (function, args): the ingest can run it in a worker process."""
        handle = ref.handle if isinstance(ref.handle, _Handle) else _Handle((Path(ref.label),))
        return _read_handle, (handle, after_step, stored_token)

    def close(self) -> None:
        """Nothing to release: files are opened and closed per read."""


def _read_handle(handle: _Handle, after_step: int | None, stored_token: str | None = None) -> RunRead:
    new = _new_segments(handle, stored_token) if after_step is not None else None
    result = read_run_segments(handle.paths, after_step, new_segments=new)
    result.warnings[:0] = handle.warnings
    return result


def _new_segments(handle: _Handle, stored_token: str | None) -> set[int]:
    """The handle's segments to read whole: those not there when the run was last stored (by its token
    then), and an older segment that changed since (it grew after a newer one was stored: its new steps lie
    below the stored ones, so an incremental read would never reach them)."""
    n = len(handle.paths)
    if n == 1 or stored_token is None:
        return set()
    stats = [f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in handle.paths]
    if stored_token.startswith(_SEGMENTS_TOKEN):
        known = dict(part.split("=", 1) for part in stored_token[len(_SEGMENTS_TOKEN) :].split(","))
        # grown: a larger file (a copy made again has a new mtime but the same bytes)
        return {
            k for k, key in enumerate(handle.keys)
            if key not in known or (k < n - 1 and _size_of(stats[k]) > _size_of(known[key]))
        }  # fmt: skip
    # Stored while the run had one file: that one is the segment whose size and mtime match, else the oldest.
    old = stats.index(stored_token.removeprefix("file:")) if stored_token.removeprefix("file:") in stats else 0
    return set(range(n)) - {old}


def _size_of(stat_text: str) -> int:
    try:
        return int(stat_text.split(":", 1)[0])
    except ValueError:
        return -1
