"""Which dbt nodes a build can leave out: those whose raw inputs got no new committed batch.

A refresh after a small ingest used to run every node (~160 at this size),
so its cost was mostly fixed costs. The outputs of a node are a function of
its raw inputs, the project's code and the `vars:` settings only, so a node
none of whose raw tables got a new batch since the last complete build, built
by the same project, would produce the rows it already holds: it is excluded
from `dbt build`. Anything else selects every node again:

- no complete build yet, or its marker lost (`built_through` is ''), or a
  `--full-refresh`;
- the project changed (a model, a macro, a seed, a var in dbt_project.yml,
  the Python models' ratings and frame code): the fingerprint below, stored
  with the marker, differs, and the incremental models recompute what the
  change affects (their settings hash in macros/incremental.sql).

Tests follow the models: a test runs when any node it tests runs (dbt's
eager indirect selection); the tests of excluded models keep their last
outcome.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines.raw.paths import WarehousePaths
from pipelines.raw.schemas import SCHEMAS
from pipelines.settings import PROJECT_ROOT

# What a node's rows depend on besides the raw data (the Python models call pipelines/ratings
# and convert frames with pipelines/engine.py).
PROJECT_INPUTS = ("dbt_project.yml", "models", "macros", "seeds", "pipelines/ratings", "pipelines/engine.py")
RUNNABLE = ("model", "seed", "test", "snapshot")


def project_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A hash of every file a node's rows can depend on (paths and contents)."""
    h = hashlib.sha256()
    for name in PROJECT_INPUTS:
        p = root / name
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        for f in files:
            h.update(str(f.relative_to(root)).encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def tables_with_new_batches(wh: WarehousePaths, since: str) -> set[str]:
    """Raw tables that got rows in a batch committed after `since` (from the commit records);
    a record that does not say (no `rows`) counts as new rows in every table."""
    changed: set[str] = set()
    for record in wh.committed_batches():
        if record.get("batch_id", "") <= since:
            continue
        rows = record.get("rows")
        if not isinstance(rows, dict):
            return set(SCHEMAS)
        changed |= {table for table, n in rows.items() if n}
    return changed


def unaffected_nodes(manifest: Mapping[str, Any], changed_tables: Iterable[str]) -> list[str]:
    """Names of the models, seeds and tests that no changed raw table reaches, sorted."""
    changed = set(changed_tables)
    children: Mapping[str, list[str]] = manifest.get("child_map") or {}
    reached: set[str] = set()
    todo = [uid for uid, src in (manifest.get("sources") or {}).items() if src.get("name") in changed]
    while todo:
        uid = todo.pop()
        if uid not in reached:
            reached.add(uid)
            todo.extend(children.get(uid, ()))
    nodes = (manifest.get("nodes") or {}).items()
    return sorted({n["name"] for uid, n in nodes if n.get("resource_type") in RUNNABLE and uid not in reached})


def build_exclusions(
    wh: WarehousePaths, manifest_path: Path, since: str, previous_fingerprint: str | None, fingerprint: str
) -> tuple[list[str], set[str]]:
    """(nodes to exclude, raw tables with new batches); no exclusions when everything must run."""
    if not since or previous_fingerprint != fingerprint:
        return [], set()
    changed = tables_with_new_batches(wh, since)
    with open(manifest_path, encoding="utf-8") as fh:
        manifest = json.load(fh)
    return unaffected_nodes(manifest, changed), changed
