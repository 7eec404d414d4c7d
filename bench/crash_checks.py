"""What a kill left and whether the warehouse survived it: reader checks, leftovers,
row-for-row comparisons, the Trial record.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import SCHEMAS

# Columns that legitimately differ between two builds of the same data.
VOLATILE_COLUMNS = {"batch_id", "ingested_at", "evaluated_at", "built_at", "published_at"}
# Unique keys of the raw tables: a duplicate is a row stored twice.
RAW_KEYS = {
    "wandb_runs": ("run_id", "fingerprint"),
    "wandb_history": ("run_id", "step", "key"),
    "wandb_history_other": ("run_id", "step", "key"),
    "axiom_events": ("event_key",),
    "axiom_rejects": ("source", "line"),
}


def reader_problems(root: Path) -> list[str]:
    """What a reader could trip over right now: unreadable parquet, a snapshot that does not open."""
    from pipelines.answers.sql import open_snapshot

    wh = Warehouse(root)
    problems: list[str] = []
    for table in SCHEMAS:
        d = wh.table_dir(table)
        if not (d / "schema.parquet").exists():
            # The very first ensure() was interrupted: there is no warehouse yet
            # (nothing committed, nothing published); the next one completes it.
            if (wh.batches_dir.exists() and any(wh.batches_dir.glob("*.json"))) or wh.snapshot_db.exists():
                problems.append(f"raw/{table}/schema.parquet is missing in a warehouse that has data")
            continue
        for f in sorted(d.glob("*.parquet")):
            try:
                pq.read_table(f)
            except Exception as exc:
                problems.append(f"raw/{table}/{f.name} is visible but unreadable: {type(exc).__name__}: {exc}")
        try:
            con = duckdb.connect()
            con.execute(
                "select count(*) from read_parquet(?)", [[str(p) for p in wh.committed_files(table)]]
            ).fetchall()
            con.close()
        except Exception as exc:
            problems.append(f"committed files of {table} do not read: {type(exc).__name__}: {exc}")
    if wh.snapshot_db.exists():
        try:
            con = open_snapshot(root)
            try:
                con.execute("select published_at from _snapshot").fetchall()
                views = con.execute(
                    "select table_name from information_schema.tables where table_type = 'VIEW'"
                ).fetchall()
                for (view,) in views:  # raw_* and exported relations read parquet files: all must be there
                    con.execute(f'select count(*) from "{view}"').fetchall()
            finally:
                con.close()
        except Exception as exc:
            problems.append(f"grpo.duckdb does not open or read: {type(exc).__name__}: {exc}")
    return problems


def leftovers(root: Path) -> dict[str, list[str]]:
    """Files an interrupted writer left: uncommitted batch files, temp files."""
    wh = Warehouse(root)
    committed = {p.stem for p in wh.batches_dir.glob("*.json")} if wh.batches_dir.exists() else set()
    out: dict[str, list[str]] = {"uncommitted": [], "temp": []}
    for table in SCHEMAS:
        d = wh.table_dir(table)
        for p in sorted(d.iterdir()) if d.exists() else []:
            if p.name.endswith(".tmp"):
                out["temp"].append(f"raw/{table}/{p.name}")
            elif p.name.startswith("batch-") and p.name.removeprefix("batch-").rsplit("-", 1)[0] not in committed:
                out["uncommitted"].append(f"raw/{table}/{p.name}")
    if wh.batches_dir.exists():
        out["temp"] += [f"raw/_batches/{p.name}" for p in wh.batches_dir.glob(".*.tmp")]
    if root.exists():
        out["temp"] += [p.name for p in root.glob(".grpo.duckdb.*")]
    if (root / "published").exists():
        out["temp"] += [str(p.relative_to(root)) for p in (root / "published").rglob(".*.tmp")]
    return out


def integrity_problems(root: Path) -> list[str]:
    """After a completed ingest: nothing left over, every committed file present, no duplicate keys."""
    wh = Warehouse(root)
    problems = [f"left behind: {p}" for kind in leftovers(root).values() for p in kind]
    con = duckdb.connect()
    try:
        for table, key in RAW_KEYS.items():
            files = wh.committed_files(table)
            missing = [str(f) for f in files if not f.exists()]
            if missing:
                problems.append(f"{table}: committed files missing: {missing}")
                continue
            cols = ", ".join(key)
            dup = con.execute(
                f"select count(*) from (select {cols} from read_parquet(?) group by all having count(*) > 1)",
                [[str(f) for f in files]],
            ).fetchall()[0][0]
            if dup:
                problems.append(f"{table}: {dup} key(s) stored more than once ({cols})")
    finally:
        con.close()
    return problems


def _multiset_difference(con: duckdb.DuckDBPyConnection, name: str, qa: str, qb: str) -> str | None:
    """How the rows of query qa differ from the reference's qb as multisets, or None when they are equal."""
    na, nb, only_a, only_b = con.execute(
        f"select (select count(*) from ({qa})), (select count(*) from ({qb})),"
        f" (select count(*) from ({qa} except all {qb})), (select count(*) from ({qb} except all {qa}))"
    ).fetchall()[0]
    if only_a or only_b:
        return f"{name}: {na} rows vs {nb} in the reference; {only_a} extra, {only_b} missing"
    return None


