"""dbt models as Dagster assets: staging -> intermediate -> marts, tests as asset checks."""


import os
from collections.abc import Mapping
from typing import Any, Optional

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.defs.dbt.project import dbt_project
from pipelines.defs.warehouse.resources import WarehouseResource


class GrpoDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> Optional[str]:
        # models/<layer>/... -> the layer (staging, intermediate, marts) groups the UI graph
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props.get("resource_type") == "model" and len(fqn) > 2:
            return fqn[1]
        if dbt_resource_props.get("resource_type") == "seed":
            return "reference"  # fixed lookup tables (t critical values)
        return super().get_group_name(dbt_resource_props)


translator = GrpoDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=translator, name="grpo_dbt_models")
def grpo_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    wh = warehouse.warehouse().ensure()
    # dbt runs as a subprocess and finds the warehouse through this variable (profiles.yml, sources).
    os.environ["GRPO_WAREHOUSE"] = str(wh.root)
    with wh.lock(timeout_s=warehouse.lock_timeout_s, purpose="dbt build"):
        # Unit tests check the SQL, not the data: they run in the test suite
        # (tests/test_dbt_unit_tests.py), not on every build.
        yield from dbt.cli(["build", "--exclude-resource-type", "unit_test"], context=context).stream()
