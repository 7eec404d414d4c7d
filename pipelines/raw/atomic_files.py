"""Files written so that a reader sees either no file or the whole file (temp name, fsync, rename)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.raw.crash_points import kill_point

# Text columns that hold a different value on (nearly) every row: a dictionary
# would only be built and thrown away.
_UNIQUE_TEXT_COLUMNS = frozenset({"record", "raw", "event_key", "config_json", "summary_json", "notes"})


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary encoding: repeated text (run ids, metric keys, batch ids, sources).

    Numbers and times are left plain: steps, values and times repeat too little
    for a dictionary to pay for building it (it cost ~10 % of writing history).
    """
    return [
        f.name
        for f in schema
        if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)) and f.name not in _UNIQUE_TEXT_COLUMNS
    ]


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` so that readers see either no file or the whole file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            row_group_size=1_000_000,
            use_dictionary=_dictionary_columns(table.schema),
        )
        kill_point("parquet.tmp_torn", torn=tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        kill_point("parquet.tmp_written")
        os.replace(tmp, path)
        kill_point("parquet.renamed")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    kill_point("json.tmp_torn", torn=tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
