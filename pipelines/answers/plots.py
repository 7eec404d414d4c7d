"""PNG plots for `grpo elo --plot` and `grpo sweep --plot` (matplotlib, headless)."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import Any


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_elo(series: dict[str, Any], answer: dict[str, Any], out: Path) -> Path:
    """Fixed references and checkpoints over steps (top), newest checkpoint − base_model gap (bottom)."""
    plt = _plt()
    fig, (ax, gx) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for (player, kind), pts in groupby(series["trajectory"], key=lambda r: (r["player"], r["player_kind"])):
        pts = list(pts)
        xs, ys = [p["step"] for p in pts], [p["elo"] for p in pts]
        if kind == "fixed_reference":
            ax.plot(xs, ys, lw=2.5, marker="o", ms=3, label=f"{player} (fixed reference)")
        elif kind == "checkpoint":
            ax.plot(xs, ys, lw=1, alpha=0.6, ls="--", label=player)
        else:
            ax.plot(xs, ys, lw=1, alpha=0.4, label=player)
    ax.set_ylabel("Elo")
    ax.set_title(f"{answer['run']} ({answer['run_id']}): {answer['verdict']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    gaps = series["gaps"]
    if gaps:
        gx.plot(
            [g["step"] for g in gaps],
            [g["gap"] for g in gaps],
            color="tab:green",
            marker="o",
            ms=3,
            label="newest checkpoint − base_model",
        )
    gx.axhline(0, color="grey", lw=1, ls=":", label="no lead over base_model")
    gx.set_xlabel("training step")
    gx.set_ylabel("Elo gap")
    gx.grid(alpha=0.3)
    gx.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_sweep(series: list[dict[str, Any]], answer: dict[str, Any], out: Path) -> Path:
    """The checkpoint gap of every run in the sweep over steps, legend ordered by rank."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 5.5))
    rank = {r["run_id"]: r for r in answer["runs"]}
    by_run = {k: list(v) for k, v in groupby(series, key=lambda r: r["run_id"])}
    for run_id in sorted(by_run, key=lambda k: rank.get(k, {}).get("rank") or 1e9):
        pts = by_run[run_id]
        r = rank.get(run_id, {})
        label = f"#{r.get('rank')} {pts[0]['run_name']} ({r.get('verdict')}){' tie' if r.get('is_tie') else ''}"
        ax.plot([p["step"] for p in pts], [p["gap"] for p in pts], marker="o", ms=3, label=label)
    ax.axhline(0, color="grey", lw=1, ls=":", label="no lead over base_model")
    ax.set_xlabel("training step")
    ax.set_ylabel("newest checkpoint Elo − base_model Elo")
    ax.set_title(f"Sweep {answer['sweep']}: checkpoint gap by run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def latest_runs_gap_png(series: list[dict[str, Any]], title: str) -> bytes:
    """PNG bytes: the checkpoint gap over steps of several runs (Dagster metadata preview)."""
    import io

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    for run_name, pts in groupby(series, key=lambda r: r["run_name"]):
        pts = list(pts)
        ax.plot([p["step"] for p in pts], [p["gap"] for p in pts], marker="o", ms=2, label=run_name)
    ax.axhline(0, color="grey", lw=1, ls=":")
    ax.set_xlabel("training step")
    ax.set_ylabel("newest checkpoint − base_model Elo")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