def raw_differences(root: Path, ref_root: Path) -> list[str]:
    """Raw tables of two warehouses as sorted multisets, without batch_id/ingested_at."""
    a, b = Warehouse(root), Warehouse(ref_root)
    con = duckdb.connect()
    out: list[str] = []
    try:
        for table, schema in SCHEMAS.items():
            cols = ", ".join(f'"{c}"' for c in schema.names if c not in VOLATILE_COLUMNS)
            for name, wh in (("a", a), ("b", b)):
                files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in wh.committed_files(table))
                con.execute(f"create or replace view {name} as select {cols} from read_parquet([{files}])")
            difference = _multiset_difference(con, table, "select * from a", "select * from b")
            if difference:
                out.append(difference)
    finally:
        con.close()
    return out


def snapshot_differences(db: Path, ref_db: Path) -> list[str]:
    """Every table and view of two published snapshots, as multisets without build-time columns.

    fct_check_history appends one generation of outcomes per dbt build, and a
    build killed after that append leaves one more generation than an
    uninterrupted run: it is compared as a set of distinct rows. Doubles are
    compared to 10 significant digits: DuckDB's parallel aggregates (avg, sum)
    differ in the last bits from one build of the same rows to the next.
    """
    con = duckdb.connect()
    out: list[str] = []
    try:
        con.execute(f"attach '{db}' as a (read_only)")
        con.execute(f"attach '{ref_db}' as b (read_only)")

        def tables(cat: str) -> set[str]:
            return {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_catalog = ?",
                    [cat],
                ).fetchall()
            }

        ta, tb = tables("a"), tables("b")
        if ta != tb:
            out.append(f"tables differ: only here {sorted(ta - tb)}, only in the reference {sorted(tb - ta)}")
        for t in sorted((ta & tb) - {"_snapshot"}):
            cols = [
                (name, dtype)
                for name, dtype in con.execute(
                    "select column_name, data_type from information_schema.columns"
                    " where table_catalog = 'b' and table_name = ? order by ordinal_position",
                    [t],
                ).fetchall()
                if name not in VOLATILE_COLUMNS
            ]
            sel = ", ".join(
                (f'printf(\'%.10g\', "{c}") as "{c}"' if dtype in ("DOUBLE", "FLOAT") else f'"{c}"')
                for c, dtype in cols
            )
            distinct = "distinct " if t == "fct_check_history" else ""
            where = " where table_name <> 'fct_check_history'" if t == "_tables" else ""
            qa = f'select {distinct}{sel} from a."{t}"{where}'
            qb = f'select {distinct}{sel} from b."{t}"{where}'
            difference = _multiset_difference(con, t, qa, qb)
            if difference:
                out.append(difference)
    finally:
        con.close()
    return out


@dataclasses.dataclass
class Trial:
    kind: str  # hook | timed | publish-hook | publish-timed
    stage: str
    point: str  # the label, or the delay in seconds
    outcome: str  # killed | completed (the kill came after the end)
    seen: str = ""  # what the kill left: committed / N uncommitted files / M temp files
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def survived(self) -> bool:
        return not self.problems


def describe_after_kill(root: Path, batches_before: int) -> str:
    """What a kill left in the warehouse: a new commit, uncommitted files, temp files."""
    left = leftovers(root)
    n = len(list(Warehouse(root).batches_dir.glob("*.json"))) if Warehouse(root).batches_dir.exists() else 0
    parts = []
    if n > batches_before:
        parts.append("batch committed")
    if left["uncommitted"]:
        parts.append(f"{len(left['uncommitted'])} uncommitted file(s)")
    if left["temp"]:
        parts.append(f"{len(left['temp'])} temp file(s)")
    return ", ".join(parts) or "nothing written"
