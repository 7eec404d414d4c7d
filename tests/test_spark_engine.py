"""The same dbt project built on Apache Spark answers like the DuckDB build (issue #17).

`grpo demo` builds the demo warehouse on Spark (GRPO_ENGINE=spark); a second
warehouse gets a copy of the very same raw layer and is built on DuckDB
(`grpo ingest --full-refresh`), the independent engine. Every mart is compared
row for row (floats to 1e-9 relative, nulls equal), then every asset check
outcome and every CLI command's `--json` answer. A second test ingests new
events into the Spark warehouse, lets Spark build incrementally, and compares
what it publishes with a full build of the same raw layer (on DuckDB, which
the first test holds equal to a full Spark build: a difference from either
an incremental step or the engine fails it).

One Spark for the suite: the module starts `grpo-spark-server` (a local Spark
Connect server, one JVM) and every Spark build is its client through
`SPARK_REMOTE`, as a scheduled sync or a cluster would use it. Skipped with
the reason when pyspark (`uv sync --group spark`) or Java is missing.
Run: `uv run --group spark pytest -m spark tests/test_spark_engine.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipelines.engine import spark_unavailable_reason
from tests.clock import DEMO_END, DEMO_END_ISO

_REASON = spark_unavailable_reason()
pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(_REASON is not None, reason=str(_REASON)),
    pytest.mark.timeout(
        1200
    ),  # the module fixtures: the Spark server, a Spark demo build, a DuckDB build, 44 CLI answers
]

BIN = Path(sys.executable).parent
REL = 1e-9
# Columns that name the build rather than the data: when it was published or evaluated.
BUILD_COLUMNS = {"published_at", "evaluated_at", "built_at"}
# Answer fields of the same kind.
BUILD_FIELDS = {"published_at", "evaluated_at", "warehouse", "build_log", "snapshot", "as_of_published"}
# What did not port exactly (README "Growing past one machine"): a sweep cell's id is
# the md5 of its config's JSON text, and the engines spell JSON numbers differently
# (DuckDB `8e-7`, Spark `8.0E-7`): the cell, its rank and members are the same, the
# id differs. Its config text is compared as JSON, like every text column.
SPELLING_COLUMNS = {"fct_sweep_cells": {"cell_id", "tied_with"}}
# ... and the same ids in the `sweep` answer's cells.
SPELLING_FIELDS = {"cell_id", "tied_with"}


def engine_env(wh: Path, engine: str) -> dict[str, str]:
    """The environment of a command on `engine`; Spark builds are clients of the module's server."""
    env = {**os.environ, "GRPO_WAREHOUSE": str(wh), "GRPO_ENGINE": engine, "COLUMNS": "200"}
    env.pop("SPARK_REMOTE", None)
    if engine == "spark":
        env["SPARK_REMOTE"] = _SERVER["remote"]
    return env


# The module's Spark Connect server (set by the `spark_server` fixture).
_SERVER: dict[str, str] = {}


def build_json(wh: Path, engine: str, *args: str) -> dict:
    """`grpo <args> --json` on `engine`: its summary, which must report success."""
    proc = subprocess.run(
        [str(BIN / "grpo"), *args, "--json"], capture_output=True, text=True, env=engine_env(wh, engine), timeout=900
    )
    assert proc.returncode == 0, (
        f"grpo {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    summary = json.loads(proc.stdout)
    assert summary["success"] is True, summary["errors"]
    return summary


# --- comparing rows ---------------------------------------------------------------


def _norm(v):
    if isinstance(v, float) and math.isnan(v):
        return ("nan",)
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.UTC)
    if isinstance(v, list | tuple):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _norm(x)) for k, x in v.items()))
    return v


def _sort_key(row):
    # floats rounded for ordering only (the comparison itself is to 1e-9 relative)
    def k(v):
        if v is None:
            return (0, "")
        if isinstance(v, float):
            return (1, f"{v:.6e}")
        return (2, repr(v))

    return tuple(k(v) for v in row)


def _close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return fa == fb or math.isclose(fa, fb, rel_tol=REL, abs_tol=1e-12)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str) and a != b:
        return _same_json(a, b) or _same_printed_numbers(a, b)
    return a == b


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _same_printed_numbers(a: str, b: str) -> bool:
    """The same text around numbers printed with at most one digit of difference in the last place.

    C's printf (DuckDB) rounds a double's exact binary value, Java's (Spark) its
    shortest decimal: `%.6g` of 0.05192185 is 0.0519218 in one, 0.0519219 in the other.
    """
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return False
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=True):
        if x == y:
            continue
        digits = len(re.sub(r"[^0-9]", "", x.split("e")[0].split("E")[0]).lstrip("0")) or 1
        if not math.isclose(float(x), float(y), rel_tol=1.01 * 10 ** (1 - digits)):
            return False
    return True


