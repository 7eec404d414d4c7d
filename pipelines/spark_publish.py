"""Publishing a Spark build: its parquet tables seen as the DuckDB build database.

A Spark build leaves plain parquet folders (build/spark/tables/grpo.db/<table>)
and, written by the dbt wrapper after each build (pipelines/engine.py), the list
of relations with their folders and table comments (build/spark/relations.json).
This module makes a small DuckDB file of views over those folders, one per
relation, with the same names and comments as dbt-duckdb's build database.
pipelines/publish.py then publishes from it exactly as from a DuckDB build:
the marts are copied into a new snapshot file that replaces grpo.duckdb with
one atomic rename, so readers never block and never see Spark's files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from pipelines.engine import RELATIONS_FILE, spark_build_dir


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _folder(location: str) -> Path:
    return Path(location.removeprefix("file:"))


def built_relations(warehouse_root: Path) -> dict[str, dict]:
    """Relation name -> {type, location, comment} of the last Spark build ({} if none)."""
    path = spark_build_dir(warehouse_root) / RELATIONS_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def bridge_db(warehouse_root: Path) -> Path:
    """A fresh DuckDB file whose `main` schema has one view per relation of the Spark build."""
    build = spark_build_dir(warehouse_root)
    build.mkdir(parents=True, exist_ok=True)
    final = build / "bridge.duckdb"
    tmp = build / f".bridge.duckdb.{os.getpid()}.tmp"
    for p in (tmp, tmp.with_name(tmp.name + ".wal")):
        p.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.execute("set TimeZone='UTC'")
        for name, rel in sorted(built_relations(warehouse_root).items()):
            if not rel.get("location") or name.endswith("__grpo_kept") or name.endswith("__dbt_tmp"):
                continue
            folder = _folder(rel["location"])
            if not any(folder.glob("*.parquet")):
                # an empty Spark table may have no file: its columns come from Spark's schema only
                continue
            files = _literal(str(folder / "*.parquet"))
            con.execute(f"create view {_ident(name)} as select * from read_parquet({files})")
            if rel.get("comment"):
                con.execute(f"comment on view {_ident(name)} is {_literal(rel['comment'])}")
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(tmp, final)
    return final
