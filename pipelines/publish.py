"""Publish the marts as one read-only snapshot file that readers can always open.

DuckDB allows one writer per file and a reader blocks that writer, so
readers never touch dbt's build database. After each build, the marts
are copied into a new file which then replaces `grpo.duckdb` with one atomic
rename: a reader that opened the old file keeps reading it consistently; the
next reader opens the new one. Nobody ever opens `grpo.duckdb` for writing in
place, so read-only readers never block anyone and never see a mix of two
builds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import duckdb

from pipelines.raw.atomic_files import fsync_dir, write_json_atomic
from pipelines.raw.batches import new_batch_id
from pipelines.raw.crash_points import kill_point
from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import EVENTS, HISTORY, HISTORY_OTHER, REJECTS, RESTATED, RUNS
from pipelines.settings import build_memory_limit

# Big row-level staging relations stay out of the copy: the history is served
# by the raw parquet views below, the typed events by immutable per-batch
# parquet exports (only new batches are written at each publish).
SKIPPED_RELATIONS = {"stg_wandb__history", "stg_wandb__history_other", "stg_axiom__events"}
EVENTS_RELATION = "stg_axiom__events"
RAW_VIEWS = {
    "raw_wandb_runs": RUNS,
    "raw_wandb_history": HISTORY,
    "raw_wandb_history_other": HISTORY_OTHER,
    "raw_wandb_restated_steps": RESTATED,
    "raw_axiom_events": EVENTS,
    "raw_axiom_rejects": REJECTS,
}


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def model_descriptions(manifest_path: Path | None) -> dict[str, str]:
    """Model name -> its description (which states its grain) from dbt's manifest."""
    if manifest_path is None or not manifest_path.exists():
        return {}
    with open(manifest_path, encoding="utf-8") as fh:
        manifest = json.load(fh)
    return {
        node["name"]: (node.get("description") or "").strip()
        for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "model"
    }


# A reader keeps reading the files its snapshot lists, so exported files are
# never rewritten or deleted while current: a re-export (after a full refresh)
# goes to a new generation folder, and superseded generations are removed only
# once they are this old.
STALE_GENERATION_S = 3600


def _events_root(warehouse: Warehouse) -> Path:
    return warehouse.root / "published" / "events"


def _export_events(con: duckdb.DuckDBPyConnection, warehouse: Warehouse) -> list[Path]:
    """Write the typed events of batches not yet exported, one immutable file per batch.

    If the exported files no longer match the build (the table was created
    again — first build, full refresh — or an event moved to a newer batch),
    everything is exported again into a new generation folder.
    """
    root = _events_root(warehouse)
    root.mkdir(parents=True, exist_ok=True)
    generations = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("gen-"))
    current = generations[-1] if generations else None
    # The table's generation (table_generation_mark in macros/incremental.sql)
    # changes whenever dbt creates it again: a rebuilt table may hold other
    # values for the same batches and counts (a changed event_fields mapping).
    table_generation = _table_generation(con, EVENTS_RELATION)
    if current is not None and table_generation is not None and _export_generation(current) != table_generation:
        current = None
    in_build = dict(
        con.execute(
            f"select batch_id, count(*) from build.main.{_quote_ident(EVENTS_RELATION)} group by batch_id"
        ).fetchall()
    )
    exported: dict[str, Path] = {}
    if current is not None:
        exported = {p.name[len("batch-") : -len(".parquet")]: p for p in current.glob("batch-*.parquet")}
    if exported:
        # Row counts from the parquet footers: no need to scan the events.
        on_disk = dict(
            con.execute(
                "select regexp_extract(file_name, 'batch-(.*)\\.parquet$', 1), num_rows from parquet_file_metadata(?)",
                [[str(p) for p in exported.values()]],
            ).fetchall()
        )
        if set(on_disk) - set(in_build) or any(in_build.get(b) != n for b, n in on_disk.items()):
            current, exported = None, {}
    if current is None:
        current = root / f"gen-{new_batch_id()}"
        current.mkdir()
        if table_generation is not None:
            write_json_atomic({"generation": table_generation}, current / GENERATION_FILE)
    for batch_id in sorted(set(in_build) - set(exported)):
        final = current / f"batch-{batch_id}.parquet"
        tmp = current / f".batch-{batch_id}.parquet.{os.getpid()}.tmp"
        # Streamed in the table's order, not sorted by time: the table is close
        # to time order already (the raw files are, and the dedupe keeps most of
        # it), so a row group spans a median 46 h at medium scale against a sorted
        # file's 22 h and window queries still skip nearly all of them. Sorting
        # 5M events took 1.6x as long and spilled 354 MB (50M: ~22 GB).
        con.execute(
            f"copy (select * from build.main.{_quote_ident(EVENTS_RELATION)} where batch_id = ?) "
            f"to {_sql_literal(str(tmp))} (format parquet, compression zstd)",
            [batch_id],
        )
        os.replace(tmp, final)
        exported[batch_id] = final
    now = time.time()
    for old in generations:
        if old != current and now - old.stat().st_mtime > STALE_GENERATION_S:
            shutil.rmtree(old, ignore_errors=True)
    return [exported[b] for b in sorted(exported)]


GENERATION_FILE = "table.json"  # in an export folder: the generation of the table it copies


def _table_generation(con: duckdb.DuckDBPyConnection, table: str) -> str | None:
    """The generation dbt stamped on `build.main.<table>` (None for a table built before stamps)."""
    found = con.execute(
        "select json_extract_string(comment, '$.generation') from ("
        " select database_name, schema_name, table_name, comment from duckdb_tables()"
        " union all select database_name, schema_name, view_name, comment from duckdb_views()"  # a Spark build's
        ") where database_name = 'build' and schema_name = 'main' and table_name = ? and json_valid(comment)",
        [table],
    ).fetchall()
    return found[0][0] if found and found[0][0] else None