def _same_json(a: str, b: str) -> bool:
    """Two texts holding the same JSON value, numbers compared as numbers (`8e-7` = `8.0E-7`)."""
    try:
        x, y = json.loads(a), json.loads(b)
    except ValueError:
        return False
    if isinstance(x, str) or isinstance(y, str):
        return x == y

    def same(u, v) -> bool:
        if isinstance(u, dict) and isinstance(v, dict):
            return u.keys() == v.keys() and all(same(u[k], v[k]) for k in u)
        if isinstance(u, list) and isinstance(v, list):
            return len(u) == len(v) and all(same(p, q) for p, q in zip(u, v))
        if (
            isinstance(u, int | float)
            and isinstance(v, int | float)
            and not isinstance(u, bool)
            and not isinstance(v, bool)
        ):
            return math.isclose(u, v, rel_tol=REL, abs_tol=1e-300)
        return u == v

    return same(x, y)


def table_rows(con: duckdb.DuckDBPyConnection, table: str) -> tuple[list[str], list[tuple]]:
    cols = [r[0] for r in con.execute(f'describe "{table}"').fetchall()]
    keep = [c for c in cols if c not in BUILD_COLUMNS and c not in SPELLING_COLUMNS.get(table, set())]
    rows = con.execute(f'select {", ".join(chr(34) + c + chr(34) for c in keep)} from "{table}"').fetchall()
    return keep, sorted((tuple(_norm(v) for v in r) for r in rows), key=_sort_key)


def differences(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection, tables: list[str]) -> list[str]:
    """Human-readable differences between the same tables in two databases (empty: equal)."""
    out = []
    for t in tables:
        cols_a, rows_a = table_rows(a, t)
        cols_b, rows_b = table_rows(b, t)
        if sorted(cols_a) != sorted(cols_b):
            out.append(f"{t}: columns differ: {sorted(set(cols_a) ^ set(cols_b))}")
            continue
        order = [cols_b.index(c) for c in cols_a]
        rows_b = sorted((tuple(r[i] for i in order) for r in rows_b), key=_sort_key)
        # rows sorted by their own text may pair up differently when a JSON text is spelled
        # differently: pair them by the columns that are not such text first
        rows_a, rows_b = _pair(cols_a, rows_a, rows_b)
        if len(rows_a) != len(rows_b):
            out.append(f"{t}: {len(rows_a)} rows vs {len(rows_b)}")
            continue
        for ra, rb in zip(rows_a, rows_b):
            bad = [c for c, x, y in zip(cols_a, ra, rb) if not _close(x, y)]
            if bad:
                out.append(
                    f"{t}: first differing row, columns {bad}: {dict(zip(cols_a, ra))} vs {dict(zip(cols_a, rb))}"
                )
                break
    return out


