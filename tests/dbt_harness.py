"""Build the dbt project into a temporary warehouse from hand-made raw rows.

Used by mart tests: they write raw rows exactly as the ingest layer would
(through pipelines.raw), run the real `dbt build`, and read marts back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import SCHEMAS
from pipelines.settings import PROJECT_ROOT

DBT = str(Path(sys.executable).with_name("dbt"))


def write_raw(wh: Warehouse, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Commit one raw batch holding `tables` (table name -> rows)."""
    wh.ensure()
    batch = wh.batch()
    for table, rows in tables.items():
        cols = [f for f in SCHEMAS[table] if f.name not in ("batch_id", "ingested_at")]
        data = pa.Table.from_pylist(rows, schema=pa.schema(cols))
        batch.write(table, data)
    batch.commit()


def dbt_build(wh: Warehouse, *args: str, tmp_target: Path | None = None) -> subprocess.CompletedProcess:
    """Run `dbt build` against `wh`; raises with dbt's output when it fails."""
    return dbt_command(wh, "build", *args, tmp_target=tmp_target)


def dbt_command(wh: Warehouse, command: str, *args: str, tmp_target: Path | None = None) -> subprocess.CompletedProcess:
    """Run a dbt command against `wh`; raises with dbt's output when it fails."""
    target = tmp_target or (wh.root / "dbt_target")
    env = {**os.environ, "GRPO_WAREHOUSE": str(wh.root), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    cmd = [
        DBT,
        command,
        "--project-dir",
        str(PROJECT_ROOT),
        "--profiles-dir",
        str(PROJECT_ROOT),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
        *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    if proc.returncode != 0:
        raise AssertionError(f"dbt {command} failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}")
    return proc


def query(wh: Warehouse, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    """Rows of `sql` against the build database, as dicts."""
    con = duckdb.connect(str(wh.build_db), read_only=True)
    try:
        con.execute("set TimeZone='UTC'")
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()
