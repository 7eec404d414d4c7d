"""Is the rollout pipeline healthy? `grpo rollout-timing`, `errors`, `extraction-stats`, `inference`, `health`."""

from __future__ import annotations

import click

from pipelines.cli.options import answers, emit_json, json_option, new_console, window, window_options
from pipelines.cli.render import (
    Styled,
    action_line,
    ci_text,
    esc,
    exit_if_no_data,
    fmt,
    freshness_line,
    no_data_note,
    outcome_mark,
    pct,
    table,
    unjoined_line,
)


@click.command("rollout-timing")
@window_options("6h")
@json_option
@answers
def rollout_timing(con, last, since, until, as_json) -> None:
    """Rollout throughput: duration p50/p95/p99/max in a window, per run and hour.

    Example:

        grpo rollout-timing --last 6h
    """
    from pipelines.answers import pipeline
    from pipelines.settings import thresholds

    w = window(last, since, until, "6h")
    ans = pipeline.rollout_timing(con, w, thresholds())
    if as_json:
        emit_json(ans)
        return exit_if_no_data(ans["count"])
    c = new_console()
    c.print(
        f"Rollouts in [{ans['since']}, {ans['until']}): {ans['count']:,}   p95 {fmt(ans['p95_s'])} s vs target < {ans['target_p95_s']:g} s  {outcome_mark(ans['outcome'])}"
    )
    action_line(c, ans.get("action"))
    no_data_note(c, ans["count"], "rollouts", ans)
    unjoined_line(c, ans.get("unjoined_events"))
    if ans["count"]:
        c.print(
            table("", ["p50 s", "p95 s", "p99 s", "max s"], [[ans["p50_s"], ans["p95_s"], ans["p99_s"], ans["max_s"]]])
        )
        c.print(
            table(
                "By run",
                ["run", "rollouts", "p50 s", "p95 s", "max s", ""],
                [
                    [r["run"], r["count"], r["p50_s"], r["p95_s"], r["max_s"], outcome_mark(r["outcome"])]
                    for r in ans["by_run"]
                ],
            )
        )
        slow = [h for h in ans["by_hour"] if h["outcome"] == "fail"]
        if slow:
            c.print(
                table(
                    "Hours over target",
                    ["hour", "rollouts", "p95 s"],
                    [[h["hour"], h["count"], h["p95_s"]] for h in slow],
                )
            )
    c.print(freshness_line(ans["freshness"]))
    exit_if_no_data(ans["count"])


@click.command()
@window_options("1h")
@json_option
@answers
def errors(con, last, since, until, as_json) -> None:
    """Any errors? Failed-rollout rate against the target, error events by component and type.

    Example:

        grpo errors --last 1h
    """
    from pipelines.answers import pipeline
    from pipelines.settings import thresholds

    w = window(last, since, until, "1h")
    ans = pipeline.errors(con, w, thresholds())
    if as_json:
        emit_json(ans)
        return exit_if_no_data(ans["rollouts"] + ans["error_events"])
    c = new_console()
    c.print(
        f"Error rate in [{ans['since']}, {ans['until']}): {pct(ans['error_rate'])} "
        f"({ans['failed_rollouts']:,} of {ans['rollouts']:,} rollouts failed{ci_text(ans.get('ci95'))}) vs target < {pct(ans['target_error_rate'])}  {outcome_mark(ans['outcome'])}; "
        f"{ans['error_events']:,} error events"
    )
    action_line(c, ans.get("action"))
    no_data_note(c, ans["rollouts"] + ans["error_events"], "rollouts or error events", ans)
    unjoined_line(c, ans.get("unjoined_events"))
    if ans["by_run"]:
        c.print(
            table(
                "By run",
                ["run", "rollouts", "failed", "error rate", ""],
                [
                    [r["run"], r["rollouts"], r["failed_rollouts"], pct(r["error_rate"]), outcome_mark(r["outcome"])]
                    for r in ans["by_run"]
                ],
            )
        )
    if ans["by_type"]:
        c.print(
            table(
                "Error events by component and type",
                ["component", "type", "events", "last message"],
                [
                    [r["component"], r["error_type"], r["events"], (r["last_message"] or "")[:80]]
                    for r in ans["by_type"]
                ],
            )
        )
    c.print(freshness_line(ans["freshness"]))
    exit_if_no_data(ans["rollouts"] + ans["error_events"])