def _export_generation(folder: Path) -> str | None:
    try:
        return json.loads((folder / GENERATION_FILE).read_text(encoding="utf-8")).get("generation")
    except (OSError, ValueError, AttributeError):
        return None  # an older export, or a folder whose writer died before the file


def _empty_events_view(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"create table {_quote_ident(EVENTS_RELATION)} as "
        f"select * from build.main.{_quote_ident(EVENTS_RELATION)} limit 0"
    )


def _count_files(con: duckdb.DuckDBPyConnection, files: list[Path]) -> int:
    if not files:
        return 0
    return int(
        con.execute(
            "select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)", [[str(p) for p in files]]
        ).fetchall()[0][0]
    )


def publish(warehouse: Warehouse, manifest_path: Path | None = None) -> dict[str, int]:
    """Copy every dbt relation into a fresh snapshot and swap it in; returns rows per table."""
    root = warehouse.root
    tmp = root / f".grpo.duckdb.{os.getpid()}.tmp"
    # A WAL left by an earlier process with the same pid would be replayed into
    # the new file: remove both.
    _remove(tmp)
    try:
        rows = _write_snapshot(warehouse, tmp, manifest_path)
    except BaseException:
        _remove(tmp)
        raise
    kill_point("publish.before_rename")
    os.replace(tmp, warehouse.snapshot_db)
    fsync_dir(root)  # the rename itself survives a power cut
    kill_point("publish.after_rename")
    return rows


def _remove(db: Path) -> None:
    for p in (db, db.with_name(db.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _build_database(warehouse: Warehouse) -> Path:
    """dbt-duckdb's build database, or for a Spark build its parquet tables as DuckDB views."""
    from pipelines.engine import is_spark

    if is_spark():
        from pipelines.spark_publish import bridge_db

        return bridge_db(warehouse.root)
    return warehouse.build_db


def _write_snapshot(warehouse: Warehouse, tmp: Path, manifest_path: Path | None) -> dict[str, int]:
    descriptions = model_descriptions(manifest_path)
    rows: dict[str, int] = {}
    # Under the build's memory limit, like dbt: the copies stream, nothing here
    # needs more, and DuckDB spills rather than fails if something does.
    con = duckdb.connect(str(tmp), config={"memory_limit": build_memory_limit()})
    try:
        con.execute("set TimeZone='UTC'")
        con.execute(f"attach {_sql_literal(str(_build_database(warehouse)))} as build (read_only)")
        relations = con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = 'build' and table_schema = 'main' order by table_name"
        ).fetchall()
        for (name,) in relations:
            if name in SKIPPED_RELATIONS or name.startswith(("dbt_", "_grpo_")):  # _grpo_: build bookkeeping
                continue
            con.execute(f"create table {_quote_ident(name)} as select * from build.main.{_quote_ident(name)}")
            rows[name] = int(con.execute(f"select count(*) from {_quote_ident(name)}").fetchall()[0][0])
            kill_point("publish.copying")  # test hook, see pipelines.raw.crash_points
        # A build without the events model (e.g. a partial selection) publishes none.
        has_events = (EVENTS_RELATION,) in relations
        event_files = _export_events(con, warehouse) if has_events else []
        if event_files:
            # An explicit file list, not a glob: the snapshot sees exactly the
            # events of this build, even while the next publish adds files.
            files = ", ".join(_sql_literal(str(p)) for p in event_files)
            con.execute(f"create view {_quote_ident(EVENTS_RELATION)} as select * from read_parquet([{files}])")
        elif has_events:
            _empty_events_view(con)
        con.execute("detach build")
        if has_events:
            rows[EVENTS_RELATION] = _count_files(con, event_files)
        # The raw views list the files of committed batches, not the folder's
        # glob: a reader never sees a batch being written, nor the files of one
        # whose writer died (they are deleted later, which would break a glob
        # that had matched them), and the raw layer it sees is the one as of
        # this snapshot. Committed files are never deleted.
        for view, table in RAW_VIEWS.items():
            files = ", ".join(_sql_literal(str(f)) for f in warehouse.committed_files(table))
            # by name: a warehouse older than a column (wandb_runs.step_metrics) has files without it
            by_name = ", union_by_name = true" if table == RUNS else ""
            con.execute(f"create view {_quote_ident(view)} as select * from read_parquet([{files}]{by_name})")
        catalog = [(name, descriptions.get(name, ""), n) for name, n in rows.items()]
        catalog += [
            (v, f"Raw layer: every row of {t} committed when this snapshot was published (parquet).", None)
            for v, t in RAW_VIEWS.items()
        ]
        con.execute("create table _tables (table_name varchar, description varchar, row_count bigint)")
        con.executemany("insert into _tables values (?, ?, ?)", catalog)
        # Freshness, computed once here so every CLI answer can state it for free.
        latest_event = "(select max(event_at) from stg_axiom__events)" if has_events else "cast(null as timestamptz)"
        has_runs = ("stg_wandb__runs",) in relations
        con.execute(
            "create table _snapshot as select ?::timestamptz as published_at, "
            f"{latest_event} as latest_event_at, "
            + (
                "(select max(last_step) from stg_wandb__runs) as latest_step, "
                "(select max(ingested_at) from stg_wandb__runs) as latest_run_ingest"
                if has_runs
                else "cast(null as bigint) as latest_step, cast(null as timestamptz) as latest_run_ingest"
            ),
            [dt.datetime.now(dt.UTC)],
        )
        con.execute("checkpoint")
    finally:
        con.close()
    return rows
