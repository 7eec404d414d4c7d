"""Shared fixtures: a clean, isolated environment per test session, dbt manifest parsed once.

The suite must pass whatever the shell exports: a user's `GRPO_WAREHOUSE`,
`DAGSTER_HOME`, `WANDB_*`, `AXIOM_*` or `SPARK_REMOTE` would otherwise point
tests at their real warehouse, Dagster instance, W&B project, Axiom dataset or
Spark. They are taken
out of the environment before any test module is imported, and put back at
the end. `GRPO_TEST_DEMO_END` (tests/clock.py) is the one variable kept.
"""

from __future__ import annotations

import os

import pytest

SCRUBBED_PREFIXES = ("GRPO_", "DAGSTER_", "WANDB_", "AXIOM_", "DBT_", "SPARK_", "PYSPARK_")
KEPT = frozenset({"GRPO_TEST_DEMO_END"})
_saved_env: dict[str, str] = {}


def scrubbed(environ: dict[str, str]) -> dict[str, str]:
    """`environ` without the variables a user's shell may set for the real warehouse and services."""
    return {k: v for k, v in environ.items() if k in KEPT or not k.startswith(SCRUBBED_PREFIXES)}


def pytest_configure(config):
    _saved_env.update(os.environ)
    clean = scrubbed(dict(os.environ))
    os.environ.clear()
    os.environ.update(clean)


def pytest_unconfigure(config):
    if _saved_env:
        os.environ.clear()
        os.environ.update(_saved_env)


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
            "WANDB_DIR": str(home / "wandb_dir"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
    )
    (home / "wandb_dir").mkdir()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def dbt_manifest():
    """Parse the dbt project once; the Dagster definitions need its manifest at import."""
    from pipelines.defs.dbt.project import ensure_manifest

    return ensure_manifest()
