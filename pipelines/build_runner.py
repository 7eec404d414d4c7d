"""Run the Dagster job in-process for the CLI (`grpo ingest`, `grpo demo`).

Imported only by those commands: Dagster and dbt stay off the query path.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.raw.layer import Warehouse


@dataclass
class JobOutcome:
    success: bool
    failed_steps: list[str]
    errors: list[str]
    check_results: list[dict]
    log_path: Path
    warnings: list[str]


def run_build_job(
    warehouse: Warehouse,
    *,
    wandb_dirs: Sequence[str] = (),
    wandb_projects: Sequence[str] = (),
    sweep: str | None = None,
    event_paths: Sequence[str] = (),
    axiom_datasets: Sequence[str] = (),
    since: str | None = None,
    full_refresh: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> JobOutcome:
    """Ingest the given sources, build dbt, publish the snapshot and run the checks."""
    from pipelines.defs.dbt.project import ensure_manifest

    os.environ["GRPO_WAREHOUSE"] = str(warehouse.root)
    ensure_manifest()

    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.defs.axiom.resources import EventSourcesResource
    from pipelines.defs.wandb.resources import WandbSourcesResource
    from pipelines.defs.warehouse.resources import WarehouseResource

    @dg.logger
    def relay(_init_context) -> logging.Logger:
        logger = logging.Logger("grpo-relay", level=logging.INFO)

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if on_message is None:
                    return
                msg = getattr(record, "dagster_meta", {}).get("orig_message") or record.getMessage()
                on_message(str(msg).splitlines()[0][:160])

        logger.addHandler(_Handler())
        return logger

    defs = build_definitions(
        warehouse=WarehouseResource(root=str(warehouse.root)),
        wandb_sources=WandbSourcesResource(run_dirs=list(wandb_dirs), projects=list(wandb_projects), sweep=sweep),
        event_sources=EventSourcesResource(paths=list(event_paths), axiom_datasets=list(axiom_datasets), since=since),
        loggers={"relay": relay},
    )
    job = defs.resolve_job_def("build_warehouse")
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    # dagster-dbt echoes dbt's log to stdout; keep it in a file so `--json`
    # output stays parseable and the terminal shows only the progress line.
    log_path = warehouse.root / "build" / "last_build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log_file, contextlib.redirect_stdout(log_file):
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={
                "loggers": {"relay": {}},
                "ops": {"grpo_dbt_models": {"config": {"full_refresh": full_refresh}}},
            },
        )
    failed, errors = [], []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            failed.append(ev.step_key or "?")
            data = ev.event_specific_data
            err = getattr(data, "error", None)
            if err is not None:
                errors.append(_first_line(err))
    from pipelines.defs.warehouse.ingest_materializations import INGEST_WARNINGS_KEY

    checks, warnings = [], []
    for ev in result.all_events:
        if ev.event_type_value == "ASSET_CHECK_EVALUATION":
            e = ev.event_specific_data
            checks.append({"name": e.check_name, "asset": e.asset_key.to_user_string(), "passed": e.passed})
            listed = e.metadata.get(INGEST_WARNINGS_KEY)
            if listed is not None:
                warnings += [str(w) for w in listed.value]
    return JobOutcome(result.success, failed, errors, checks, log_path, warnings)


def _first_line(err) -> str:
    """The most useful single line of a Dagster error: the innermost cause's first line."""
    import re

    node = err
    while getattr(node, "cause", None) is not None:
        node = node.cause
    text = re.sub(r"\x1b\[[0-9;]*m", "", node.message or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:400] if lines else "unknown error"


def build_with_summary(warehouse: Warehouse, **kwargs: Any) -> dict[str, Any]:
    """`run_build_job`, summarised as `grpo ingest --json` / `grpo demo --json` print it: the raw
    layer's totals, what this build added, its outcome and the check counts."""
    from pipelines.raw.readers import totals

    before = totals(warehouse)
    outcome = run_build_job(warehouse, **kwargs)
    after = totals(warehouse)
    return {
        **after,
        "new_runs": after["runs"] - before["runs"],
        "new_history_rows": after["history_rows"] - before["history_rows"],
        "new_events": after["events"] - before["events"],
        "new_rejected": after["rejected"] - before["rejected"],
        "warehouse": str(warehouse.root),
        "success": outcome.success,
        "errors": outcome.errors,
        "warnings": outcome.warnings,
        "build_log": str(outcome.log_path),
        "checks": {
            "passed": sum(1 for c in outcome.check_results if c["passed"]),
            "failed": sum(1 for c in outcome.check_results if not c["passed"]),
        },
    }
