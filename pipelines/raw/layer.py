"""The raw layer: append-only parquet batches, committed atomically.

Every data file is written to a temporary name and renamed into place, so a
reader never sees half a file. A batch counts only once its commit record
exists: whoever next takes the write lock (an ingest, a dbt build, a publish)
deletes data files of uncommitted (crashed) batches first, readers of the
published snapshot read only committed files (`Warehouse.committed_files`), and
the incremental state (steps per run, lines per file) is folded from commit
records only. Together this makes ingest crash-safe and idempotent.
tests/test_crash_safety.py kills ingests and publishes at every step (through
the GRPO_TEST_KILL_AT hook of `pipelines.raw.crash_points`, a no-op unless a test sets it) to prove it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.raw import write_lock
from pipelines.raw.atomic_files import write_parquet_atomic
from pipelines.raw.batches import IngestState, RawBatch, batch_id_of, fold_state
from pipelines.raw.crash_points import kill_point
from pipelines.raw.paths import WarehousePaths
from pipelines.raw.schemas import SCHEMAS


class Warehouse(WarehousePaths):
    """A warehouse directory and the raw layer's writes: its layout, the write lock, orphan cleanup, batches and state."""

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root)
        self.orphans_removed: list[Path] = []

    def ensure(self) -> Warehouse:
        """Create the layout; each raw table gets an empty typed schema file."""
        for table, schema in SCHEMAS.items():
            d = self.table_dir(table)
            d.mkdir(parents=True, exist_ok=True)
            schema_file = d / "schema.parquet"
            if not schema_file.exists():
                write_parquet_atomic(schema.empty_table(), schema_file)
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        self.build_db.parent.mkdir(parents=True, exist_ok=True)
        return self

    @contextlib.contextmanager
    def lock(self, timeout_s: float = 0.0, purpose: str = "ingest", **how: Any) -> Iterator[None]:
        """The write lock (`write_lock.hold`: waits up to `timeout_s`, `wait_for_build_db`, `on_wait`);
        once held, orphans are removed (see clean_orphans) and left in `self.orphans_removed`."""
        with write_lock.hold(self, timeout_s, purpose, **how):
            # The holder is the only writer, so whatever a writer that died left
            # behind (files of a batch it never committed, temp files) goes now,
            # before a dbt build or a publish could read it, not only at the
            # next ingest.
            self.orphans_removed = self.clean_orphans()
            yield

    def clean_orphans(self) -> list[Path]:
        """Delete data files of batches that never committed, and stray temp files.

        Call only while holding the lock.
        """
        committed = {p.stem for p in self.batches_dir.glob("*.json")} if self.batches_dir.exists() else set()
        removed: list[Path] = []

        def remove(p: Path) -> None:
            p.unlink(missing_ok=True)
            removed.append(p)
            kill_point("cleanup.after_first_removal")

        # Temp files are named .<name>.<pid>.tmp: only a dead writer's are removed,
        # as ensure() (outside the lock) may be writing a schema file right now.
        for table in SCHEMAS:
            d = self.table_dir(table)
            if not d.exists():
                continue
            for p in d.iterdir():
                if p.name.endswith(".tmp"):
                    if not write_lock.tmp_writer_alive(p.name, ".tmp"):
                        remove(p)
                elif p.name.startswith("batch-") and batch_id_of(p) not in committed:
                    remove(p)
        if self.batches_dir.exists():
            for p in self.batches_dir.glob(".*.tmp"):
                if not write_lock.tmp_writer_alive(p.name, ".tmp"):
                    remove(p)
        # A snapshot publish that died leaves its temp database (and WAL) in the
        # root, .grpo.duckdb.<pid>.tmp[.wal], and maybe a half-written export
        # under published/ (.<name>.<pid>.tmp).
        if self.root.exists():
            for p in self.root.glob(f".{self.snapshot_db.name}.*.tmp*"):
                if not write_lock.tmp_writer_alive(p.name, ".tmp.wal" if p.name.endswith(".wal") else ".tmp"):
                    remove(p)
        published = self.root / "published"
        if published.exists():
            for p in published.rglob(".*.tmp"):
                if not write_lock.tmp_writer_alive(p.name, ".tmp"):
                    remove(p)
        return removed

    def state(self) -> IngestState:
        return fold_state(self.committed_batches())

    def batch(self) -> RawBatch:
        return RawBatch(self)
