"""Readers of committed raw batches: aggregates over what is stored, never over a batch being written."""

from __future__ import annotations

import duckdb

from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import EVENTS, HISTORY, REJECTS, RUNS


def aggregate(warehouse: Warehouse, table: str, expr: str = "count(*)", records: list | None = None):
    """One aggregate (`expr` is ours, never user input) over the committed rows of a raw table.

    Only committed batches count: a batch being written by a concurrent ingest,
    or left by one that crashed, is not stored yet (and may be deleted).
    """
    files = [str(f) for f in warehouse.committed_files(table, records)]
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(f"select {expr} from read_parquet(?)", [files]).fetchall()[0][0]
    finally:
        con.close()


def totals(warehouse: Warehouse) -> dict[str, int]:
    """Rows stored in the raw layer (committed batches): runs, history rows, events, rejected lines."""
    records = warehouse.committed_batches()  # read the commit records once
    return {
        "runs": int(aggregate(warehouse, RUNS, "count(distinct run_id)", records)),
        "history_rows": int(aggregate(warehouse, HISTORY, records=records)),
        "events": int(aggregate(warehouse, EVENTS, records=records)),
        "rejected": int(aggregate(warehouse, REJECTS, records=records)),
    }
