"""How answers look in a terminal: numbers, percentages, intervals, pass/fail marks, tables and shared lines."""

from __future__ import annotations

from typing import Any

import click

from pipelines.cli.options import EXIT_NO_DATA


class Styled(str):
    """Text of ours carrying rich markup; every other string is escaped before printing."""


def esc(value: Any) -> str:
    """User data (run names, metric keys, messages) printed as plain text, never as markup."""
    from rich.markup import escape

    return escape(str(value))


def fmt(v: Any, digits: int = 3) -> str:
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


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def ci_text(ci: list | None) -> str:
    return f", 95 % CI {pct(ci[0])} to {pct(ci[1])}" if ci else ""


def outcome_mark(outcome: str | None) -> Styled:
    if outcome == "inconclusive":
        return Styled("[yellow]INCONCLUSIVE[/]")
    return mark({"pass": True, "fail": False}.get(outcome or ""))


def mark(passed: bool | None) -> Styled:
    if passed is None:
        return Styled("[yellow]no data[/]")
    return Styled("[green]PASS[/]" if passed else "[red]FAIL[/]")


def verdict(v: str | None) -> Styled:
    v = v or "insufficient_data"
    return Styled(f"[{VERDICT_STYLE.get(v, '')}]{esc(v)}[/]" if VERDICT_STYLE.get(v) else esc(v))


def table(title: str, columns: list[str], data: list[list[Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in data:
        t.add_row(*[x if isinstance(x, Styled) else esc(fmt(x)) for x in row])
    return t


def freshness_line(fresh: dict[str, Any]) -> str:
    return (
        f"[dim]data: latest event {fresh.get('latest_event_at') or 'none'}, "
        f"latest step {fresh.get('latest_step') if fresh.get('latest_step') is not None else 'none'}, "
        f"snapshot published {fresh.get('published_at') or 'never'}[/]"
    )


VERDICT_STYLE = {"learning": "green", "not_learning": "red", "unstable": "yellow", "insufficient_data": "dim"}


def no_data_note(c, count: int, what: str, w: dict) -> None:
    if not count:
        c.print(f"[yellow]No {what} in [{w['since']}, {w['until']}) — that means no data, not a clean bill.[/]")


def exit_if_no_data(count: int) -> None:
    """The answer is printed either way; with nothing to answer with, the exit code says so (2)."""
    if not count:
        click.get_current_context().exit(EXIT_NO_DATA)


def arrow(a: Any, b: Any, sep: str = " → ") -> str | None:
    """Two figures as `a → b` (None when neither is known)."""
    return None if a is None and b is None else f"{fmt(a)}{sep}{fmt(b)}"


def unjoined_line(c, unjoined: dict | None) -> None:
    """Events whose run label joins no W&B run: how many and which labels (they count in no run's row)."""
    if unjoined and unjoined.get("note"):
        c.print(f"[yellow]Unjoined events:[/] {esc(unjoined['note'])}")


def action_line(c, action: dict | None, what: str = "") -> None:
    """The playbook's action for a missed target, and the command to run next."""
    if action:
        label = f"{what}: " if what else ""
        c.print(
            f"[yellow]What to do[/] {esc(label)}{esc(action['action'])}  [dim]next:[/] [cyan]{esc(action['next'])}[/]"
        )


def target_text(x: dict[str, Any]) -> str:
    if x["threshold"] is None:
        return x.get("expected") or x["comparison"] or ""
    return f"{x['comparison']} {fmt(x['threshold'])}"


def print_records(c, names: list[str], data: list[list[Any]]) -> None:
    """A table when it fits the terminal; otherwise one record at a time, a line per column (as psql's \\x)."""
    cells = [[fmt(v) for v in row] for row in data]
    natural = sum(max([len(n), *(len(str(row[i])) for row in cells)]) + 3 for i, n in enumerate(names))
    if natural <= c.width or not data:
        c.print(table("", names, data))
        return
    c.print(f"[dim]{len(names)} columns do not fit in {c.width}: one record at a time[/]")
    label = max(len(n) for n in names)
    for i, record in enumerate(cells, 1):
        c.print(f"[bold]-[ record {i} ]" + "-" * max(label - 8, 4) + "[/]")
        for name, value in zip(names, record):
            c.print(f"{esc(name.ljust(label))} | {esc(str(value))}", overflow="fold")


def elo_text(x: float | None, signed: bool = False) -> str:
    """An Elo figure from the games, whole points; n/a where no finite rating exists (a player
    who never lost, or never won, against the anchor's group)."""
    return "n/a" if x is None else f"{x:+.0f}" if signed else f"{x:.0f}"
