"""The dbt models as assets (dbt lineage, no glue), and the dbt CLI resource."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg

from pipelines.defs.dbt.assets import grpo_dbt_models
from pipelines.defs.dbt.project import dbt_project
from pipelines.defs.dbt.resources import GrpoDbtCliResource


def dbt_executable() -> str:
    """The dbt installed next to this Python, so a bare `.venv/bin/python` run (or a
    `dbtf` elsewhere on PATH) cannot change which dbt builds the warehouse."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[grpo_dbt_models],
        resources={"dbt": GrpoDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())},
    )