def _pair(cols: list[str], rows_a: list[tuple], rows_b: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    def canonical(row):
        return tuple(_canon(v) for v in row)

    return sorted(rows_a, key=lambda r: _sort_key(canonical(r))), sorted(rows_b, key=lambda r: _sort_key(canonical(r)))


def _canon(v):
    """A value's sort form: JSON text by its parsed value (numbers as floats), others as they are."""
    if isinstance(v, str) and v[:1] in "[{0123456789-":
        try:
            return json.dumps(json.loads(v, parse_int=float), sort_keys=True)
        except ValueError:
            return v
    if isinstance(v, tuple):
        return tuple(_canon(x) for x in v)
    return v


def published_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(r[0] for r in con.execute("select table_name from _tables").fetchall())


def _strip(answer):
    if isinstance(answer, dict):
        return {k: _strip(v) for k, v in answer.items() if k not in BUILD_FIELDS | SPELLING_FIELDS}
    if isinstance(answer, list):
        return [_strip(v) for v in answer]
    return answer


def _answers_close(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _answers_close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _answers_close(x, y, f"{path}[{i}]")]
    if isinstance(a, tuple) and isinstance(b, tuple):
        return _answers_close(list(a), list(b), path)
    if isinstance(a, str) and isinstance(b, str):
        return [] if _close(a, b) else [f"{path}: {a!r} vs {b!r}"]
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    if (isinstance(a, float) or isinstance(b, float)) and numbers and _close(float(a), float(b)):
        return []
    if a != b:
        return [f"{path}: {a!r} vs {b!r}"]
    return []


# --- the builds -----------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_wh(tmp_path_factory):
    return tmp_path_factory.mktemp("spark_wh")


@pytest.fixture(scope="module")
def spark_server(spark_wh):
    """One local Spark (`grpo-spark-server`) for every Spark build of the module."""
    from pipelines.spark_server import READY, free_port

    port = free_port()
    env = {**os.environ, "GRPO_WAREHOUSE": str(spark_wh)}
    env.pop("SPARK_REMOTE", None)
    log = spark_wh.parent / "spark_server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "grpo-spark-server"), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 300
        while READY not in log.read_text():
            assert proc.poll() is None, f"grpo-spark-server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"grpo-spark-server not ready in 300 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        _SERVER["remote"] = f"sc://127.0.0.1:{port}"
        yield _SERVER["remote"]
    finally:
        _SERVER.clear()
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def builds(spark_server, spark_wh, tmp_path_factory):
    """(spark warehouse, duckdb warehouse, demo summary): one demo, built on each engine."""
    duck_wh = tmp_path_factory.mktemp("duck_wh")
    summary = build_json(spark_wh, "spark", "demo", "--end-time", DEMO_END_ISO)
    shutil.copytree(spark_wh / "raw", duck_wh / "raw")
    build_json(duck_wh, "duckdb", "ingest", "--full-refresh")
    return spark_wh, duck_wh, summary


def cli_answers(wh: Path, engine: str, summary: dict) -> dict[str, object]:
    """Every answering command's --json answer, keyed by its command line."""
    end = DEMO_END_ISO
    runs = [r["name"] for r in summary["demo"]["runs"]]
    commands = [
        ["check"],
        ["sql", "--tables"],
        ["sweep", "--sweep", "lr-sweep"],
        ["rollout-timing", "--last", "24h", "--until", end],
        ["errors", "--last", "24h", "--until", end],
        ["extraction-stats", "--last", "24h", "--until", end],
        ["inference", "--last", "24h", "--until", end],
        ["health", "--last", "1h", "--until", end],
    ]
    commands += [["elo", name] for name in runs]
    commands += [["metrics", "-r", name] for name in runs]
    answers = {}
    for cmd in commands:
        env = engine_env(wh, engine)
        proc = subprocess.run([str(BIN / "grpo"), *cmd, "--json"], capture_output=True, text=True, env=env, timeout=300)
        answers[" ".join(cmd)] = (
            proc.returncode,
            _strip(json.loads(proc.stdout)) if proc.stdout.strip() else proc.stderr,
        )
    return answers


@pytest.fixture(scope="module")
def compared(builds):
    """Everything the equality tests compare, read before the incremental test adds data."""
    spark_wh, duck_wh, summary = builds
    with (
        duckdb.connect(str(spark_wh / "grpo.duckdb"), read_only=True) as s,
        duckdb.connect(str(duck_wh / "grpo.duckdb"), read_only=True) as d,
    ):
        tables = (published_tables(s), published_tables(d))
        diffs = differences(d, s, [t for t in tables[1] if t in tables[0] and not t.startswith("raw_")])
        checks = (table_rows(d, "fct_check_outcomes"), table_rows(s, "fct_check_outcomes"))
    answers = (cli_answers(duck_wh, "duckdb", summary), cli_answers(spark_wh, "spark", summary))
    return {"tables": tables, "diffs": diffs, "checks": checks, "answers": answers}


def test_spark_publishes_every_table_the_duckdb_build_publishes(compared):
    spark_tables, duck_tables = compared["tables"]
    assert spark_tables == duck_tables


def test_every_mart_has_the_same_rows_on_spark_as_on_duckdb(compared):
    assert compared["diffs"] == []


def test_the_asset_check_outcomes_are_the_same_on_both_engines(compared):
    (cols_d, rows_d), (cols_s, rows_s) = compared["checks"]
    assert cols_d == cols_s
    assert len(rows_d) == len(rows_s) > 0
    outcome = cols_d.index("outcome")
    assert sorted(r[outcome] for r in rows_d) == sorted(r[outcome] for r in rows_s)


def test_every_cli_answer_is_the_same_on_both_engines(compared):
    duck, spark = compared["answers"]
    assert duck.keys() == spark.keys()
    problems = {cmd: _answers_close(duck[cmd], spark[cmd])[:3] for cmd in duck}
    assert {cmd: p for cmd, p in problems.items() if p} == {}


# --- incremental -----------------------------------------------------------------


def test_an_incremental_spark_build_after_new_data_equals_a_full_build_of_the_same_raw_layer(
    builds, compared, tmp_path
):
    from pipelines.demo.event_stream import write_demo_events
    from pipelines.demo.league_truth import demo_runs

    spark_wh, _duck_wh, _summary = builds
    # New events six hours later: new hours, rollouts, errors and games for the same runs.
    later = tmp_path / "later_events"
    runs = demo_runs(seed=7, steps=400)
    write_demo_events(later, runs, now=DEMO_END + dt.timedelta(hours=6), seed=8)
    added = build_json(spark_wh, "spark", "ingest", "--events", str(later))
    assert added["new_events"] > 0
    # The same raw layer, built from scratch.
    full_wh = tmp_path / "full_wh"
    shutil.copytree(spark_wh / "raw", full_wh / "raw")
    build_json(full_wh, "duckdb", "ingest", "--full-refresh")
    with (
        duckdb.connect(str(spark_wh / "grpo.duckdb"), read_only=True) as inc,
        duckdb.connect(str(full_wh / "grpo.duckdb"), read_only=True) as full,
    ):
        names = published_tables(inc)
        assert names == published_tables(full)
        assert "fct_rollout_timing_hourly" in names
        # the new hours reached the marts
        last_hour = inc.execute("select max(hour_at) from fct_rollout_timing_hourly").fetchone()[0]
        assert _norm(last_hour).replace(tzinfo=dt.UTC) > DEMO_END
        # build bookkeeping, and the history of every build's check outcomes (two builds vs one)
        compared_tables = [n for n in names if not n.startswith(("_grpo_", "raw_")) and n != "fct_check_history"]
        assert differences(full, inc, compared_tables) == []