@click.command("extraction-stats")
@window_options("24h")
@json_option
@answers
def extraction_stats(con, last, since, until, as_json) -> None:
    """Order-extraction rate (orders extracted / expected) against the target, per run.

    Example:

        grpo extraction-stats --last 24h
    """
    from pipelines.answers import pipeline
    from pipelines.settings import thresholds

    w = window(last, since, until, "24h")
    ans = pipeline.extraction(con, w, thresholds())
    if as_json:
        emit_json(ans)
        return exit_if_no_data(ans["events"])
    c = new_console()
    c.print(
        f"Extraction rate in [{ans['since']}, {ans['until']}): {pct(ans['extraction_rate'])} "
        f"({ans['orders_extracted']:,} of {ans['orders_expected']:,} orders{ci_text(ans.get('ci95'))}) vs target > {pct(ans['target'])}  {outcome_mark(ans['outcome'])}"
    )
    action_line(c, ans.get("action"))
    no_data_note(c, ans["events"], "extraction events", ans)
    unjoined_line(c, ans.get("unjoined_events"))
    if ans["by_run"]:
        c.print(
            table(
                "By run",
                ["run", "expected", "extracted", "rate", ""],
                [
                    [
                        r["run"],
                        r["orders_expected"],
                        r["orders_extracted"],
                        pct(r["extraction_rate"]),
                        outcome_mark(r["outcome"]),
                    ]
                    for r in ans["by_run"]
                ],
            )
        )
    c.print(freshness_line(ans["freshness"]))
    exit_if_no_data(ans["events"])


@click.command()
@window_options("6h")
@json_option
@answers
def inference(con, last, since, until, as_json) -> None:
    """Inference engine performance: requests, latency p50/p95/p99, tokens/s, queue time, batch size per engine.

    Example:

        grpo inference --last 6h
    """
    from pipelines.answers import pipeline

    w = window(last, since, until, "6h")
    ans = pipeline.inference(con, w)
    if as_json:
        emit_json(ans)
        return exit_if_no_data(ans["requests"])
    c = new_console()
    c.print(
        f"Inference requests in [{ans['since']}, {ans['until']}): {ans['requests']:,}   latency p95 {fmt(ans.get('latency_p95_s'))} s"
    )
    no_data_note(c, ans["requests"], "inference requests", ans)
    if ans["requests"]:
        cols = [
            "engine",
            "host",
            "requests",
            "latency p50 s",
            "p95 s",
            "p99 s",
            "tokens/s",
            "queue mean s",
            "queue p95 s",
            "batch mean",
        ]

        def row(r: dict, first: str, second: str) -> list:
            return [
                first,
                second,
                r["requests"],
                r["latency_p50_s"],
                r["latency_p95_s"],
                r["latency_p99_s"],
                r["tokens_per_s_mean"],
                r["queue_s_mean"],
                r["queue_s_p95"],
                r["batch_size_mean"],
            ]

        c.print(table("By engine", cols, [row(r, r["engine"], r["host"]) for r in ans["by_engine"]]))
        c.print(
            table("By hour", ["hour", "engine", *cols[2:]], [row(r, r["hour"], r["engine"]) for r in ans["by_hour"]])
        )
    c.print(freshness_line(ans["freshness"]))
    exit_if_no_data(ans["requests"])


@click.command()
@window_options("1h")
@json_option
@answers
def health(con, last, since, until, as_json) -> None:
    """System health: every component seen lately, its last heartbeat, and whether it went stale or down.

    A component silent since before the window is listed too (stale or down), never left out.

    Example:

        grpo health --last 1h
    """
    from pipelines.answers import pipeline
    from pipelines.settings import thresholds

    w = window(last, since, until, "1h")
    ans = pipeline.health(con, w, thresholds())
    if as_json:
        emit_json(ans)
        return exit_if_no_data(len(ans["components"]))
    c = new_console()
    comps = ans["components"]
    n_bad = ans["not_ok"]
    if not comps:
        head = ""
    elif n_bad:
        head = f"[red]{n_bad} of {len(comps)} components not ok[/]"
    else:
        head = f"[green]all {len(comps)} components ok[/]"
    c.print(f"Health in [{ans['since']}, {ans['until']}) as of {ans['as_of']}: {head}")
    if not comps:
        lookback = f"{ans['lookback_s'] / 86400:g} days"
        c.print(
            f"[yellow]No heartbeats in the {lookback} before {ans['until']} — that means no data, not a clean bill.[/]"
        )
    action_line(c, ans.get("action"))
    style = {"ok": "green", "stale": "red", "down": "red", "degraded": "yellow"}
    if comps:
        title = f"Components (stale after {ans['stale_after_s']:g} s of silence, down after {ans['down_after_s']:g} s)"
        c.print(
            table(
                title,
                ["component", "host", "last seen", "silent s", "heartbeats in window", "status"],
                [
                    [
                        x["component"],
                        x["host"],
                        x["last_seen"],
                        x["silent_s"],
                        x["heartbeats"],
                        Styled(f"[{style.get(x['status'], 'yellow')}]{esc(x['status'])}[/]"),
                    ]
                    for x in comps
                ],
            )
        )
    c.print(freshness_line(ans["freshness"]))
    exit_if_no_data(len(comps))
