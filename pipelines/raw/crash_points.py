"""The crash-test hook: a process can be made to SIGKILL itself at a named point.

GRPO_TEST_KILL_AT=<label>[@<n>] makes the process SIGKILL itself the n-th time
(default: the first) it reaches the point called <label>, so the crash-safety
tests (tests/test_crash_safety.py and the crash bench) can crash an ingest or a
publish exactly between two steps. Unset, which it always is outside those
tests, kill_point() only reads the variable and returns.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

KILL_ENV = "GRPO_TEST_KILL_AT"
KILL_POINTS = (
    "parquet.tmp_torn",  # a data file's temp copy is half written (atomic_files.write_parquet_atomic)
    "parquet.tmp_written",  # temp copy complete and fsynced, not yet renamed into place
    "parquet.renamed",  # a data file was renamed into place
    "commit.before_record",  # every data file of the batch is in place, no commit record yet
    "json.tmp_torn",  # the commit record's temp copy is half written
    "commit.after_record",  # the commit record is in place (lock still held)
    "cleanup.after_first_removal",  # orphan cleanup removed one file and died
    "ingest.between_sources",  # all run sources read and written, no event source started (the ingest run)
    "publish.copying",  # the new snapshot holds some tables, not all (publishing)
    "publish.before_rename",  # the new snapshot is complete under its temp name
    "publish.after_rename",  # the new snapshot replaced grpo.duckdb
)
_kill_counts: dict[str, int] = {}


def kill_point(label: str, torn: Path | None = None) -> None:
    """Test hook (see KILL_ENV): SIGKILL this process here if the tests ask for `label`.

    With `torn`, that file is first cut to half its size, which is what a
    process killed in the middle of writing it leaves behind.
    """
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    name, _, nth = spec.partition("@")
    if name != label:
        return
    _kill_counts[label] = _kill_counts.get(label, 0) + 1
    if _kill_counts[label] != int(nth or 1):
        return
    if torn is not None:
        with open(torn, "r+b") as fh:
            fh.truncate(os.fstat(fh.fileno()).st_size // 2)
    os.kill(os.getpid(), signal.SIGKILL)
