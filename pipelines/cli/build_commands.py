"""`grpo ingest` and `grpo demo`: run the main job (ingest, dbt build, publish, checks) and summarise it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipelines.cli.options import EXIT_USAGE, GrpoError, check_instant, emit_json, json_option, new_console, root_of
from pipelines.cli.render import esc, table


def run_job(ctx, as_json: bool, **sources) -> dict[str, Any]:
    from rich.status import Status

    from pipelines.build_runner import build_with_summary
    from pipelines.raw.layer import Warehouse
    from pipelines.raw.write_lock import LOCK_WAIT_MESSAGE

    wh = Warehouse(root_of(ctx)).ensure()
    console = new_console() if not as_json else None
    status = Status("starting…", console=new_console()) if console else None
    if status:
        status.start()

    def on_message(msg: str) -> None:
        if msg.startswith(LOCK_WAIT_MESSAGE):
            click.echo(msg, err=True)  # a wait can be long: say it on a line of its own, with --json too
        if status:
            status.update(msg)

    try:
        return build_with_summary(wh, on_message=on_message, **sources)
    finally:
        if status:
            status.stop()


def print_ingest_summary(summary: dict[str, Any]) -> None:
    c = new_console()
    if summary["success"]:
        c.print(f"[green]Warehouse updated[/] at {esc(summary['warehouse'])}")
    else:
        c.print(f"[red]The build failed[/] at {esc(summary['warehouse'])}:")
        for e in summary["errors"]:
            c.print(f"  [red]{esc(e)}[/]")
        c.print(f"  full log: {esc(summary['build_log'])}")
    c.print(
        table(
            "",
            ["", "total", "added now"],
            [
                ["runs", summary["runs"], summary["new_runs"]],
                ["history rows", summary["history_rows"], summary["new_history_rows"]],
                ["events", summary["events"], summary["new_events"]],
                ["rejected lines", summary["rejected"], summary["new_rejected"]],
            ],
        )
    )
    if summary["warnings"]:
        c.print(f"[yellow]{len(summary['warnings'])} warning(s) while reading the sources:[/]")
        for w in summary["warnings"]:
            c.print(f"  [yellow]![/] {esc(w)}")
    ch = summary["checks"]
    c.print(f"checks: {ch['passed']} passed, {ch['failed']} failed (details: grpo check)")


@click.command()
@click.option(
    "--wandb-dir", "wandb_dirs", multiple=True, type=click.Path(), help="Folder holding W&B run folders (repeatable)."
)
@click.option(
    "--events",
    "event_paths",
    multiple=True,
    type=click.Path(),
    help="NDJSON file or folder, gzip allowed (repeatable).",
)
@click.option(
    "--wandb-project",
    "wandb_projects",
    multiple=True,
    help="ENTITY/PROJECT read with the W&B API; key from WANDB_API_KEY (repeatable).",
)
@click.option("--sweep", help="Only W&B API runs of this sweep id.")
@click.option(
    "--axiom-dataset",
    "axiom_datasets",
    multiple=True,
    help="Axiom dataset read with the API; token from AXIOM_TOKEN (repeatable).",
)
@click.option("--since", help="First Axiom sync starts here (ISO-8601); later syncs resume from the stored cursor.")
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Rebuild every model from the raw layer (after changing event_fields) and test every row.",
)
@json_option
@click.pass_context
def ingest(ctx, wandb_dirs, event_paths, wandb_projects, sweep, axiom_datasets, since, full_refresh, as_json) -> None:
    """Ingest sources into the raw layer, build the marts, publish, run the checks.

    Re-running is idempotent: only new runs, steps and lines are added.

    Example:

        grpo ingest --wandb-dir ~/train/wandb --events logs/axiom-export.ndjson.gz --json
    """
    if not (wandb_dirs or event_paths or wandb_projects or axiom_datasets or full_refresh):
        raise GrpoError("nothing to ingest: give --wandb-dir, --events, --wandb-project or --axiom-dataset")
    for p in (*wandb_dirs, *event_paths):
        if not Path(p).exists():
            raise GrpoError(f"no such file or directory: {p}")
    summary = run_job(
        ctx,
        as_json,
        wandb_dirs=[str(Path(p).resolve()) for p in wandb_dirs],
        event_paths=[str(Path(p).resolve()) for p in event_paths],
        wandb_projects=list(wandb_projects),
        sweep=sweep,
        axiom_datasets=list(axiom_datasets),
        since=since,
        full_refresh=full_refresh,
    )
    if as_json:
        emit_json(summary)
    else:
        print_ingest_summary(summary)
    if not summary["success"]:
        ctx.exit(EXIT_USAGE)


@click.command()
@click.option("--seed", default=7, show_default=True, help="Random seed of the generated league.")
@click.option(
    "--end-time",
    callback=check_instant,
    help="End of the demo's 24 hours of events, ISO-8601 (UTC unless an offset is given); default now.",
)
@json_option
@click.pass_context
def demo(ctx, seed: int, end_time: str | None, as_json: bool) -> None:
    """Generate a demo league (real W&B offline runs + a day of events) and ingest it.

    No network and no credentials needed. The events cover the 24 hours up to
    now, or up to --end-time (the same demo at any hour, e.g. for tests).

    Example:

    \b
        grpo --warehouse /tmp/demo-wh demo
        grpo demo --end-time 2026-12-05T23:23Z
    """
    from pipelines.answers.windows import parse_instant
    from pipelines.demo.build import generate_demo

    root = root_of(ctx)
    out = root / "demo_sources"
    c = new_console()
    if not as_json:
        c.print(f"Generating the demo league in {esc(out)} …")
    end = parse_instant(end_time, "--end-time") if end_time else None
    manifest = generate_demo(out, seed=seed, now=end)
    summary = run_job(
        ctx, as_json, wandb_dirs=[str(d) for d in manifest.wandb_dirs], event_paths=[str(manifest.events_dir)]
    )
    if as_json:
        emit_json({**summary, "demo": manifest.to_dict()})
        return
    print_ingest_summary(summary)
    c.print("\n[bold]Try next[/]")
    first = manifest.runs[0].name if manifest.runs else "RUN"
    until = f" --until {manifest.now}" if end_time else ""  # the windows end where the demo's events do
    for cmd, why in [
        (f"grpo elo {first}", "is this run learning? (fixed references, checkpoint gap)"),
        ("grpo sweep --sweep lr-sweep", "which run of the sweep won?"),
        (f"grpo metrics -r {first}", "KL, grad norm, reward, loss"),
        (f"grpo rollout-timing --last 24h{until}", "rollout p50/p95/p99 against the target"),
        (f"grpo errors --last 24h{until}", "failed rollouts and error events"),
        (f"grpo extraction-stats --last 24h{until}", "order-extraction rate"),
        (f"grpo health --last 1h{until}", "which components are alive"),
        ("grpo check", "every target, pass/fail"),
        ("grpo sql --tables", "what you can query with SQL"),
    ]:
        c.print(f"  [cyan]{esc(cmd)}[/]  [dim]{esc(why)}[/]")
    if ctx.obj.get("warehouse"):
        c.print(f"[dim](add --warehouse {esc(root)} or set GRPO_WAREHOUSE)[/]")
    if not summary["success"]:
        ctx.exit(EXIT_USAGE)
