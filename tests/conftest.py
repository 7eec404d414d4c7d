"""Shared fixtures: isolated environment per test session, dbt manifest parsed once."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory):
    """Keep wandb/dagster/dbt state out of the user's home and the working tree."""
    home = tmp_path_factory.mktemp("env")
    saved = dict(os.environ)
    os.environ.update(
        {
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_CONFIG_DIR": str(home / "wandb_config"),
            "WANDB_CACHE_DIR": str(home / "wandb_cache"),
            "WANDB_DATA_DIR": str(home / "wandb_data"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
    )
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.pop("GRPO_WAREHOUSE", None)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def dbt_manifest():
    """Parse the dbt project once; the Dagster definitions need its manifest at import."""
    from pipelines.defs.dbt.project import ensure_manifest

    return ensure_manifest()
