"""One place for thresholds, naming rules and paths.

The values live in the ``vars:`` block of ``dbt_project.yml`` (commented there),
so dbt models, Dagster asset checks and the CLI read the same numbers. This
module only loads them; nothing is read at import time.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_FILE = PROJECT_ROOT / "dbt_project.yml"
WAREHOUSE_ENV = "GRPO_WAREHOUSE"
DEFAULT_WAREHOUSE = "warehouse"
# DuckDB's memory limit for building (dbt, through profiles.yml, whose default
# must equal this one) and publishing: past it, sorts, joins and aggregates
# spill to disk instead of growing the process.
BUILD_MEMORY_LIMIT_ENV = "GRPO_BUILD_MEMORY_LIMIT"
DEFAULT_BUILD_MEMORY_LIMIT = "2500MB"


def build_memory_limit() -> str:
    return os.environ.get(BUILD_MEMORY_LIMIT_ENV) or DEFAULT_BUILD_MEMORY_LIMIT


def warehouse_root(explicit: str | os.PathLike | None = None) -> Path:
    """The warehouse directory: an explicit path, else ``$GRPO_WAREHOUSE``, else ``./warehouse``."""
    chosen = explicit or os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE
    return Path(chosen).expanduser().resolve()


@functools.lru_cache(maxsize=1)
def dbt_vars() -> dict[str, Any]:
    """The ``vars:`` block of dbt_project.yml, parsed once per process (a copy: callers may change it)."""
    return copy.deepcopy(_parsed_dbt_vars())


@functools.cache
def _parsed_dbt_vars() -> dict[str, Any]:
    import yaml  # local import: only callers that need settings pay for it

    # libyaml's parser when PyYAML was built with it: the same safe loading, ~10x faster than
    # the pure-Python one, which every CLI answer would otherwise pay for.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with DBT_PROJECT_FILE.open(encoding="utf-8") as fh:
        return dict(yaml.load(fh, Loader=loader).get("vars") or {})


@dataclass(frozen=True)
class Thresholds:
    rollout_p95_max_s: float
    extraction_rate_min: float
    error_rate_max: float
    grad_norm_max: float
    kl_stable_max: float
    kl_spike_min: float
    kl_spike_steps_allowed: int
    heartbeat_stale_after_s: float
    events_stale_after_s: float
    wandb_stale_after_s: float
    heartbeat_down_after_s: float = 3600.0
    heartbeat_ok_statuses: tuple[str, ...] = ("ok", "healthy", "up")
    health_lookback_s: float = 7 * 86400.0
    min_rollouts_for_rate: float = 50.0
    min_orders_for_rate: float = 100.0
    min_rollouts_for_p95: float = 20.0
    entropy_collapse_fraction: float = 0.5
    entropy_window: int = 10
    non_finite_values_allowed: int = 0


@dataclass(frozen=True)
class Action:
    """What to do when a target misses, and the command to run next."""

    action: str
    next: str


def target_actions() -> dict[str, Action]:
    """Target name (rollout_p95, extraction_rate, error_rate, grad_norm, kl, entropy, event_run, heartbeat) -> its action."""
    return {
        name: Action(str(a["action"]), str(a["next"])) for name, a in (dbt_vars().get("target_actions") or {}).items()
    }


def thresholds() -> Thresholds:
    v = dbt_vars()
    return Thresholds(
        rollout_p95_max_s=float(v["rollout_p95_max_s"]),
        extraction_rate_min=float(v["extraction_rate_min"]),
        error_rate_max=float(v["error_rate_max"]),
        grad_norm_max=float(v["grad_norm_max"]),
        kl_stable_max=float(v["kl_stable_max"]),
        kl_spike_min=float(v["kl_spike_min"]),
        kl_spike_steps_allowed=int(v["kl_spike_steps_allowed"]),
        heartbeat_stale_after_s=float(v["heartbeat_stale_after_s"]),
        events_stale_after_s=float(v["events_stale_after_s"]),
        wandb_stale_after_s=float(v["wandb_stale_after_s"]),
        heartbeat_down_after_s=float(v["heartbeat_down_after_s"]),
        heartbeat_ok_statuses=tuple(str(s).lower() for s in v["heartbeat_ok_statuses"]),
        health_lookback_s=float(v["health_lookback_s"]),
        min_rollouts_for_rate=float(v["min_rollouts_for_rate"]),
        min_orders_for_rate=float(v["min_orders_for_rate"]),
        min_rollouts_for_p95=float(v["min_rollouts_for_p95"]),
        entropy_collapse_fraction=float(v["entropy_collapse_fraction"]),
        entropy_window=int(v["entropy_window"]),
        non_finite_values_allowed=int(v["non_finite_values_allowed"]),
    )


def event_fields() -> dict[str, str]:
    """Our event field name -> the field name in the user's events."""
    return dict(dbt_vars()["event_fields"])


def event_identity() -> dict[str, tuple[str, ...]]:
    """Event kind -> the fields (our names) that identify an event of that kind (var `event_identity`)."""
    return identity_from_var(dbt_vars().get("event_identity"))


def identity_from_var(value: object) -> dict[str, tuple[str, ...]]:
    """The `event_identity` var as kind -> field names (a single name may be given as a string)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("var event_identity must map event kinds to lists of field names")
    out: dict[str, tuple[str, ...]] = {}
    for kind, names in value.items():
        if names is None or names == []:
            continue  # a kind switched off: its events are keyed by content
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, Sequence) or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"var event_identity: kind {kind!r} must list field names")
        out[str(kind)] = tuple(names)
    return out
