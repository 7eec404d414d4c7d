"""The target checks: which mart each one guards, and how to read their outcomes.

Which checks exist, their marts, severities and targets: seeds/target_checks.csv,
the one catalogue dbt, the Dagster asset checks and `grpo check` all read.
Outcomes are computed in SQL by the dbt model `fct_check_outcomes` (one row per
check and subject, thresholds from dbt_project.yml vars); Dagster asset checks
and `grpo check` both read that table from the published snapshot, so the UI
and the CLI can never disagree.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any

import duckdb

from pipelines.answers.lookups import freshness
from pipelines.answers.sql import clean, rows
from pipelines.settings import PROJECT_ROOT, target_actions


@dataclass(frozen=True)
class CheckDef:
    name: str  # Dagster check name
    check_name: str  # fct_check_outcomes.check_name
    subject_type: str  # run | hour | component | run_label
    asset: str  # the mart the check is attached to in Dagster
    severity: str  # error | warn
    description: str
    target: str | None = None  # key of target_actions in dbt_project.yml: what to do when it misses


# The check catalogue: one row per check in seeds/target_checks.csv, the table dbt joins
# for each outcome's severity; read here with the csv module (no dbt on the query path).
TARGET_CHECKS_SEED = PROJECT_ROOT / "seeds" / "target_checks.csv"


def _catalogue() -> tuple[CheckDef, ...]:
    with open(TARGET_CHECKS_SEED, encoding="utf-8", newline="") as fh:
        return tuple(
            CheckDef(
                name=row["dagster_check"],
                check_name=row["check_name"],
                subject_type=row["subject_type"],
                asset=row["mart"],
                severity=row["severity"],
                description=row["description"],
                target=row["target"] or None,
            )
            for row in csv.DictReader(fh)
        )


CHECKS: tuple[CheckDef, ...] = _catalogue()


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
