"""The snapshot's typed events follow a rebuilt events table, even when batches and counts match.

Publishing exports the typed events once per raw batch and re-uses the files
while the build's table is only appended to. A `--full-refresh` after a
changed `event_fields` mapping parses the same events (same batches, same
counts) into other values: the snapshot must then show the new values, which
it learns from the table generation dbt stamps on the table.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb

from pipelines.publish import publish
from pipelines.raw.layer import Warehouse
from pipelines.settings import dbt_vars
from tests.dbt_harness import dbt_command, write_raw

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def rollouts(first: int, n: int) -> list[dict]:
    out = []
    for i in range(first, first + n):
        record = {
            "_time": (T0 + dt.timedelta(minutes=i)).isoformat(),
            "event": "rollout",
            "run_id": "r1",
            "duration_s": float(i),
            "elapsed": float(1000 + i),
            "status": "ok",
        }
        out.append(
            {
                "time": T0 + dt.timedelta(minutes=i),
                "record": json.dumps(record),
                "source": "events.ndjson",
                "line": i + 1,
                "event_key": f"events.ndjson:{i + 1}",
            }
        )
    return out


def generation(wh: Warehouse) -> str:
    con = duckdb.connect(str(wh.build_db), read_only=True)
    try:
        (comment,) = con.execute(
            "select comment from duckdb_tables() where table_name = 'stg_axiom__events'"
        ).fetchone()
    finally:
        con.close()
    return json.loads(comment)["generation"]


def published_durations(wh: Warehouse) -> list[float]:
    con = duckdb.connect(str(wh.snapshot_db), read_only=True)
    try:
        return [r[0] for r in con.execute("select duration_s from stg_axiom__events order by line").fetchall()]
    finally:
        con.close()


def test_a_full_refresh_with_another_mapping_republishes_the_typed_events(tmp_path):
    wh = Warehouse(tmp_path / "wh").ensure()
    write_raw(wh, {"axiom_events": rollouts(0, 30)})
    dbt_command(wh, "run", "--select", "stg_axiom__events")
    first = generation(wh)
    publish(wh)
    assert published_durations(wh) == [float(i) for i in range(30)]

    write_raw(wh, {"axiom_events": rollouts(30, 10)})
    dbt_command(wh, "run", "--select", "stg_axiom__events")
    assert generation(wh) == first  # appended to: same table, its exports are re-used
    publish(wh)
    assert published_durations(wh) == [float(i) for i in range(40)]

    mapping = {**dbt_vars()["event_fields"], "duration_s": "elapsed"}
    dbt_command(
        wh, "run", "--select", "stg_axiom__events", "--full-refresh", "--vars", json.dumps({"event_fields": mapping})
    )
    assert generation(wh) != first
    publish(wh)

    assert published_durations(wh) == [float(1000 + i) for i in range(40)]
