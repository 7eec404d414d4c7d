"""Is the model learning? `grpo elo`, `grpo metrics` and `grpo sweep`."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.cli.options import answers, emit_json, json_option, new_console
from pipelines.cli.render import action_line, arrow, elo_text, esc, fmt, freshness_line, mark, table, verdict


@click.command()
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
    from pipelines.answers import learning

    ans = learning.elo(con, run)
    if plot:
        from pipelines.answers.plots import plot_elo

        plot_elo(learning.elo_series(con, ans["run_id"]), ans, Path(plot))
    if as_json:
        emit_json(ans)
        return
    c = new_console()
    v = ans["verdict"]
    c.print(f"[bold]{esc(ans['run'])}[/] ({esc(ans['run_id'])}, sweep {esc(ans['sweep'])}): [bold]{verdict(v)}[/]")
    if ans.get("reason"):
        c.print(f"  {esc(ans['reason'])}")
    st = ans["stability"]
    c.print(f"  stability: [bold]{esc(st['status'])}[/]" + (f" ({esc(st['evidence'])})" if st.get("evidence") else ""))
    c.print(
        table(
            "Fixed references (their Elo falling = the policy is learning; 95 % CI allows for autocorrelated rating noise)",
            ["player", "points", "first", "last", "delta", "slope/100 steps", "95 % CI", "noise φ", "trend"],
            [
                [
                    r["player"],
                    r["n_points"],
                    r["first"],
                    r["last"],
                    r["delta"],
                    r["slope_per_100_steps"],
                    f"[{fmt(r['ci95'][0])}, {fmt(r['ci95'][1])}]",
                    r.get("noise_phi"),
                    r["trend"],
                ]
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
        table(
            "Newest checkpoint − base_model",
            ["first", "last", "delta", "final (mean of last evals)", "slope/100 steps", "95 % CI", "trend"],
            [
                [
                    g["first"],
                    g["last"],
                    g["delta"],
                    g["final"],
                    g["slope_per_100_steps"],
                    f"[{fmt(g['ci95'][0])}, {fmt(g['ci95'][1])}]",
                    g["trend"],
                ]
            ],
        )
    )
    if ans.get("game_ratings"):
        print_game_ratings(c, ans["game_ratings"])
    if ans["superseded_checkpoints"]:
        c.print(
            table(
                "Superseded checkpoints (declining after a newer one exists is a good sign)",
                ["checkpoint", "superseded at step", "Elo change since"],
                [
                    [
                        s["player"],
                        s["superseded_at_step"],
                        "no later ratings"
                        if s["elo_change_after_superseded"] is None
                        else s["elo_change_after_superseded"],
                    ]
                    for s in ans["superseded_checkpoints"]
                ],
            )
        )
    cells = ans.get("cells") or []
    if cells and any(c["n_seeds"] > 1 for c in cells):
        c.print(
            table(
                "Configurations (runs that differ only in a seed), by the interquartile mean of their final gaps",
                [
                    "rank",
                    "runs",
                    "seeds",
                    "IQM final gap",
                    "95 % CI",
                    "learning",
                    "unstable",
                    "cannot be separated from",
                ],
                [
                    [
                        x["rank"],
                        ", ".join(x["runs"]),
                        x["n_seeds"],
                        x["gap_final_iqm"],
                        f"[{fmt(x['ci95'][0])}, {fmt(x['ci95'][1])}]",
                        x["n_learning"],
                        x["n_unstable"],
                        ", ".join(x["tied_with"]),
                    ]
                    for x in cells
                ],
            )
        )
    elif cells:
        c.print(
            "[dim]Every configuration has one seed: the ranking is of single runs (their intervals do not cover seed-to-seed variation).[/]"
        )
    if plot:
        c.print(f"plot written to {esc(plot)}")
    c.print(freshness_line(ans["freshness"]))


def print_game_ratings(c, g: dict) -> None:
    """The game-based ratings of `grpo elo` (issue #16), next to the last logged Elo."""
    anchor = g["anchor"]
    c.print(
        table(
            f"Ratings from {g['n_games']} league games (Bradley–Terry fit; 95 % CI from {g['bootstrap_rounds']} "
            f"bootstrap rounds over games; {anchor} fixed at its anchor rating) next to the last logged Elo",
            [
                "player",
                "kind",
                "games",
                "game rating",
                "95 % CI",
                f"vs {anchor}",
                "95 % CI",
                f"P(> {anchor})",
                "logged Elo",
            ],
            [
                [
                    p["player"],
                    p["kind"],
                    p["n_games"],
                    elo_text(p["rating"]),
                    f"[{elo_text(p['ci95'][0])}, {elo_text(p['ci95'][1])}]",
                    elo_text(p["vs_anchor"], True),
                    f"[{elo_text(p['vs_anchor_ci95'][0], True)}, {elo_text(p['vs_anchor_ci95'][1], True)}]",
                    p["superiority_vs_anchor"],
                    p["logged_elo"],
                ]
                for p in g["players"]
            ],
        )
    )
    n, b, tr = g["newest_checkpoint"], g["best_checkpoint"], g["checkpoint_trend"]
    if n.get("player"):
        c.print(
            f"  games: newest checkpoint {esc(n['player'])} − {esc(anchor)} = {elo_text(n['vs_anchor'], True)} Elo "
            f"[{elo_text(n['ci95'][0], True)}, {elo_text(n['ci95'][1], True)}], P(stronger) {fmt(n['superiority'])}"
        )
        c.print(
            f"  games: checkpoint ratings over step: {esc(tr['trend'])}"
            + (
                f" ({fmt(tr['slope_per_100_steps'])} Elo per 100 steps [{fmt(tr['ci95'][0])}, {fmt(tr['ci95'][1])}])"
                if tr.get("slope_per_100_steps") is not None
                else ""
            )
        )
        if b.get("games_needed") is not None:
            more = b["more_games_needed"]
            c.print(
                f"  games: best checkpoint {esc(b['player'])} vs {esc(anchor)} to ±{fmt(b['target_half_width'])} Elo: "
                + ("already there" if not more else f"about {more} more games ({b['games_needed']} in all, same mix)")
            )
    if g.get("harness_stable") is False:
        c.print(f"  [yellow]games: the harness moved — {esc(g['harness_evidence'])}[/]")
    if g.get("intransitive_cycles"):
        c.print(f"  [yellow]games: intransitive — {esc(g['intransitive_cycles'])}[/]")
    c.print(f"  verdict evidence: {'the games' if g.get('evidence') == 'games' else 'the logged Elo'}")


@click.command()
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
    from pipelines.answers import sweeps

    ans = sweeps.sweep(con, sweep_text)
    if plot:
        from pipelines.answers.plots import plot_sweep

        plot_sweep(sweeps.sweep_gap_series(con, ans["sweep"]), ans, Path(plot))
    if as_json:
        emit_json(ans)
        return
    c = new_console()
    runs = ans["runs"]
    if runs:
        top = runs[0]
        tie = (
            " (a statistical tie with " + ", ".join(top["tied_with"]) + ")"
            if top["is_tie"] and top["tied_with"]
            else ""
        )
        c.print(f"Sweep [bold]{esc(ans['sweep'])}[/]: best run [bold]{esc(top['run'])}[/]{esc(tie)}")
        if ans.get("best_note"):
            c.print(f"  [yellow]Note:[/] {esc(ans['best_note'])}")
    keys = ans["varying_config_keys"]
    c.print(
        table(
            "Ranking by final checkpoint gap (newest checkpoint Elo − base_model Elo)"
            if ans.get("ranked_by") != "games"
            else "Ranking by the league games' gap (newest checkpoint − base_model from a Bradley–Terry fit over the games, 95 % bootstrap CI); logged final gap alongside",
            ["rank", "run", "verdict", "final gap", "± se", "last gap", "base_model Δ", "tie", *keys]
            + (["game gap", "95 % CI"] if any(r.get("game_gap") is not None for r in runs) else []),
            [
                [
                    r["rank"],
                    r["run"],
                    verdict(r["verdict"]),
                    r["gap_final"],
                    r["gap_final_se"],
                    r["gap_last"],
                    r["base_model_delta"],
                    "tie" if r["is_tie"] else "",
                    *[fmt(r["config"].get(k)) for k in keys],
                ]
                + (
                    [
                        elo_text(r.get("game_gap"), True),
                        f"[{elo_text(r['game_gap_ci95'][0], True)}, {elo_text(r['game_gap_ci95'][1], True)}]",
                    ]
                    if any(x.get("game_gap") is not None for x in runs)
                    else []
                )
                for r in runs
            ],
        )
    )
    if plot:
        c.print(f"plot written to {esc(plot)}")
    c.print(freshness_line(ans["freshness"]))


@click.command()
@click.option("-r", "--run", "run_text", required=True, help="Run name or id.")
@click.option(
    "--all-metrics", is_flag=True, help="Every logged metric, not only KL, grad norm, reward, loss and references."
)
@json_option
@answers
def metrics(con, run_text: str, all_metrics: bool, as_json: bool) -> None:
    """Is the model learning? Training metrics of a run with stability against the targets.

    Example:

        grpo metrics -r lr-sweep-3 --all-metrics
    """
    from pipelines.answers import learning
    from pipelines.answers.judging import judge_value, passed
    from pipelines.settings import dbt_vars, thresholds

    ans = learning.metrics(con, run_text, all_metrics, dbt_vars()["metric_aliases"])
    if as_json:
        emit_json(ans)
        return
    t = thresholds()
    c = new_console()
    v = ans["verdict"] or "insufficient_data"
    c.print(f"[bold]{esc(ans['run'])}[/] ({esc(ans['run_id'])}): [bold]{verdict(v)}[/]")
    if ans.get("reason"):
        c.print(f"  {esc(ans['reason'])}")
    s = ans["stability"]
    if s:

        def holds(flag: str, breach: bool = True) -> bool | None:
            """The mart's judgment (fct_training_stability): a `has_*` flag breaches its target when true."""
            value = s.get(flag)
            return None if value is None else (not value if breach else bool(value))

        c.print(
            table(
                "Stability against the targets",
                ["measure", "value", "target", ""],
                [
                    ["KL p95", s.get("kl_p95"), f"< {t.kl_stable_max}", mark(holds("is_kl_stable", breach=False))],
                    [
                        "KL spike steps",
                        s.get("kl_spike_steps"),
                        f"≤ {t.kl_spike_steps_allowed} above {t.kl_spike_min}",
                        mark(holds("has_kl_spikes")),
                    ],
                    [
                        "grad norm max",
                        s.get("grad_norm_max"),
                        f"< {t.grad_norm_max:g}",
                        mark(holds("has_grad_norm_over_target")),
                    ],
                    [
                        "non-finite values",
                        s.get("non_finite_values"),
                        f"{t.non_finite_values_allowed}",  # at most this many
                        mark(passed(judge_value(s.get("non_finite_values"), t.non_finite_values_allowed, "<="))),
                    ],
                    [
                        "entropy late / early",
                        s.get("entropy_late_to_early"),
                        f"≥ {t.entropy_collapse_fraction:g} (means of the first and last {t.entropy_window} values)",
                        mark(holds("has_entropy_collapse")),
                    ],
                    ["entropy early → late", arrow(s.get("entropy_early"), s.get("entropy_late")), "", ""],
                    ["clip ratio mean / max", arrow(s.get("clip_ratio_mean"), s.get("clip_ratio_max"), " / "), "", ""],
                    [
                        "response length early → late",
                        arrow(s.get("response_length_early"), s.get("response_length_late")),
                        "",
                        "",
                    ],
                ],
            )
        )
    for action in ans.get("actions") or []:
        action_line(c, action, action["target"].replace("_", " "))
    c.print(
        table(
            "Metrics",
            ["key", "count", "first", "last", "min", "max", "mean", "non-finite"],
            [
                [m["key"], m["count"], m["first"], m["last"], m["min"], m["max"], m["mean"], m["non_finite"]]
                for m in ans["metrics"]
            ],
        )
    )
    c.print(freshness_line(ans["freshness"]))
