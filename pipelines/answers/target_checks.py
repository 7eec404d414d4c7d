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
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.answers.lookups import freshness
from pipelines.settings import PROJECT_ROOT, target_actions

if TYPE_CHECKING:
    import duckdb


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


# `check`'s records, written by DuckDB rather than walked value by value in Python (a full-scale
# warehouse holds ~30k outcomes): one JSON object per outcome, as UTF-8 bytes (which reach Python
# as they are), with the keys in the order of the documented answer, failing subjects first.
# NaN and ±Inf become null (as sql.clean does); the shown subject is its label unless that is
# empty or null (Python's `label or id`). The catalogue's names and targets and the playbook's
# actions arrive as bound lists, never spliced into the SQL.
_CHECK_SQL = """
with catalogue as (
    select unnest($check_names::varchar[]) as check_name, unnest($subject_types::varchar[]) as subject_type,
        unnest($names::varchar[]) as name, unnest($targets::varchar[]) as target
), playbook as (
    select unnest($action_targets::varchar[]) as target, unnest($action_texts::varchar[]) as action,
        unnest($action_nexts::varchar[]) as next
), outcomes as (
    select f.*, coalesce(nullif(f.subject_label, ''), f.subject) as shown, c.name, c.target
    from fct_check_outcomes f left join catalogue c using (check_name, subject_type)
)
select encode(to_json(struct_pack(
    name := coalesce(o.name, o.check_name),
    metric := o.check_name,
    subject_type := o.subject_type,
    subject := o.shown,
    subject_id := o.subject,
    passed := o.passed,
    outcome := o.outcome,
    n := o.n_observations,
    ci95 := case when o.ci95_lo is not null then [
        case when isfinite(o.ci95_lo) then o.ci95_lo end, case when isfinite(o.ci95_hi) then o.ci95_hi end
    ] end,
    severity := o.severity,
    value := case when isfinite(o.value) then o.value end,
    threshold := case when isfinite(o.threshold) then o.threshold end,
    comparison := o.comparison,
    observed := o.observed_label,
    expected := o.expected_label,
    action := case when p.target is not null then struct_pack(
        action := p.action,
        next := case when o.subject_type = 'run' then replace(p.next, 'RUN', o.shown) else p.next end
    ) end
)))
from outcomes o left join playbook p on o.outcome = 'fail' and p.target = o.target
order by o.outcome = 'pass', o.outcome = 'inconclusive', o.severity, o.check_name, o.subject
"""

# How many subjects passed, failed (error / warning severity) and were inconclusive; a failed
# error-severity subject is what makes `grpo check` exit 1.
_TALLY_SQL = """
select
    count(*) filter (where outcome = 'pass') as passed,
    count(*) filter (where outcome = 'fail' and severity = 'error') as failed_error,
    count(*) filter (where outcome = 'fail' and severity is distinct from 'error') as failed_warn,
    count(*) filter (where outcome = 'inconclusive') as inconclusive
from fct_check_outcomes
"""


def check_json(con: duckdb.DuckDBPyConnection) -> tuple[list[bytes], dict[str, int]]:
    """`check`'s answer as compact JSON, UTF-8 bytes in pieces to write one after the other, and its tally."""
    catalogue = {(c.check_name, c.subject_type): c for c in CHECKS}  # the last row of a key wins, as a dict does
    actions = target_actions()
    records = con.execute(
        _CHECK_SQL,
        {
            "check_names": [k[0] for k in catalogue],
            "subject_types": [k[1] for k in catalogue],
            "names": [c.name for c in catalogue.values()],
            "targets": [c.target for c in catalogue.values()],
            "action_targets": list(actions),
            "action_texts": [a.action for a in actions.values()],
            "action_nexts": [a.next for a in actions.values()],
        },
    ).fetchall()
    cur = con.execute(_TALLY_SQL)
    tally = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    fresh = json.dumps(freshness(con)).encode()
    return [b'{"checks": [', b", ".join([r[0] for r in records]), b'], "freshness": ' + fresh + b"}"], tally
