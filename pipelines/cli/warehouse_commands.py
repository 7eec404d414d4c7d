"""Do the targets hold, and anything else: `grpo check`, `grpo sql`, `grpo tracker`."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from pipelines.cli.options import (
    EXIT_FAILED_CHECK,
    EXIT_OK,
    GrpoError,
    answers,
    emit_json,
    emit_json_bytes,
    json_option,
    new_console,
)
from pipelines.cli.render import action_line, esc, freshness_line, outcome_mark, print_records, table, target_text


@click.command("check")
@click.option("--all", "show_all", is_flag=True, help="List passing subjects too.")
@json_option
@click.pass_context
def check_cmd(ctx, show_all: bool, as_json: bool) -> None:
    """Do the targets hold? Exit code 1 when an error-severity target fails.

    Example:

        grpo check || echo "a target failed"
    """
    from pipelines.answers import target_checks

    @answers
    def run(con):
        return target_checks.check_json(con)

    pieces, tally = run()
    if as_json:
        emit_json_bytes(pieces)
    else:
        ans = json.loads(b"".join(pieces))
        c = new_console()
        failed = [x for x in ans["checks"] if x["outcome"] == "fail"]
        c.print(
            f"{tally['passed']} passed, [red]{tally['failed_error']} failed (error)[/], "
            f"[yellow]{tally['failed_warn']} failed (warning)[/], "
            f"[dim]{tally['inconclusive']} inconclusive (too few observations, or an interval straddling the target)[/]"
        )
        shown = ans["checks"] if show_all else failed
        if shown:
            c.print(
                table(
                    "",
                    ["check", "subject", "value", "target", "severity", ""],
                    [
                        [x["name"], x["subject"], x["value"], target_text(x), x["severity"], outcome_mark(x["outcome"])]
                        for x in shown
                    ],
                )
            )
        seen: set[str] = set()
        for x in failed:  # one line per check that missed, in the order shown
            if x.get("action") and x["name"] not in seen:
                seen.add(x["name"])
                action_line(c, x["action"], x["name"])
        c.print(freshness_line(ans["freshness"]))
    ctx.exit(EXIT_FAILED_CHECK if tally["failed_error"] else EXIT_OK)


@click.command("sql")
@click.argument("query", required=False)
@click.option("--tables", "list_tables", is_flag=True, help="List the queryable tables with their grain.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@json_option
@answers
def sql_cmd(con, query: str | None, list_tables: bool, as_csv: bool, as_json: bool) -> None:
    """Anything else: a read-only SQL query over every historical run at once.

    Example:

        grpo sql "select run_name, verdict from fct_learning_verdicts order by 1"
    """
    from pipelines.answers import sql

    if list_tables:
        names = ["table_name", "description", "row_count"]
        data = [tuple(r.values()) for r in sql.tables(con)]
    else:
        if not query:
            raise GrpoError("give a query, or --tables to list what can be queried")
        try:
            names, data = sql.sql(con, query)
        except sql.ReadOnlyViolation as exc:
            raise GrpoError(str(exc)) from None
        except click.ClickException:
            raise
        except Exception as exc:  # duckdb errors (and bad parameters): show the engine's one line
            raise GrpoError(str(exc).splitlines()[0]) from None
    if as_json:
        emit_json(sql.clean([dict(zip(names, r)) for r in data]))
    elif as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(names)
        w.writerows(data)
    else:
        print_records(new_console(), names, [list(r) for r in data])


@click.command()
@click.option(
    "--path",
    "--out",
    "path",
    type=click.Path(dir_okay=False),
    default="docs/experiment-tracker.md",
    show_default=True,
    help="Markdown file whose marked section is regenerated; notes outside the markers are kept (created if missing).",
)
@json_option
@answers
def tracker(con, path: str, as_json: bool) -> None:
    """Update the experiment tracker: a table per sweep and the cross-sweep retrospective, in a marked section.

    Only the text between the tracker's two marker comments is rewritten; notes
    a person wrote above, below or around it are kept byte for byte. A file
    without markers gets the section appended; re-running with no new data
    changes nothing.

    Example:

        grpo tracker --path docs/experiment-tracker.md
    """
    from pipelines.answers import learning, lookups
    from pipelines.tracker.marked_page import TrackerFileError, update_tracker
    from pipelines.tracker.mart_extras import tracker_extras

    runs = learning.retrospective(con)
    fresh = lookups.freshness(con)
    try:
        changed = update_tracker(Path(path), runs, fresh, tracker_extras(con))
    except TrackerFileError as exc:
        raise GrpoError(str(exc)) from None
    if as_json:
        emit_json({"path": path, "out": path, "changed": changed, "runs": runs, "freshness": fresh})
    else:
        new_console().print(
            f"updated {esc(path)}: {len(runs)} runs"
            if changed
            else f"{esc(path)} already up to date ({len(runs)} runs)"
        )
