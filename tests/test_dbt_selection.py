"""Which dbt nodes a build leaves out: those no raw table with a new batch reaches, and none
when the project changed (a var, a model, a macro) or no complete build is known.

The end-to-end proof that the marts still equal a full rebuild's is in
tests/test_incremental_marts.py; here, the selection itself on the real manifest.
"""

from __future__ import annotations

import json
import shutil

from pipelines.defs.dbt.selection import (
    PROJECT_INPUTS,
    build_exclusions,
    project_fingerprint,
    tables_with_new_batches,
    unaffected_nodes,
)
from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import SCHEMAS
from pipelines.settings import PROJECT_ROOT


def _manifest(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_an_events_batch_leaves_out_the_wandb_models_and_their_tests_and_keeps_what_reads_both(dbt_manifest):
    left_out = set(unaffected_nodes(_manifest(dbt_manifest), {"axiom_events"}))
    assert {"stg_wandb__history", "fct_metric_summaries", "fct_training_stability", "fct_elo_trajectory"} <= left_out
    assert any(n.startswith("unique_grain") and "fct_metric_summaries" in n for n in left_out)
    # read events, or events and runs: they run
    assert not left_out & {"stg_axiom__events", "fct_rollout_timing_hourly", "fct_rollout_timing_by_run"}
    assert not left_out & {"fct_check_outcomes", "fct_check_history"}


def test_a_runs_batch_leaves_out_the_events_only_models(dbt_manifest):
    left_out = set(unaffected_nodes(_manifest(dbt_manifest), {"wandb_runs", "wandb_history"}))
    assert {"stg_axiom__events", "fct_rollout_timing_hourly", "fct_component_health"} <= left_out
    assert not left_out & {"fct_metric_summaries", "fct_rollout_timing_by_run", "fct_check_outcomes"}


def test_with_every_raw_table_new_only_nodes_no_raw_table_feeds_are_left_out(dbt_manifest):
    m = _manifest(dbt_manifest)
    tables = {s["name"] for s in m["sources"].values()}
    left_out = set(unaffected_nodes(m, tables))
    assert "fct_metric_summaries" not in left_out and "stg_axiom__events" not in left_out
    assert all(
        m["nodes"][uid]["resource_type"] in ("seed", "test")
        for uid in m["nodes"]
        if m["nodes"][uid]["name"] in left_out
    )


def test_tables_with_new_batches_come_from_commit_records_after_the_marker(tmp_path):
    wh = Warehouse(tmp_path / "wh").ensure()
    for batch_id, rows in (
        ("b1", {"wandb_runs": 2, "axiom_events": 0}),
        ("b2", {"axiom_events": 5, "wandb_history": 0}),
    ):
        (wh.batches_dir / f"{batch_id}.json").write_text(json.dumps({"batch_id": batch_id, "rows": rows}))
    assert tables_with_new_batches(wh, "") == {"wandb_runs", "axiom_events"}
    assert tables_with_new_batches(wh, "b1") == {"axiom_events"}
    assert tables_with_new_batches(wh, "b2") == set()
    (wh.batches_dir / "b3.json").write_text(json.dumps({"batch_id": "b3"}))  # a record that does not say
    assert tables_with_new_batches(wh, "b2") == set(SCHEMAS)


def test_every_raw_table_is_a_dbt_source_so_its_new_batches_select_what_reads_it(dbt_manifest):
    assert {s["name"] for s in _manifest(dbt_manifest)["sources"].values()} == set(SCHEMAS)


def test_a_changed_var_or_no_known_build_selects_everything(tmp_path, dbt_manifest):
    wh = Warehouse(tmp_path / "wh").ensure()
    (wh.batches_dir / "b2.json").write_text(json.dumps({"batch_id": "b2", "rows": {"axiom_events": 5}}))
    copy = tmp_path / "project"
    for name in PROJECT_INPUTS:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, copy / name)
    before = project_fingerprint(copy)
    assert before == project_fingerprint(PROJECT_ROOT)
    project = copy / "dbt_project.yml"
    project.write_text(project.read_text(encoding="utf-8").replace("vars:", "vars:\n  a_new_var: 1", 1))
    after = project_fingerprint(copy)
    assert after != before
    left_out, changed = build_exclusions(wh, dbt_manifest, "b1", before, before)
    assert left_out and changed == {"axiom_events"}
    assert build_exclusions(wh, dbt_manifest, "b1", before, after) == ([], set())  # the project changed
    assert build_exclusions(wh, dbt_manifest, "", before, before) == ([], set())  # no complete build known
    assert build_exclusions(wh, dbt_manifest, "b1", None, before) == ([], set())  # a marker from before fingerprints
