"""`grpo`: the analyst's questions, answered from the warehouse.

A thin click layer: parse options, call pipelines.queries (or the Dagster job
for `ingest`/`demo`), format. Exit codes: 0 answered; 1 `grpo check` found a
failing error-severity target; 2 usage error or no data.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from pathlib import Path
from typing import Any

import click

EXIT_OK, EXIT_FAILED_CHECK, EXIT_USAGE = 0, 1, 2
EXIT_NO_DATA = EXIT_USAGE  # one code for "could not answer": a usage error, or nothing to answer with


class GrpoError(click.ClickException):
    exit_code = EXIT_USAGE


def _console():
    from rich.console import Console

    import shutil

    # Piped output (CI logs, `| less`) gets a wide page instead of rich's 80 columns.
    width = None if sys.stdout.isatty() else max(shutil.get_terminal_size((160, 40)).columns, 160)
    return Console(highlight=False, soft_wrap=False, width=width)


def _root(ctx: click.Context) -> Path:
    from pipelines.settings import warehouse_root

    return warehouse_root(ctx.obj.get("warehouse"))


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (a stable, documented form).")(f)


def _check_duration(ctx, param, value):
    from pipelines.timewin import WindowError, parse_duration

    if value is not None:
        try:
            parse_duration(value)
        except WindowError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _check_instant(ctx, param, value):
    from pipelines.timewin import WindowError, parse_instant

    if value is not None:
        try:
            parse_instant(value, param.opts[0])
        except WindowError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def window_options(default_last: str):
    def deco(f):
        f = click.option("--until", callback=_check_instant, help="Window end, ISO-8601 (UTC unless an offset is given); default now.")(f)
        f = click.option("--since", callback=_check_instant, help="Window start, ISO-8601 (UTC unless an offset is given).")(f)
        f = click.option("--last", callback=_check_duration, help=f"Window length ending at --until: 30m, 6h, 2d (default {default_last}).")(f)
        return f

    return deco


def _window(last, since, until, default_last: str):
    from pipelines.timewin import WindowError, resolve

    try:
        return resolve(last, since, until, default_last=default_last)
    except WindowError as exc:
        raise GrpoError(str(exc)) from None


def answers(f):
    """Open the snapshot, map lookup/no-data failures to exit code 2 with a clear message."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from pipelines.queries import LookupFailed, NoDataError, open_snapshot

        ctx = click.get_current_context()
        try:
            con = open_snapshot(_root(ctx))
        except NoDataError as exc:
            raise GrpoError(str(exc)) from None
        try:
            return f(con, *args, **kwargs)
        except LookupFailed as exc:
            listing = "\n".join(f"  {c}" for c in exc.candidates)
            raise GrpoError(f"{exc}. Candidates:\n{listing}" if exc.candidates else str(exc)) from None
        except NoDataError as exc:
            raise GrpoError(str(exc)) from None
        finally:
            con.close()

    return wrapper


def emit_json(obj: Any) -> None:
    # Indented for a terminal; compact when piped, which lets json use its C
    # encoder (`grpo check --json` at full scale lists ~30k subject checks).
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(obj, indent=indent, sort_keys=False, default=str))


class Styled(str):
    """Text of ours carrying rich markup; every other string is escaped before printing."""


def esc(value: Any) -> str:
    """User data (run names, metric keys, messages) printed as plain text, never as markup."""
    from rich.markup import escape

    return escape(str(value))


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def _ci_text(ci: list | None) -> str:
    return f", 95 % CI {_pct(ci[0])} to {_pct(ci[1])}" if ci else ""


def _outcome_mark(outcome: str | None) -> Styled:
    if outcome == "inconclusive":
        return Styled("[yellow]INCONCLUSIVE[/]")
    return _mark({"pass": True, "fail": False}.get(outcome or ""))


def _mark(passed: bool | None) -> Styled:
    if passed is None:
        return Styled("[yellow]no data[/]")
    return Styled("[green]PASS[/]" if passed else "[red]FAIL[/]")


def _verdict(v: str | None) -> Styled:
    v = v or "insufficient_data"
    return Styled(f"[{VERDICT_STYLE.get(v, '')}]{esc(v)}[/]" if VERDICT_STYLE.get(v) else esc(v))


