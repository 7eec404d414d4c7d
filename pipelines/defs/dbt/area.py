"""The dbt models as assets (dbt lineage, no glue), and the dbt CLI resource."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.dbt.assets import grpo_dbt_models
from pipelines.defs.dbt.project import dbt_project
from pipelines.defs.dbt.resources import GrpoDbtCliResource


def dbt_executable() -> str:
    """The dbt installed next to this Python, so a bare `.venv/bin/python` run (or a
    `dbtf` elsewhere on PATH) cannot change which dbt builds the warehouse; on the
    Spark engine (GRPO_ENGINE=spark) its wrapper `grpo-dbt-spark` (pipelines/engine.py)."""
    from pipelines.engine import dbt_executable as for_engine

    return for_engine()


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[grpo_dbt_models],
        resources={"dbt": GrpoDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())},
    )
