"""The suite passes whatever the user's shell exports, and writes nothing where it is run from.

A user who works with the warehouse has `GRPO_WAREHOUSE`, `DAGSTER_HOME`,
`WANDB_*` and `AXIOM_*` exported. A subset of the suite that touches each of
them (the CLI, the demo's real wandb offline runs, the live W&B and Axiom
sources against the loopback servers) runs here in a child pytest with all of
them pointing at folders and servers it must not use, from an empty working
directory: it must pass, and every one of those folders and the working
directory must stay empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SUBSET = [
    "tests/test_cli.py",
    "tests/test_live_ingest.py",
    "tests/test_demo_data.py::test_wandb_files_hold_exactly_the_series_the_generator_reports",
    "tests/test_demo_data.py::test_each_run_has_one_wandb_file_per_segment_under_the_manifest_dir",
]


def _untracked(root: Path) -> set[str]:
    out = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True
    )
    return {line[3:] for line in out.stdout.splitlines() if line.startswith("??")} if out.returncode == 0 else set()


def test_the_suite_ignores_the_users_exported_warehouse_dagster_wandb_and_axiom_settings(tmp_path):
    traps = {
        name: tmp_path / "traps" / name
        for name in ("warehouse", "dagster_home", "wandb_dir", "wandb_config", "events", "runs")
    }
    for folder in traps.values():
        folder.mkdir(parents=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    shell = {
        "GRPO_WAREHOUSE": str(traps["warehouse"]),
        "GRPO_EVENT_PATHS": str(traps["events"]),
        "GRPO_WANDB_DIRS": str(traps["runs"]),
        "GRPO_WANDB_PROJECTS": "someone/their-project",
        "GRPO_AXIOM_DATASETS": "their-dataset",
        "GRPO_INGEST_WORKERS": "7",
        "DAGSTER_HOME": str(traps["dagster_home"]),
        "WANDB_API_KEY": "trap-" + "k" * 40,
        "WANDB_BASE_URL": "http://127.0.0.1:9",
        "WANDB_ENTITY": "someone",
        "WANDB_PROJECT": "their-project",
        "WANDB_RUN_ID": "trap0001",
        "WANDB_RESUME": "must",
        "WANDB_RUN_GROUP": "trap-group",
        "WANDB_MODE": "online",
        "WANDB_DIR": str(traps["wandb_dir"]),
        "WANDB_CONFIG_DIR": str(traps["wandb_config"]),
        "AXIOM_TOKEN": "xaat-trap-" + "t" * 30,
        "AXIOM_URL": "http://127.0.0.1:9",
        "AXIOM_ORG_ID": "their-org",
    }
    env = {**os.environ, **shell, "PYTHONDONTWRITEBYTECODE": "1"}
    before = _untracked(PROJECT_ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(PROJECT_ROOT),
         "-c", str(PROJECT_ROOT / "pyproject.toml"), *(str(PROJECT_ROOT / t) for t in SUBSET)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
    assert list(cwd.iterdir()) == [], "the suite wrote into its working directory"
    touched = {
        name: sorted(p.name for p in folder.iterdir()) for name, folder in traps.items() if any(folder.iterdir())
    }
    assert touched == {}, f"the suite used the shell's settings: {touched}"
    assert _untracked(PROJECT_ROOT) == before, "the suite left files in the checkout"
