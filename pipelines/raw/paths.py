"""Where everything of a warehouse lives, and which raw files are committed (readers read only those).

Layout under the warehouse root (see warehouse/README.md)::

    raw/<table>/schema.parquet            empty, typed: readers see an empty table, not an error
    raw/<table>/batch-<batch_id>-<n>.parquet
    raw/_batches/<batch_id>.json          commit record, written last
    build/warehouse.duckdb                dbt's private build database
    grpo.duckdb                           the published read-only snapshot
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class WarehousePaths:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def batches_dir(self) -> Path:
        return self.raw / "_batches"

    @property
    def build_db(self) -> Path:
        return self.root / "build" / "warehouse.duckdb"

    @property
    def snapshot_db(self) -> Path:
        return self.root / "grpo.duckdb"

    def table_dir(self, table: str) -> Path:
        return self.raw / table

    def table_glob(self, table: str) -> str:
        return str(self.table_dir(table) / "*.parquet")

    def committed_batches(self) -> list[dict[str, Any]]:
        if not self.batches_dir.exists():
            return []
        records = []
        for p in sorted(self.batches_dir.glob("*.json")):
            with open(p, encoding="utf-8") as fh:
                records.append(json.load(fh))
        return records

    def committed_files(self, table: str, records: list[dict[str, Any]] | None = None) -> list[Path]:
        """The files of `table` that belong to committed batches, plus its schema file.

        What a reader should read: unlike the `*.parquet` glob it never includes
        a batch still being written or one whose writer died before committing.
        """
        d = self.table_dir(table)
        files = [d / "schema.parquet"]
        for record in self.committed_batches() if records is None else records:
            files.extend(d / name for name in (record.get("files") or {}).get(table, []))
        return files