def _table(title: str, columns: list[str], data: list[list[Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in data:
        t.add_row(*[x if isinstance(x, Styled) else esc(_fmt(x)) for x in row])
    return t


def _freshness_line(fresh: dict[str, Any]) -> str:
    return (
        f"[dim]data: latest event {fresh.get('latest_event_at') or 'none'}, "
        f"latest step {fresh.get('latest_step') if fresh.get('latest_step') is not None else 'none'}, "
        f"snapshot published {fresh.get('published_at') or 'never'}[/]"
    )


VERDICT_STYLE = {"learning": "green", "not_learning": "red", "unstable": "yellow", "insufficient_data": "dim"}


# --- the group -----------------------------------------------------------------


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


# --- building -------------------------------------------------------------------


def _run_job(ctx, as_json: bool, **sources) -> dict[str, Any]:
    from rich.status import Status

    from pipelines.ingest import totals
    from pipelines.jobs import run_build_job
    from pipelines.warehouse import LOCK_WAIT_MESSAGE, Warehouse

    wh = Warehouse(_root(ctx)).ensure()
    before = totals(wh)
    console = _console() if not as_json else None
    status = Status("starting…", console=_console()) if console else None
    if status:
        status.start()

    def on_message(msg: str) -> None:
        if msg.startswith(LOCK_WAIT_MESSAGE):
            click.echo(msg, err=True)  # a wait can be long: say it on a line of its own, with --json too
        if status:
            status.update(msg)

    try:
        outcome = run_build_job(wh, on_message=on_message, **sources)
    finally:
        if status:
            status.stop()
    after = totals(wh)
    summary = {
        **after,
        "new_runs": after["runs"] - before["runs"],
        "new_history_rows": after["history_rows"] - before["history_rows"],
        "new_events": after["events"] - before["events"],
        "new_rejected": after["rejected"] - before["rejected"],
        "warehouse": str(wh.root),
        "success": outcome.success,
        "errors": outcome.errors,
        "warnings": outcome.warnings,
        "build_log": str(outcome.log_path),
        "checks": {
            "passed": sum(1 for c in outcome.check_results if c["passed"]),
            "failed": sum(1 for c in outcome.check_results if not c["passed"]),
        },
    }
    return summary


def _print_ingest_summary(summary: dict[str, Any]) -> None:
    c = _console()
    if summary["success"]:
        c.print(f"[green]Warehouse updated[/] at {esc(summary['warehouse'])}")
    else:
        c.print(f"[red]The build failed[/] at {esc(summary['warehouse'])}:")
        for e in summary["errors"]:
            c.print(f"  [red]{esc(e)}[/]")
        c.print(f"  full log: {esc(summary['build_log'])}")
    c.print(
        _table(
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


@main.command()
@click.option("--wandb-dir", "wandb_dirs", multiple=True, type=click.Path(), help="Folder holding W&B run folders (repeatable).")
@click.option("--events", "event_paths", multiple=True, type=click.Path(), help="NDJSON file or folder, gzip allowed (repeatable).")
@click.option("--wandb-project", "wandb_projects", multiple=True, help="ENTITY/PROJECT read with the W&B API; key from WANDB_API_KEY (repeatable).")
@click.option("--sweep", help="Only W&B API runs of this sweep id.")
@click.option("--axiom-dataset", "axiom_datasets", multiple=True, help="Axiom dataset read with the API; token from AXIOM_TOKEN (repeatable).")
@click.option("--since", help="First Axiom sync starts here (ISO-8601); later syncs resume from the stored cursor.")
@click.option("--full-refresh", is_flag=True, help="Rebuild every model from the raw layer (after changing event_fields) and test every row.")
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
    summary = _run_job(
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
        _print_ingest_summary(summary)
    if not summary["success"]:
        ctx.exit(EXIT_USAGE)


@main.command()
@click.option("--seed", default=7, show_default=True, help="Random seed of the generated league.")
@click.option(
    "--end-time",
    callback=_check_instant,
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
    from pipelines.demo.build import generate_demo
    from pipelines.timewin import parse_instant

    root = _root(ctx)
    out = root / "demo_sources"
    c = _console()
    if not as_json:
        c.print(f"Generating the demo league in {esc(out)} …")
    end = parse_instant(end_time, "--end-time") if end_time else None
    manifest = generate_demo(out, seed=seed, now=end)
    summary = _run_job(ctx, as_json, wandb_dirs=[str(d) for d in manifest.wandb_dirs], event_paths=[str(manifest.events_dir)])
    if as_json:
        emit_json({**summary, "demo": manifest.to_dict()})
        return
    _print_ingest_summary(summary)
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


# --- learning ---------------------------------------------------------------------


@main.command()
@click.argument("run")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG of the references, checkpoints and gap.")
@json_option
@answers
def elo(con, run: str, plot: str | None, as_json: bool) -> None:
    """Full Elo analysis of a run: fixed references, checkpoint gap, verdict.

    RUN is a run name or id (a unique prefix works). When the run logged league
    games (event `game`), their Bradley–Terry ratings with bootstrap intervals
    are shown next to the logged Elo, and the verdict says which it used.

    Example:

        grpo elo lr-sweep-2 --plot elo.png
    """
    from pipelines import queries

    ans = queries.elo(con, run)
    if plot:
        from pipelines.plots import plot_elo

        plot_elo(queries.elo_series(con, ans["run_id"]), ans, Path(plot))
    if as_json:
        emit_json(ans)
        return
    c = _console()
    v = ans["verdict"]
    c.print(f"[bold]{esc(ans['run'])}[/] ({esc(ans['run_id'])}, sweep {esc(ans['sweep'])}): [bold]{_verdict(v)}[/]")
    if ans.get("reason"):
        c.print(f"  {esc(ans['reason'])}")
    st = ans["stability"]
    c.print(f"  stability: [bold]{esc(st['status'])}[/]" + (f" ({esc(st['evidence'])})" if st.get("evidence") else ""))
    c.print(
        _table(
            "Fixed references (their Elo falling = the policy is learning; 95 % CI allows for autocorrelated rating noise)",
            ["player", "points", "first", "last", "delta", "slope/100 steps", "95 % CI", "noise φ", "trend"],
            [
                [r["player"], r["n_points"], r["first"], r["last"], r["delta"], r["slope_per_100_steps"],
                 f"[{_fmt(r['ci95'][0])}, {_fmt(r['ci95'][1])}]", r.get("noise_phi"), r["trend"]]
                for r in ans["references"]
            ],
        )
    )
    g = ans["gap"]
    if g.get("missing_reason"):
        c.print(f"  [yellow]No checkpoint gap:[/] {esc(g['missing_reason'])}")
    if ans.get("unclassified_players"):
        c.print(
            "  [yellow]Unclassified Elo players:[/] "
            + esc(", ".join(f"{u['player']} ({u['n_points']} points)" for u in ans["unclassified_players"]))
            + f" — {esc(ans['unclassified_note'])}"
        )
    c.print(
        _table(
            "Newest checkpoint − base_model",
            ["first", "last", "delta", "final (mean of last evals)", "slope/100 steps", "95 % CI", "trend"],
            [[g["first"], g["last"], g["delta"], g["final"], g["slope_per_100_steps"],
              f"[{_fmt(g['ci95'][0])}, {_fmt(g['ci95'][1])}]", g["trend"]]],
        )
    )
    if ans.get("game_ratings"):
        _print_game_ratings(c, ans["game_ratings"])
    if ans["superseded_checkpoints"]:
        c.print(
            _table(
                "Superseded checkpoints (declining after a newer one exists is a good sign)",
                ["checkpoint", "superseded at step", "Elo change since"],
                [[s["player"], s["superseded_at_step"],
                  "no later ratings" if s["elo_change_after_superseded"] is None else s["elo_change_after_superseded"]]
                 for s in ans["superseded_checkpoints"]],
            )
        )
    cells = ans.get("cells") or []
    if cells and any(c["n_seeds"] > 1 for c in cells):
        c.print(
            _table(
                "Configurations (runs that differ only in a seed), by the interquartile mean of their final gaps",
                ["rank", "runs", "seeds", "IQM final gap", "95 % CI", "learning", "unstable", "cannot be separated from"],
                [[x["rank"], ", ".join(x["runs"]), x["n_seeds"], x["gap_final_iqm"],
                  f"[{_fmt(x['ci95'][0])}, {_fmt(x['ci95'][1])}]", x["n_learning"], x["n_unstable"], ", ".join(x["tied_with"])]
                 for x in cells],
            )
        )
    elif cells:
        c.print("[dim]Every configuration has one seed: the ranking is of single runs (their intervals do not cover seed-to-seed variation).[/]")
    if plot:
        c.print(f"plot written to {esc(plot)}")
    c.print(_freshness_line(ans["freshness"]))


def _elo_text(x: float | None, signed: bool = False) -> str:
    """An Elo figure from the games, whole points; n/a where no finite rating exists (a player
    who never lost, or never won, against the anchor's group)."""
    return "n/a" if x is None else f"{x:+.0f}" if signed else f"{x:.0f}"


def _print_game_ratings(c, g: dict) -> None:
    """The game-based ratings of `grpo elo` (issue #16), next to the last logged Elo."""
    anchor = g["anchor"]
    c.print(
        _table(
            f"Ratings from {g['n_games']} league games (Bradley–Terry fit; 95 % CI from {g['bootstrap_rounds']} "
            f"bootstrap rounds over games; {anchor} fixed at its anchor rating) next to the last logged Elo",
            ["player", "kind", "games", "game rating", "95 % CI", f"vs {anchor}", "95 % CI", f"P(> {anchor})", "logged Elo"],
            [[p["player"], p["kind"], p["n_games"], _elo_text(p["rating"]),
              f"[{_elo_text(p['ci95'][0])}, {_elo_text(p['ci95'][1])}]", _elo_text(p["vs_anchor"], True),
              f"[{_elo_text(p['vs_anchor_ci95'][0], True)}, {_elo_text(p['vs_anchor_ci95'][1], True)}]",
              p["superiority_vs_anchor"], p["logged_elo"]]
             for p in g["players"]],
        )
    )
    n, b, tr = g["newest_checkpoint"], g["best_checkpoint"], g["checkpoint_trend"]
    if n.get("player"):
        c.print(f"  games: newest checkpoint {esc(n['player'])} − {esc(anchor)} = {_elo_text(n['vs_anchor'], True)} Elo "
                f"[{_elo_text(n['ci95'][0], True)}, {_elo_text(n['ci95'][1], True)}], P(stronger) {_fmt(n['superiority'])}")
        c.print(f"  games: checkpoint ratings over step: {esc(tr['trend'])}"
                + (f" ({_fmt(tr['slope_per_100_steps'])} Elo per 100 steps [{_fmt(tr['ci95'][0])}, {_fmt(tr['ci95'][1])}])"
                   if tr.get("slope_per_100_steps") is not None else ""))
        if b.get("games_needed") is not None:
            more = b["more_games_needed"]
            c.print(f"  games: best checkpoint {esc(b['player'])} vs {esc(anchor)} to ±{_fmt(b['target_half_width'])} Elo: "
                    + ("already there" if not more else f"about {more} more games ({b['games_needed']} in all, same mix)"))
    if g.get("harness_stable") is False:
        c.print(f"  [yellow]games: the harness moved — {esc(g['harness_evidence'])}[/]")
    if g.get("intransitive_cycles"):
        c.print(f"  [yellow]games: intransitive — {esc(g['intransitive_cycles'])}[/]")
    c.print(f"  verdict evidence: {'the games' if g.get('evidence') == 'games' else 'the logged Elo'}")


@main.command()
@click.option("--sweep", "sweep_text", required=True, help="Sweep id or name, group, or run-name prefix.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG of the gaps of the sweep's runs.")
@json_option
@answers
def sweep(con, sweep_text: str, plot: str | None, as_json: bool) -> None:
    """Rank the runs of a sweep by their final checkpoint gap; statistical ties are marked.

    When every run of the sweep logged enough league games (var
    min_games_for_verdict), the ranking uses the gap measured from the games.

    Example:

        grpo sweep --sweep lr-sweep --json
    """
    from pipelines import queries

    ans = queries.sweep(con, sweep_text)
    if plot:
        from pipelines.plots import plot_sweep

        plot_sweep(queries.sweep_gap_series(con, ans["sweep"]), ans, Path(plot))
    if as_json:
        emit_json(ans)
        return
    c = _console()
    runs = ans["runs"]
    if runs:
        top = runs[0]
        tie = " (a statistical tie with " + ", ".join(top["tied_with"]) + ")" if top["is_tie"] and top["tied_with"] else ""
        c.print(f"Sweep [bold]{esc(ans['sweep'])}[/]: best run [bold]{esc(top['run'])}[/]{esc(tie)}")
        if ans.get("best_note"):
            c.print(f"  [yellow]Note:[/] {esc(ans['best_note'])}")
    keys = ans["varying_config_keys"]
    c.print(
        _table(
            "Ranking by final checkpoint gap (newest checkpoint Elo − base_model Elo)"
            if ans.get("ranked_by") != "games"
            else "Ranking by the league games' gap (newest checkpoint − base_model from a Bradley–Terry fit over the games, 95 % bootstrap CI); logged final gap alongside",
            ["rank", "run", "verdict", "final gap", "± se", "last gap", "base_model Δ", "tie", *keys]
            + (["game gap", "95 % CI"] if any(r.get("game_gap") is not None for r in runs) else []),
            [
                [r["rank"], r["run"], _verdict(r["verdict"]), r["gap_final"], r["gap_final_se"],
                 r["gap_last"], r["base_model_delta"], "tie" if r["is_tie"] else "", *[_fmt(r["config"].get(k)) for k in keys]]
                + ([_elo_text(r.get("game_gap"), True),
                    f"[{_elo_text(r['game_gap_ci95'][0], True)}, {_elo_text(r['game_gap_ci95'][1], True)}]"]
                   if any(x.get("game_gap") is not None for x in runs) else [])
                for r in runs
            ],
        )
    )
    if plot:
        c.print(f"plot written to {esc(plot)}")
    c.print(_freshness_line(ans["freshness"]))


@main.command()
@click.option("-r", "--run", "run_text", required=True, help="Run name or id.")
@click.option("--all-metrics", is_flag=True, help="Every logged metric, not only KL, grad norm, reward, loss and references.")
@json_option
@answers
def metrics(con, run_text: str, all_metrics: bool, as_json: bool) -> None:
    """Is the model learning? Training metrics of a run with stability against the targets.

    Example:

        grpo metrics -r lr-sweep-3 --all-metrics
    """
    from pipelines import queries
    from pipelines.settings import dbt_vars, thresholds

    ans = queries.metrics(con, run_text, all_metrics, dbt_vars()["metric_aliases"])
    if as_json:
        emit_json(ans)
        return
    t = thresholds()
    c = _console()
    v = ans["verdict"] or "insufficient_data"
    c.print(f"[bold]{esc(ans['run'])}[/] ({esc(ans['run_id'])}): [bold]{_verdict(v)}[/]")
    if ans.get("reason"):
        c.print(f"  {esc(ans['reason'])}")
    s = ans["stability"]
    if s:
        spikes_ok = None if s.get("kl_spike_steps") is None else s["kl_spike_steps"] <= t.kl_spike_steps_allowed
        c.print(
            _table(
                "Stability against the targets",
                ["measure", "value", "target", ""],
                [
                    ["KL p95", s.get("kl_p95"), f"< {t.kl_stable_max}", _mark(None if s.get("kl_p95") is None else s["kl_p95"] < t.kl_stable_max)],
                    ["KL spike steps", s.get("kl_spike_steps"), f"≤ {t.kl_spike_steps_allowed} above {t.kl_spike_min}", _mark(spikes_ok)],
                    ["grad norm max", s.get("grad_norm_max"), f"< {t.grad_norm_max:g}", _mark(None if s.get("grad_norm_max") is None else s["grad_norm_max"] < t.grad_norm_max)],
                    ["non-finite values", s.get("non_finite_values"), "0", _mark(None if s.get("non_finite_values") is None else s["non_finite_values"] == 0)],
                    ["entropy late / early", s.get("entropy_late_to_early"),
                     f"≥ {t.entropy_collapse_fraction:g} (means of the first and last {t.entropy_window} values)",
                     _mark(None if s.get("has_entropy_collapse") is None else not s["has_entropy_collapse"])],
                    ["entropy early → late", _arrow(s.get("entropy_early"), s.get("entropy_late")), "", ""],
                    ["clip ratio mean / max", _arrow(s.get("clip_ratio_mean"), s.get("clip_ratio_max"), " / "), "", ""],
                    ["response length early → late", _arrow(s.get("response_length_early"), s.get("response_length_late")), "", ""],
                ],
            )
        )
    for action in ans.get("actions") or []:
        _action_line(c, action, action["target"].replace("_", " "))
    c.print(
        _table(
            "Metrics",
            ["key", "count", "first", "last", "min", "max", "mean", "non-finite"],
            [[m["key"], m["count"], m["first"], m["last"], m["min"], m["max"], m["mean"], m["non_finite"]] for m in ans["metrics"]],
        )
    )
    c.print(_freshness_line(ans["freshness"]))


# --- pipeline health ---------------------------------------------------------------


def _no_data_note(c, count: int, what: str, w: dict) -> None:
    if not count:
        c.print(f"[yellow]No {what} in [{w['since']}, {w['until']}) — that means no data, not a clean bill.[/]")


def _exit_if_no_data(count: int) -> None:
    """The answer is printed either way; with nothing to answer with, the exit code says so (2)."""
    if not count:
        click.get_current_context().exit(EXIT_NO_DATA)


def _arrow(a: Any, b: Any, sep: str = " → ") -> str | None:
    """Two figures as `a → b` (None when neither is known)."""
    return None if a is None and b is None else f"{_fmt(a)}{sep}{_fmt(b)}"


def _unjoined_line(c, unjoined: dict | None) -> None:
    """Events whose run label joins no W&B run: how many and which labels (they count in no run's row)."""
    if unjoined and unjoined.get("note"):
        c.print(f"[yellow]Unjoined events:[/] {esc(unjoined['note'])}")


def _action_line(c, action: dict | None, what: str = "") -> None:
    """The playbook's action for a missed target, and the command to run next."""
    if action:
        label = f"{what}: " if what else ""
        c.print(f"[yellow]What to do[/] {esc(label)}{esc(action['action'])}  [dim]next:[/] [cyan]{esc(action['next'])}[/]")


@main.command("rollout-timing")
@window_options("6h")
@json_option
@answers
def rollout_timing(con, last, since, until, as_json) -> None:
    """Rollout throughput: duration p50/p95/p99/max in a window, per run and hour.

    Example:

        grpo rollout-timing --last 6h
    """
    from pipelines import queries
    from pipelines.settings import thresholds

    w = _window(last, since, until, "6h")
    ans = queries.rollout_timing(con, w, thresholds())
    if as_json:
        emit_json(ans)
        return _exit_if_no_data(ans["count"])
    c = _console()
    c.print(f"Rollouts in [{ans['since']}, {ans['until']}): {ans['count']:,}   p95 {_fmt(ans['p95_s'])} s vs target < {ans['target_p95_s']:g} s  {_outcome_mark(ans['outcome'])}")
    _action_line(c, ans.get("action"))
    _no_data_note(c, ans["count"], "rollouts", ans)
    _unjoined_line(c, ans.get("unjoined_events"))
    if ans["count"]:
        c.print(_table("", ["p50 s", "p95 s", "p99 s", "max s"], [[ans["p50_s"], ans["p95_s"], ans["p99_s"], ans["max_s"]]]))
        c.print(_table("By run", ["run", "rollouts", "p50 s", "p95 s", "max s", ""], [[r["run"], r["count"], r["p50_s"], r["p95_s"], r["max_s"], _outcome_mark(r["outcome"])] for r in ans["by_run"]]))
        slow = [h for h in ans["by_hour"] if h["outcome"] == "fail"]
        if slow:
            c.print(_table("Hours over target", ["hour", "rollouts", "p95 s"], [[h["hour"], h["count"], h["p95_s"]] for h in slow]))
    c.print(_freshness_line(ans["freshness"]))
    _exit_if_no_data(ans["count"])


@main.command()
@window_options("1h")
@json_option
@answers
def errors(con, last, since, until, as_json) -> None:
    """Any errors? Failed-rollout rate against the target, error events by component and type.

    Example:

        grpo errors --last 1h
    """
    from pipelines import queries
    from pipelines.settings import thresholds

    w = _window(last, since, until, "1h")
    ans = queries.errors(con, w, thresholds())
    if as_json:
        emit_json(ans)
        return _exit_if_no_data(ans["rollouts"] + ans["error_events"])
    c = _console()
    c.print(
        f"Error rate in [{ans['since']}, {ans['until']}): {_pct(ans['error_rate'])} "
        f"({ans['failed_rollouts']:,} of {ans['rollouts']:,} rollouts failed{_ci_text(ans.get('ci95'))}) vs target < {_pct(ans['target_error_rate'])}  {_outcome_mark(ans['outcome'])}; "
        f"{ans['error_events']:,} error events"
    )
    _action_line(c, ans.get("action"))
    _no_data_note(c, ans["rollouts"] + ans["error_events"], "rollouts or error events", ans)
    _unjoined_line(c, ans.get("unjoined_events"))
    if ans["by_run"]:
        c.print(_table("By run", ["run", "rollouts", "failed", "error rate", ""], [[r["run"], r["rollouts"], r["failed_rollouts"], _pct(r["error_rate"]), _outcome_mark(r["outcome"])] for r in ans["by_run"]]))
    if ans["by_type"]:
        c.print(_table("Error events by component and type", ["component", "type", "events", "last message"], [[r["component"], r["error_type"], r["events"], (r["last_message"] or "")[:80]] for r in ans["by_type"]]))
    c.print(_freshness_line(ans["freshness"]))
    _exit_if_no_data(ans["rollouts"] + ans["error_events"])


@main.command("extraction-stats")
@window_options("24h")
@json_option
@answers
def extraction_stats(con, last, since, until, as_json) -> None:
    """Order-extraction rate (orders extracted / expected) against the target, per run.

    Example:

        grpo extraction-stats --last 24h
    """
    from pipelines import queries
    from pipelines.settings import thresholds

    w = _window(last, since, until, "24h")
    ans = queries.extraction(con, w, thresholds())
    if as_json:
        emit_json(ans)
        return _exit_if_no_data(ans["events"])
    c = _console()
    c.print(
        f"Extraction rate in [{ans['since']}, {ans['until']}): {_pct(ans['extraction_rate'])} "
        f"({ans['orders_extracted']:,} of {ans['orders_expected']:,} orders{_ci_text(ans.get('ci95'))}) vs target > {_pct(ans['target'])}  {_outcome_mark(ans['outcome'])}"
    )
    _action_line(c, ans.get("action"))
    _no_data_note(c, ans["events"], "extraction events", ans)
    _unjoined_line(c, ans.get("unjoined_events"))
    if ans["by_run"]:
        c.print(_table("By run", ["run", "expected", "extracted", "rate", ""], [[r["run"], r["orders_expected"], r["orders_extracted"], _pct(r["extraction_rate"]), _outcome_mark(r["outcome"])] for r in ans["by_run"]]))
    c.print(_freshness_line(ans["freshness"]))
    _exit_if_no_data(ans["events"])


@main.command()
@window_options("6h")
@json_option
@answers
def inference(con, last, since, until, as_json) -> None:
    """Inference engine performance: requests, latency p50/p95/p99, tokens/s, queue time, batch size per engine.

    Example:

        grpo inference --last 6h
    """
    from pipelines import queries

    w = _window(last, since, until, "6h")
    ans = queries.inference(con, w)
    if as_json:
        emit_json(ans)
        return _exit_if_no_data(ans["requests"])
    c = _console()
    c.print(f"Inference requests in [{ans['since']}, {ans['until']}): {ans['requests']:,}   latency p95 {_fmt(ans.get('latency_p95_s'))} s")
    _no_data_note(c, ans["requests"], "inference requests", ans)
    if ans["requests"]:
        cols = ["engine", "host", "requests", "latency p50 s", "p95 s", "p99 s", "tokens/s", "queue mean s", "queue p95 s", "batch mean"]

        def row(r: dict, first: str, second: str) -> list:
            return [first, second, r["requests"], r["latency_p50_s"], r["latency_p95_s"], r["latency_p99_s"],
                    r["tokens_per_s_mean"], r["queue_s_mean"], r["queue_s_p95"], r["batch_size_mean"]]

        c.print(_table("By engine", cols, [row(r, r["engine"], r["host"]) for r in ans["by_engine"]]))
        c.print(_table("By hour", ["hour", "engine", *cols[2:]],
                       [row(r, r["hour"], r["engine"]) for r in ans["by_hour"]]))
    c.print(_freshness_line(ans["freshness"]))
    _exit_if_no_data(ans["requests"])


@main.command()
@window_options("1h")
@json_option
@answers
def health(con, last, since, until, as_json) -> None:
    """System health: every component seen lately, its last heartbeat, and whether it went stale or down.

    A component silent since before the window is listed too (stale or down), never left out.

    Example:

        grpo health --last 1h
    """
    from pipelines import queries
    from pipelines.settings import thresholds

    w = _window(last, since, until, "1h")
    ans = queries.health(con, w, thresholds())
    if as_json:
        emit_json(ans)
        return _exit_if_no_data(len(ans["components"]))
    c = _console()
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
        c.print(f"[yellow]No heartbeats in the {lookback} before {ans['until']} — that means no data, not a clean bill.[/]")
    _action_line(c, ans.get("action"))
    style = {"ok": "green", "stale": "red", "down": "red", "degraded": "yellow"}
    if comps:
        title = f"Components (stale after {ans['stale_after_s']:g} s of silence, down after {ans['down_after_s']:g} s)"
        c.print(_table(title, ["component", "host", "last seen", "silent s", "heartbeats in window", "status"],
                       [[x["component"], x["host"], x["last_seen"], x["silent_s"], x["heartbeats"], Styled(f"[{style.get(x['status'], 'yellow')}]{esc(x['status'])}[/]")] for x in comps]))
    c.print(_freshness_line(ans["freshness"]))
    _exit_if_no_data(len(comps))


@main.command("check")
@click.option("--all", "show_all", is_flag=True, help="List passing subjects too.")
@json_option
@click.pass_context
def check_cmd(ctx, show_all: bool, as_json: bool) -> None:
    """Do the targets hold? Exit code 1 when an error-severity target fails.

    Example:

        grpo check || echo "a target failed"
    """
    from pipelines import queries

    @answers
    def run(con):
        return queries.check(con)

    ans = run()
    failing_error = [x for x in ans["checks"] if x["outcome"] == "fail" and x["severity"] == "error"]
    if as_json:
        emit_json(ans)
    else:
        c = _console()
        failed = [x for x in ans["checks"] if x["outcome"] == "fail"]
        inconclusive = [x for x in ans["checks"] if x["outcome"] == "inconclusive"]
        c.print(
            f"{sum(1 for x in ans['checks'] if x['outcome'] == 'pass')} passed, [red]{len(failing_error)} failed (error)[/], "
            f"[yellow]{len(failed) - len(failing_error)} failed (warning)[/], "
            f"[dim]{len(inconclusive)} inconclusive (too few observations, or an interval straddling the target)[/]"
        )
        shown = ans["checks"] if show_all else failed
        if shown:
            c.print(_table("", ["check", "subject", "value", "target", "severity", ""],
                           [[x["name"], x["subject"], x["value"], _target_text(x), x["severity"], _outcome_mark(x["outcome"])] for x in shown]))
        seen: set[str] = set()
        for x in failed:  # one line per check that missed, in the order shown
            if x.get("action") and x["name"] not in seen:
                seen.add(x["name"])
                _action_line(c, x["action"], x["name"])
        c.print(_freshness_line(ans["freshness"]))
    ctx.exit(EXIT_FAILED_CHECK if failing_error else EXIT_OK)


def _target_text(x: dict[str, Any]) -> str:
    if x["threshold"] is None:
        return x.get("expected") or x["comparison"] or ""
    return f"{x['comparison']} {_fmt(x['threshold'])}"


# --- SQL and tracker -----------------------------------------------------------------


@main.command("sql")
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
    from pipelines import queries

    if list_tables:
        names = ["table_name", "description", "row_count"]
        data = [tuple(r.values()) for r in queries.tables(con)]
    else:
        if not query:
            raise GrpoError("give a query, or --tables to list what can be queried")
        try:
            names, data = queries.sql(con, query)
        except queries.ReadOnlyViolation as exc:
            raise GrpoError(str(exc)) from None
        except click.ClickException:
            raise
        except Exception as exc:  # duckdb errors (and bad parameters): show the engine's one line
            raise GrpoError(str(exc).splitlines()[0]) from None
    if as_json:
        emit_json(queries.clean([dict(zip(names, r)) for r in data]))
    elif as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(names)
        w.writerows(data)
    else:
        _print_records(_console(), names, [list(r) for r in data])


def _print_records(c, names: list[str], data: list[list[Any]]) -> None:
    """A table when it fits the terminal; otherwise one record at a time, a line per column (as psql's \\x)."""
    cells = [[_fmt(v) for v in row] for row in data]
    natural = sum(max([len(n), *(len(str(row[i])) for row in cells)]) + 3 for i, n in enumerate(names))
    if natural <= c.width or not data:
        c.print(_table("", names, data))
        return
    c.print(f"[dim]{len(names)} columns do not fit in {c.width}: one record at a time[/]")
    label = max(len(n) for n in names)
    for i, row in enumerate(data, 1):
        c.print(f"[bold]-[ record {i} ]" + "-" * max(label - 8, 4) + "[/]")
        for name, value in zip(names, cells[i - 1]):
            c.print(f"{esc(name.ljust(label))} | {esc(str(value))}", overflow="fold")


@main.command()
@click.option(
    "--path", "--out", "path", type=click.Path(dir_okay=False), default="docs/experiment-tracker.md", show_default=True,
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
    from pipelines import queries
    from pipelines.tracker.marked_page import TrackerFileError, update_tracker
    from pipelines.tracker.mart_extras import tracker_extras

    runs = queries.retrospective(con)
    fresh = queries.freshness(con)
    try:
        changed = update_tracker(Path(path), runs, fresh, tracker_extras(con))
    except TrackerFileError as exc:
        raise GrpoError(str(exc)) from None
    if as_json:
        emit_json({"path": path, "out": path, "changed": changed, "runs": runs, "freshness": fresh})
    else:
        _console().print(f"updated {esc(path)}: {len(runs)} runs" if changed else f"{esc(path)} already up to date ({len(runs)} runs)")


if __name__ == "__main__":  # pragma: no cover
    main()
