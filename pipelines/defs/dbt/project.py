"""The dbt project, defined once; `@dbt_assets` reads its manifest at import time."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from pipelines.settings import PROJECT_ROOT

dbt_project = DbtProject(project_dir=PROJECT_ROOT, profiles_dir=PROJECT_ROOT)
# Re-parses the project on every reload, but only under `dagster dev`.
dbt_project.prepare_if_dev()


def _newest_source_mtime() -> float:
    paths = [PROJECT_ROOT / "dbt_project.yml", PROJECT_ROOT / "profiles.yml"]
    for folder in ("models", "macros", "seeds"):
        d = PROJECT_ROOT / folder
        if d.exists():
            paths.extend(p for p in d.rglob("*") if p.is_file())
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def ensure_manifest() -> Path:
    """Run `dbt parse` when the manifest is missing or older than the project files."""
    manifest = dbt_project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime():
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    # dbt writes manifest.json in place: two processes parsing at once could
    # hand one of them a torn manifest, so parses take turns.
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime():
            return manifest
        return _parse(manifest)


def _parse(manifest: Path) -> Path:
    dbt = Path(sys.executable).with_name("dbt")
    proc = subprocess.run(
        [str(dbt), "parse", "--quiet", "--project-dir", str(PROJECT_ROOT), "--profiles-dir", str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    return manifest
