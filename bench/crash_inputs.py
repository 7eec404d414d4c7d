"""Inputs of the crash trials: the demo league as sources, served in two stages from one
fixed folder.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from pathlib import Path


def generate_sources(out_dir: Path, steps: int = 400, now: dt.datetime | None = None) -> Path:
    """A demo league (real wandb offline runs, 24 h of NDJSON events ending at `now`) under out_dir; ~10 s."""
    from pipelines.demo.build import generate_demo

    env_keys = ("WANDB_MODE", "WANDB_SILENT")
    saved = {k: os.environ.get(k) for k in env_keys}
    os.environ.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    try:
        generate_demo(out_dir, steps=steps, now=now)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out_dir


ARCHIVE_NAME = "axiom-export-archive.ndjson.gz"
GROWING_NAME = "axiom-export-live.ndjson"


class Inputs:
    """The demo's sources served in stages from one fixed folder (same paths every time).

    The demo's event lines (all its files, in time order) are served as two
    files whatever hour the demo ended at: a gzip archive with the first part
    and a plain file that grows (the rest).
    """

    def __init__(self, demo_dir: Path, folder: Path, event_lines: int | None = None, cut_run: bool = False) -> None:
        """`event_lines` keeps only that many lines in each of the two event files (faster trials).

        `cut_run` serves one run of stage A cut in the middle of its `.wandb`
        file (a run in progress).
        """
        self.folder = folder
        self.event_lines = event_lines
        self.cut_run = cut_run
        self.wandb = folder / "wandb"
        self.events = folder / "events"
        runs = sorted((demo_dir / "wandb").glob("*run-*/run-*.wandb"))  # folder names sort by start time
        assert len(runs) >= 5, f"expected the demo's runs under {demo_dir}"
        self.runs = runs
        # Stage A: the first four run files, and of a resumed run (several segment files) its first
        # segment but never its last, so stage B brings a new segment of a run stored in stage A.
        segments: dict[str, list[Path]] = {}
        for p in runs:
            segments.setdefault(p.stem.removeprefix("run-"), []).append(p)
        chosen = set(runs[:4])
        for files in segments.values():
            if len(files) > 1:
                chosen.add(files[0])
                chosen.discard(files[-1])
        self.stage_a_runs = [p for p in runs if p in chosen]
        lines: list[bytes] = []
        for p in sorted(p for p in (demo_dir / "events").iterdir() if p.is_file()):  # file names sort by day
            data = p.read_bytes()
            lines += (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).splitlines(keepends=True)
        self.demo_lines = lines  # every line the demo wrote, whatever is served
        split = len(lines) // 2 if event_lines is None else event_lines
        self.archive_lines = lines[:split]
        self.growing_lines = lines[split:] if event_lines is None else lines[split : split + event_lines]
        assert self.archive_lines and self.growing_lines, f"expected event lines under {demo_dir / 'events'}"
        # compressed once: every stage serves the archive byte for byte the same
        self.archive_gz = gzip.compress(b"".join(self.archive_lines), compresslevel=1, mtime=0)
        self.stage_name: str | None = None

    def drop_events_of(self, run_id: str) -> None:
        """Serve no event line that names `run_id`."""
        mark = f'"{run_id}"'.encode()
        self.archive_lines = [line for line in self.archive_lines if mark not in line]
        self.growing_lines = [line for line in self.growing_lines if mark not in line]
        self.archive_gz = gzip.compress(b"".join(self.archive_lines), compresslevel=1, mtime=0)

    @property
    def all_lines(self) -> list[bytes]:
        """Every event line stage B serves."""
        return self.archive_lines + self.growing_lines

    def stage_lines(self, name: str) -> list[bytes]:
        """The event lines the stage serves."""
        return self.archive_lines + (
            self.growing_lines[: len(self.growing_lines) // 2] if name == "A" else self.growing_lines
        )

    def stage(self, name: str) -> Inputs:
        """A: 4 run files and part of a resumed run (one file cut mid-file if cut_run), half the growing file.
        B: every run file whole, the whole file."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.events.mkdir(parents=True)
        chosen = self.stage_a_runs if name == "A" else self.runs
        for i, src in enumerate(chosen):
            dst = self.wandb / src.parent.name / src.name
            dst.parent.mkdir(parents=True)
            data = src.read_bytes()
            if name == "A" and i == 1 and self.cut_run:
                data = data[: len(data) // 2]  # a run still in progress
            dst.write_bytes(data)
        (self.events / ARCHIVE_NAME).write_bytes(self.archive_gz)
        (self.events / GROWING_NAME).write_bytes(b"".join(self.stage_lines(name)[len(self.archive_lines) :]))
        self.stage_name = name
        return self
