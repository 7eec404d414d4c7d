"""`grpo`: the analyst's questions, answered from the warehouse.

A thin click layer: parse options, call pipelines.answers (or the Dagster job
for `ingest`/`demo`), format. Exit codes: 0 answered; 1 `grpo check` found a
failing error-severity target; 2 usage error or no data.
"""

from __future__ import annotations

import click

from pipelines.cli.build_commands import demo, ingest
from pipelines.cli.learning_commands import elo, metrics, sweep
from pipelines.cli.pipeline_commands import errors, extraction_stats, health, inference, rollout_timing
from pipelines.cli.warehouse_commands import check_cmd, sql_cmd, tracker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--warehouse",
    envvar="GRPO_WAREHOUSE",
    type=click.Path(file_okay=False),
    help="Warehouse directory (default ./warehouse, or $GRPO_WAREHOUSE).",
)
@click.version_option(package_name="grpo-warehouse")
@click.pass_context
def main(ctx: click.Context, warehouse: str | None) -> None:
    """Answers about GRPO training runs from a local warehouse of W&B history and Axiom events.

    Example:

        grpo demo && grpo elo lr-sweep-2 && grpo check
    """
    ctx.ensure_object(dict)
    ctx.obj["warehouse"] = warehouse


# Every command; `grpo --help` lists them by name.
for command in (
    ingest,
    demo,
    elo,
    sweep,
    metrics,
    rollout_timing,
    errors,
    extraction_stats,
    inference,
    health,
    check_cmd,
    sql_cmd,
    tracker,
):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
