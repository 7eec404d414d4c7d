"""The target checks: which mart each one guards, and how to read their outcomes.

Outcomes are computed in SQL by the dbt model `fct_check_outcomes` (one row per
check and subject, thresholds from dbt_project.yml vars); Dagster asset checks
and `grpo check` both read that table from the published snapshot, so the UI
and the CLI can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from pipelines.answers.lookups import freshness
from pipelines.answers.sql import clean, rows
from pipelines.settings import target_actions


@dataclass(frozen=True)
class CheckDef:
    name: str  # Dagster check name
    check_name: str  # fct_check_outcomes.check_name
    subject_type: str  # run | hour | component | run_label
    asset: str  # the mart the check is attached to in Dagster
    severity: str  # error | warn
    description: str
    target: str | None = None  # key of target_actions in dbt_project.yml: what to do when it misses


CHECKS: tuple[CheckDef, ...] = (
    CheckDef(
        "rollout_p95_per_run",
        "rollout_p95_s",
        "run",
        "fct_rollout_timing_by_run",
        "error",
        "Each run's rollout duration p95 is below the target.",
        "rollout_p95",
    ),
    CheckDef(
        "rollout_p95_per_hour",
        "rollout_p95_s",
        "hour",
        "fct_rollout_timing_hourly",
        "error",
        "Each hour's rollout duration p95 is below the target.",
        "rollout_p95",
    ),
    CheckDef(
        "error_rate_per_run",
        "error_rate",
        "run",
        "fct_rollout_errors_by_run",
        "error",
        "Each run's failed-rollout rate is below the target.",
        "error_rate",
    ),
    CheckDef(
        "error_rate_per_hour",
        "error_rate",
        "hour",
        "fct_rollout_errors_hourly",
        "error",
        "Each hour's failed-rollout rate is below the target.",
        "error_rate",
    ),
    CheckDef(
        "extraction_rate_per_run",
        "extraction_rate",
        "run",
        "fct_extraction_by_run",
        "error",
        "Each run extracts enough of the expected orders.",
        "extraction_rate",
    ),
    CheckDef(
        "extraction_rate_per_hour",
        "extraction_rate",
        "hour",
        "fct_extraction_hourly",
        "error",
        "Each hour extracts enough of the expected orders.",
        "extraction_rate",
    ),
    CheckDef(
        "grad_norm_below_target",
        "grad_norm_max",
        "run",
        "fct_training_stability",
        "error",
        "No run's grad norm reaches the target.",
        "grad_norm",
    ),
    CheckDef(
        "kl_stable",
        "kl_p95",
        "run",
        "fct_training_stability",
        "error",
        "Each run's KL p95 stays below the stable threshold.",
        "kl",
    ),
    CheckDef(
        "kl_no_spikes",
        "kl_spike_steps",
        "run",
        "fct_training_stability",
        "error",
        "No run has more KL spike steps than allowed.",
        "kl",
    ),
    CheckDef(
        "training_values_finite",
        "non_finite_training_values",
        "run",
        "fct_training_stability",
        "warn",
        "No run logged NaN or infinite KL or grad norm values (they are counted, never dropped).",
        "grad_norm",
    ),
    CheckDef(
        "entropy_not_collapsed",
        "entropy_late_to_early",
        "run",
        "fct_training_stability",
        "warn",
        "No run's late policy entropy falls below var entropy_collapse_fraction of its early entropy (entropy collapse).",
        "entropy",
    ),
    CheckDef(
        "events_joined",
        "events_joined",
        "run_label",
        "fct_event_run_labels",
        "warn",
        "Every run label that events carry joins a W&B run (by run id, else by a unique run name); unjoined labels are listed.",
        "event_run",
    ),
    CheckDef(
        "base_model_elo_declining",
        "base_model_declining",
        "run",
        "fct_learning_verdicts",
        "warn",
        "base_model's Elo declines in each run (the policy beats a fixed reference more often).",
    ),
    CheckDef(
        "checkpoint_gap_growing",
        "gap_growing",
        "run",
        "fct_learning_verdicts",
        "warn",
        "The newest checkpoint's lead over base_model grows in each run.",
    ),
    CheckDef(
        "game_harness_stable",
        "game_harness_stable",
        "run",
        "fct_game_learning",
        "warn",
        "The fixed references' game ratings relative to the anchor stay the same across evaluation steps (else the evaluation changed, not the model).",
    ),
    CheckDef(
        "games_transitive",
        "games_transitive",
        "run",
        "fct_game_learning",
        "warn",
        "No cycle among the fixed references and the best checkpoint in the games (a beats b, b beats c, c beats a).",
    ),
    CheckDef(
        "heartbeats_fresh",
        "heartbeat_fresh",
        "component",
        "fct_component_health",
        "warn",
        "Every component sent a heartbeat recently.",
        "heartbeat",
    ),
)


def outcomes_for(con: Any, check: CheckDef) -> list[dict[str, Any]]:
    """Rows of fct_check_outcomes for one check definition, failing subjects first."""
    cur = con.execute(
        "select subject, subject_label, value, threshold, comparison, passed, outcome "
        "from fct_check_outcomes where check_name = ? and subject_type = ? "
        "order by outcome = 'pass', outcome = 'inconclusive', subject",
        [check.check_name, check.subject_type],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def action(target: str) -> dict[str, str] | None:
    """The playbook's action for a missed target (target_actions in dbt_project.yml), as {action, next}."""
    found = target_actions().get(target)
    return {"action": found.action, "next": found.next} if found else None


def check(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:

    names = {(c.check_name, c.subject_type): c.name for c in CHECKS}
    targets = {(c.check_name, c.subject_type): c.target for c in CHECKS}
    actions = target_actions()
    out = rows(
        con,
        "select check_name, subject_type, subject, subject_label, value, threshold, comparison, passed, outcome, severity, "
        "observed_label, expected_label, n_observations, ci95_lo, ci95_hi "
        "from fct_check_outcomes order by outcome = 'pass', outcome = 'inconclusive', severity, check_name, subject",
    )
    return clean(
        {
            "checks": [
                {
                    "name": names.get((r["check_name"], r["subject_type"]), r["check_name"]),
                    "metric": r["check_name"],
                    "subject_type": r["subject_type"],
                    "subject": r["subject_label"] or r["subject"],
                    "subject_id": r["subject"],
                    "passed": r["passed"],
                    "outcome": r["outcome"],
                    "n": r["n_observations"],
                    "ci95": [r["ci95_lo"], r["ci95_hi"]] if r["ci95_lo"] is not None else None,
                    "severity": r["severity"],
                    "value": r["value"],
                    "threshold": r["threshold"],
                    "comparison": r["comparison"],
                    "observed": r["observed_label"],
                    "expected": r["expected_label"],
                    "action": _check_action(actions, targets.get((r["check_name"], r["subject_type"])), r),
                }
                for r in out
            ],
            "freshness": freshness(con),
        }
    )


def _check_action(actions: dict, target: str | None, r: dict[str, Any]) -> dict[str, str] | None:
    """The playbook's action for a failing check, its next command naming the run where it needs one."""
    found = actions.get(target) if target and r["outcome"] == "fail" else None
    if found is None:
        return None
    subject = r["subject_label"] or r["subject"]
    return {
        "action": found.action,
        "next": found.next.replace("RUN", subject) if r["subject_type"] == "run" else found.next,
    }


def tally(checks: list[dict[str, Any]]) -> dict[str, int]:
    """How many of `check`'s subjects passed, failed (error / warning severity) and were inconclusive;
    a failed error-severity subject is what makes `grpo check` exit 1."""
    failed = [x for x in checks if x["outcome"] == "fail"]
    failed_error = sum(1 for x in failed if x["severity"] == "error")
    return {
        "passed": sum(1 for x in checks if x["outcome"] == "pass"),
        "failed_error": failed_error,
        "failed_warn": len(failed) - failed_error,
        "inconclusive": sum(1 for x in checks if x["outcome"] == "inconclusive"),
    }
