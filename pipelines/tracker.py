"""The experiment tracker: a markdown page whose marked section is regenerated from the marts.

People keep notes in the tracker file. `update_tracker` rewrites only the text
between two marker comments and keeps every other byte of the file:

    <!-- grpo tracker: begin (generated, do not edit between the markers) -->
    ... generated: one table per sweep, then a retrospective across sweeps ...
    <!-- grpo tracker: end -->

A file without markers gets the section appended after a blank line; a missing
file is created with a short title plus the section. The section states the
snapshot's publish time, latest event and latest step, never the time it was
generated, so re-running with no new data produces the same bytes, and the
file is then not rewritten at all. Writes are atomic (a temporary file in the
same folder, renamed over the old one). Markers that do not pair up (a begin
without an end, two begins, an end before any begin) raise `TrackerFileError`
naming the file and line, and nothing is written.

The extra figures the section needs beyond `learning.retrospective` come from
`tracker_extras(con)`: ranks, standard errors and ties (fct_sweep_rankings),
stability flags (fct_training_stability), the config keys that vary within a
sweep (fct_sweep_config_variation) and every run's flattened config
(dim_run_config joined to dim_runs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import math
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEGIN_MARKER = "<!-- grpo tracker: begin (generated, do not edit between the markers) -->"
END_MARKER = "<!-- grpo tracker: end -->"
# A marker line is recognised by these prefixes, so an edited explanation inside the comment still pairs up.
BEGIN_PREFIX = "<!-- grpo tracker: begin"
END_PREFIX = "<!-- grpo tracker: end"

TITLE = "# Experiment tracker"
NEW_FILE_INTRO = (
    "Notes written outside the marked section are kept: `grpo tracker` regenerates only the text "
    "between the two `grpo tracker` marker comments."
)

# The gap's own 95 % interval, gap_final ± 1.96 · gap_final_se. Ties are fct_sweep_rankings' (all pairs, Bonferroni).
Z95 = 1.96
NOT_SET = "(not set)"
MISSING = "–"
MAX_VALUES_SHOWN = 6


class TrackerFileError(ValueError):
    """The tracker file cannot be updated (markers that do not pair up, unreadable text, I/O); nothing was written."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


# --- extra figures from the marts ------------------------------------------------------


def tracker_extras(con: Any) -> dict[str, Any]:
    """What the tracker shows beyond `learning.retrospective(con)`, as JSON-safe rows.

    Keys: `rankings` (fct_sweep_rankings: run_id, sweep_key, rank, gap_final,
    gap_final_se, is_tie, tied_with, and when built with games ranked_by, game_gap
    and its interval), `stability` (fct_training_stability:
    run_id, kl_spike_steps, has_kl_spikes, grad_norm_over_steps,
    has_grad_norm_over_target, grad_norm_max), `varying_config_keys`
    (fct_sweep_config_variation: sweep_key, config_key) and `run_config`
    (dim_run_config joined to dim_runs: run_id, sweep_key, config_key, value_text)
    and `unjoined_event_labels` (fct_event_run_labels: run labels events carry that join
    no W&B run, with their event counts). No query takes user input.
    """
    from pipelines.answers.sql import clean, rows

    return clean(
        {
            "rankings": rows(
                con,
                # every column: a snapshot published before the game columns existed still reads
                "select * from fct_sweep_rankings order by sweep_key, rank",
            ),
            "stability": rows(
                con,
                "select run_id, kl_spike_steps, has_kl_spikes, grad_norm_over_steps, "
                "has_grad_norm_over_target, grad_norm_max from fct_training_stability order by run_id",
            ),
            "varying_config_keys": rows(
                con, "select sweep_key, config_key from fct_sweep_config_variation order by sweep_key, config_key"
            ),
            "run_config": rows(
                con,
                "select c.run_id, r.sweep_key, c.config_key, c.value_text "
                "from dim_run_config c inner join dim_runs r on c.run_id = r.run_id "
                "order by r.sweep_key, c.run_id, c.config_key",
            ),
            "unjoined_event_labels": rows(
                con,
                "select run_label, n_events, n_rollouts, n_extractions, n_error_events from fct_event_run_labels "
                "where not is_joined order by n_events desc, run_label",
            )
            if _has_table(con, "fct_event_run_labels")
            else [],
        }
    )


def _has_table(con: Any, name: str) -> bool:
    return bool(con.execute("select count(*) from duckdb_tables() where table_name = ?", [name]).fetchone()[0])


# --- formatting ------------------------------------------------------------------------


def _text(v: Any) -> str:
    """A table cell: pipes escaped, one line."""
    if v is None:
        return MISSING
    return str(v).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _finite(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fixed(v: Any, digits: int = 1) -> str:
    x = _finite(v)
    if x is None:
        return MISSING
    out = f"{x:,.{digits}f}"
    return out[1:] if out.startswith("-") and float(out.replace(",", "")) == 0 else out  # no "-0.0"


def _percent(v: Any) -> str:
    x = _finite(v)
    return MISSING if x is None else _fixed(100 * x) + " %"


def _game_gap_cell(rk: dict[str, Any]) -> str:
    """`+212 [+180, +245]`: the newest checkpoint's lead over the anchor from the games, with its
    95 % bootstrap interval; MISSING without games."""
    g, lo, hi = _finite(rk.get("game_gap")), _finite(rk.get("game_gap_ci95_lo")), _finite(rk.get("game_gap_ci95_hi"))
    if g is None:
        return MISSING
    return f"{g:+.0f}" + (f" [{lo:+.0f}, {hi:+.0f}]" if lo is not None and hi is not None else "")


def _gap_cell(gap: Any, se: Any) -> str:
    """`205.0 [189.4, 220.6]`: the final gap and its 95 % interval; the gap alone without a standard error."""
    g, s = _finite(gap), _finite(se)
    if g is None:
        return MISSING
    if s is None:
        return _fixed(g)
    return f"{_fixed(g)} [{_fixed(g - Z95 * s)}, {_fixed(g + Z95 * s)}]"


def _count(v: Any) -> str:
    return MISSING if v is None else str(int(v))


def _stability_cell(stab: dict[str, Any]) -> str:
    """`10 ⚠ / 4 ⚠`: KL spike steps / grad-norm steps at or over target, ⚠ where the mart flags the run."""
    kl = _count(stab.get("kl_spike_steps")) + (" ⚠" if stab.get("has_kl_spikes") else "")
    gn = _count(stab.get("grad_norm_over_steps")) + (" ⚠" if stab.get("has_grad_norm_over_target") else "")
    return f"{kl} / {gn}"


def _value_sort_key(text: str) -> tuple:
    x = _finite(text) if text != NOT_SET else None
    return (0, x, text) if x is not None else (1, 0.0, text)


def _values_text(values: set[str]) -> str:
    ordered = sorted(values, key=_value_sort_key)
    shown = ordered[:MAX_VALUES_SHOWN]
    more = len(ordered) - len(shown)
    return ", ".join(shown) + (f", … (+{more})" if more else "")


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(_text(h) for h in header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in body
    ]


# --- fallback when only the retrospective rows are given ------------------------------


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            if prefix == "" and k == "_wandb":
                continue
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif prefix:
        out[prefix] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _extras_from_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Config rows flattened from config_json, for callers that pass no `tracker_extras` (no ranks, no SEs)."""
    run_config = []
    for r in runs:
        try:
            cfg = json.loads(r.get("config_json") or "{}")
        except ValueError:
            continue
        flat: dict[str, str] = {}
        if isinstance(cfg, dict):
            _flatten("", cfg, flat)
        run_config += [
            {"run_id": r.get("run_id"), "sweep_key": r.get("sweep_key"), "config_key": k, "value_text": v}
            for k, v in flat.items()
        ]
    sizes: dict[Any, int] = {}
    for r in runs:
        sizes[r.get("sweep_key")] = sizes.get(r.get("sweep_key"), 0) + 1
    seen: dict[tuple, list[str]] = {}
    for c in run_config:
        seen.setdefault((c["sweep_key"], c["config_key"]), []).append(c["value_text"])
    varying = [
        {"sweep_key": s, "config_key": k}
        for (s, k), vals in sorted(seen.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
        if len(set(vals)) > 1 or len(vals) < sizes.get(s, 0)
    ]
    return {"rankings": [], "stability": [], "varying_config_keys": varying, "run_config": run_config}


# --- the generated section -------------------------------------------------------------


def _sweep_order(runs: list[dict[str, Any]]) -> list[Any]:
    """Sweeps by their first run's start (oldest first), then by name; sweeps without start times last."""
    first: dict[Any, tuple | None] = {}
    for r in runs:
        s, t = r.get("sweep_key"), _instant(r.get("started_at"))
        if s not in first or (t is not None and (first[s] is None or t < first[s])):
            first[s] = t
    return sorted(first, key=lambda s: (first[s] is None, first[s] or (), str(s)))


def _instant(v: Any) -> tuple | None:
    """A start time as a sortable key: (UTC timestamp, text), or (inf, text) when it does not parse."""
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        ts = v if v.tzinfo else v.replace(tzinfo=dt.UTC)
        return (ts.timestamp(), str(v))
    text = str(v)
    try:
        ts = dt.datetime.fromisoformat(text)
    except ValueError:
        return (math.inf, text)
    ts = ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
    return (ts.timestamp(), text)


def _sweep_values(
    sweeps: list[Any], runs: list[dict[str, Any]], config: dict[str, dict[str, str]]
) -> dict[str, dict[Any, set[str]]]:
    """config key -> sweep -> the set of values its runs take, NOT_SET where a run of the sweep lacks the key."""
    run_ids = {s: [r.get("run_id") for r in runs if r.get("sweep_key") == s] for s in sweeps}
    keys = sorted({k for cfg in config.values() for k in cfg})
    return {
        k: {s: {config.get(rid, {}).get(k, NOT_SET) for rid in run_ids[s]} for s in sweeps}
        for k in keys
    }


def render_section(
    runs: list[dict[str, Any]], freshness: dict[str, Any], extras: dict[str, Any] | None = None
) -> str:
    """The generated text between the markers (markers excluded), lines joined by "\\n", no trailing newline.

    `runs` are `learning.retrospective(con)` rows, `freshness` is `lookups.freshness(con)`,
    `extras` is `tracker_extras(con)` (without it, config is read from config_json and
    ranks, standard errors and stability flags are not shown). The text depends only
    on these, never on the clock.
    """
    if extras is None:
        extras = _extras_from_runs(runs)
    rankings = {r["run_id"]: r for r in extras.get("rankings") or []}
    stability = {r["run_id"]: r for r in extras.get("stability") or []}
    varying: dict[Any, list[str]] = {}
    for v in extras.get("varying_config_keys") or []:
        varying.setdefault(v["sweep_key"], []).append(v["config_key"])
    config: dict[str, dict[str, str]] = {}
    for c in extras.get("run_config") or []:
        config.setdefault(c["run_id"], {})[c["config_key"]] = c["value_text"]

    f = freshness or {}
    lines = [
        (
            f"Generated by `grpo tracker` from the warehouse snapshot published {_text(f.get('published_at'))} "
            f"(latest event {_text(f.get('latest_event_at'))}, latest step {_text(f.get('latest_step'))}). "
            "Everything between the two markers is rewritten on every run: write notes above or below them."
        ),
        "",
        (
            "Columns: *rank* by final gap within the sweep (by game gap when every run of the sweep has enough "
            "league games); *KL spikes / grad norm over target* counts steps, "
            "⚠ where the run exceeds the target; *final gap* is the newest checkpoint's mean lead over base_model "
            f"in the final window, with its 95 % interval (± {Z95} standard errors) when there is one; "
            "*game gap* is the newest checkpoint's lead measured from the league's games (Bradley–Terry fit, "
            "95 % bootstrap interval over games), when the run logged games; "
            "*base_model Δ* is base_model's Elo change over the run (falling means learning); the last "
            "columns are the config keys that vary within the sweep."
        ),
        "",
    ]
    if not runs:
        lines.append("No runs in the warehouse yet.")
        return "\n".join(lines)

    sweeps = _sweep_order(runs)
    by_sweep = {s: [r for r in runs if r.get("sweep_key") == s] for s in sweeps}

    def rank_key(r: dict[str, Any]) -> tuple:
        rk = rankings.get(r.get("run_id"), {}).get("rank")
        return (rk is None, rk or 0, str(r.get("run_name")), str(r.get("run_id")))

    best: dict[Any, dict[str, Any] | None] = {}
    for s in sweeps:
        group = sorted(by_sweep[s], key=rank_key)
        keys = varying.get(s, [])
        lines.append(f"## Sweep {_text(s)}")
        lines.append("")
        varied = ", ".join(f"`{_text(k)}`" for k in keys) if keys else "none"
        lines.append(f"{len(group)} run{'s' if len(group) != 1 else ''}; config keys varied within the sweep: {varied}.")
        lines.append("")
        header = ["rank", "run", "state", "verdict", "KL spikes / grad norm over target", "final gap [95 % CI]",
                  "game gap [95 % CI]", "base_model Δ", "rollout p95 (s)", "extraction rate", *keys]
        body = []
        for r in group:
            rid = r.get("run_id")
            rk = rankings.get(rid, {})
            stab = stability.get(rid) or {"kl_spike_steps": r.get("kl_spike_steps")}
            rank = MISSING if rk.get("rank") is None else str(rk["rank"]) + (" (tie)" if rk.get("is_tie") else "")
            body.append(
                [
                    rank,
                    _text(r.get("run_name") or rid),
                    _text(r.get("state")),
                    _text(r.get("verdict")),
                    _stability_cell(stab),
                    _gap_cell(r.get("gap_final"), rk.get("gap_final_se")),
                    _game_gap_cell(rk),
                    _fixed(r.get("base_model_delta")),
                    _fixed(r.get("rollout_p95_s")),
                    _percent(r.get("extraction_rate")),
                    *[_text(config.get(rid, {}).get(k, NOT_SET)) for k in keys],
                ]
            )
        lines += _table(header, body)
        lines.append("")
        with_gap = [r for r in group if _finite(r.get("gap_final")) is not None]
        if rankings:
            top = [r for r in group if rankings.get(r.get("run_id"), {}).get("rank") == 1]
            best[s] = top[0] if top and top[0] in with_gap else None
        else:
            best[s] = max(with_gap, key=lambda r: (_finite(r["gap_final"]), str(r.get("run_name")))) if with_gap else None

    unjoined = extras.get("unjoined_event_labels") or []
    if unjoined:
        total = sum(int(u.get("n_events") or 0) for u in unjoined)
        lines.append(
            f"Unjoined events: {total} event{'s' if total != 1 else ''} carry a run label that no W&B run has as id or "
            "(unique) display name, so they count in no run's rollout p95, error and extraction columns: "
            + ", ".join(f"`{_text(u.get('run_label'))}` ({int(u.get('n_events') or 0)})" for u in unjoined)
            + ". Log the W&B run id (or a unique run name) in the events' run field (var event_fields.run_id)."
        )
        lines.append("")

    lines += ["## Across sweeps", ""]
    body = []
    for s in sweeps:
        counts: dict[str, int] = {}
        for r in by_sweep[s]:
            counts[str(r.get("verdict") or "no verdict")] = counts.get(str(r.get("verdict") or "no verdict"), 0) + 1
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        b = best[s]
        if b is None:
            body.append([_text(s), str(len(by_sweep[s])), "no final gap yet", MISSING, MISSING, _text(verdicts)])
            continue
        rk = rankings.get(b.get("run_id"), {})
        name = _text(b.get("run_name") or b.get("run_id"))
        tied = [t for t in rk.get("tied_with") or [] if t]
        if tied:
            name += " (tie with " + ", ".join(_text(t) for t in tied) + ")"
        body.append([_text(s), str(len(by_sweep[s])), name, _text(b.get("verdict")),
                     _gap_cell(b.get("gap_final"), rk.get("gap_final_se")), _text(verdicts)])
    lines.append("Best run of each sweep (largest final gap; a tie names the runs it cannot be told apart from):")
    lines.append("")
    lines += _table(["sweep", "runs", "best run", "verdict", "final gap [95 % CI]", "verdicts"], body)
    lines.append("")

    values = _sweep_values(sweeps, runs, config)
    differing = [k for k, per in values.items() if len({frozenset(v) for v in per.values()}) > 1]
    if len(sweeps) < 2:
        lines.append("What changed between sweeps: only one sweep so far.")
        return "\n".join(lines)
    steps = []
    for a, b in itertools.pairwise(sweeps):
        changed = [k for k in differing if values[k][a] != values[k][b]]
        steps.append(f"{_text(a)} → {_text(b)}: " + (", ".join(f"`{_text(k)}`" for k in changed) if changed else "no config change"))
    lines.append("What changed between sweeps (oldest first; config keys whose values differ): " + "; ".join(steps) + ".")
    lines.append("")
    if differing:
        lines += _table(["config key", *[str(s) for s in sweeps]],
                        [[f"`{_text(k)}`", *[_text(_values_text(values[k][s])) for s in sweeps]] for k in differing])
    else:
        lines.append("Every sweep used the same config values.")
    return "\n".join(lines)


def render_tracker(
    runs: list[dict[str, Any]], freshness: dict[str, Any], extras: dict[str, Any] | None = None
) -> str:
    """A whole new tracker page: a title, a short note and the marked section (what a missing file is created with)."""
    return _new_file_text(_block(render_section(runs, freshness, extras), "\n"))


def _block(section: str, nl: str) -> str:
    body = section.strip("\n").replace("\r\n", "\n").replace("\n", nl)
    return BEGIN_MARKER + nl + body + nl + END_MARKER


def _new_file_text(block: str) -> str:
    return f"{TITLE}\n\n{NEW_FILE_INTRO}\n\n{block}\n"


# --- splicing the section into the file ------------------------------------------------


@dataclass(frozen=True)
class _Span:
    start: int  # offset of the begin marker line
    end: int  # offset just past the end marker's text, before its line ending


def _lines(text: str):
    """(1-based line number, start offset, offset before the line ending, content without the line ending)."""
    pos, number = 0, 0
    while pos < len(text):
        number += 1
        nl = text.find("\n", pos)
        stop = len(text) if nl < 0 else nl
        content_end = stop - 1 if stop > pos and text[stop - 1] == "\r" else stop
        yield number, pos, content_end, text[pos:content_end]
        pos = stop + 1


def _find_markers(text: str, path: Path, honour_fences: bool = True) -> _Span | None:
    begin: tuple[int, int] | None = None  # (line, offset)
    end: tuple[int, int] | None = None
    fence: tuple[str, int] | None = None
    for number, start, content_end, content in _lines(text):
        stripped = content.strip().lstrip("\ufeff")
        if honour_fences:
            run = len(stripped) - len(stripped.lstrip(stripped[:1])) if stripped[:1] in ("`", "~") else 0
            if fence is None and run >= 3:
                fence = (stripped[0], run)
                continue
            if fence is not None:
                if stripped[:1] == fence[0] and run >= fence[1] and not stripped.lstrip(fence[0]).strip():
                    fence = None
                continue
        if stripped.startswith(BEGIN_PREFIX):
            if begin is not None:
                raise TrackerFileError(
                    path, f"a second tracker begin marker (the first is on line {begin[0]}); keep one "
                    f"'{BEGIN_MARKER}' and one '{END_MARKER}', then run again. Nothing was written.", number)
            begin = (number, start)
        elif stripped.startswith(END_PREFIX):
            if begin is None:
                raise TrackerFileError(
                    path, f"a tracker end marker with no begin marker before it; put '{BEGIN_MARKER}' above it "
                    "or delete it, then run again. Nothing was written.", number)
            if end is not None:
                raise TrackerFileError(
                    path, f"a second tracker end marker (the first is on line {end[0]}); keep one begin and one "
                    "end marker, then run again. Nothing was written.", number)
            end = (number, content_end)
    if honour_fences and fence is not None:
        # An unclosed code fence would hide markers after it (and make every run append a new section).
        return _find_markers(text, path, honour_fences=False)
    if begin is not None and end is None:
        raise TrackerFileError(
            path, f"a tracker begin marker with no end marker after it; add '{END_MARKER}' where the generated "
            "section should stop, then run again. Nothing was written.", begin[0])
    return None if begin is None else _Span(begin[1], end[1])


def splice_section(existing: str | None, section: str, path: Path | str = "<tracker>") -> str:
    """The new file text: `existing` with its marked section replaced by `section` (or appended; None = no file).

    Pure: nothing is read or written. Raises TrackerFileError for markers that do not pair up.
    """
    path = Path(path)
    if existing is None or existing == "":
        return _new_file_text(_block(section, "\n"))
    first_nl = existing.find("\n")
    nl = "\r\n" if first_nl > 0 and existing[first_nl - 1] == "\r" else "\n"
    block = _block(section, nl)
    span = _find_markers(existing, path)
    if span is not None:
        return existing[: span.start] + block + existing[span.end :]
    if existing.endswith(("\n\n", "\r\n\r\n")):
        sep = ""
    elif existing.endswith("\n"):
        sep = nl
    else:
        sep = nl + nl
    return existing + sep + block + nl


def write_section(path: Path | str, section: str) -> bool:
    """Put `section` between the markers of the file at `path`; True when the file changed.

    Everything outside the markers is kept byte for byte. The file is not touched when its
    bytes would not change. Raises TrackerFileError (nothing written) for markers that do not
    pair up, text that is not UTF-8, or a file that cannot be read or written.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))  # write through a symlink, keeping the link
    try:
        old = target.read_bytes()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise TrackerFileError(path, f"cannot read the tracker: {exc.strerror or exc}") from None
    if old is None:
        existing = None
    else:
        try:
            existing = old.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TrackerFileError(path, f"not UTF-8 text (byte {exc.start}); nothing was written") from None
    new = splice_section(existing, section, path).encode("utf-8")
    if new == old:
        return False
    try:
        _atomic_write(target, new)
    except OSError as exc:
        raise TrackerFileError(path, f"cannot write the tracker: {exc.strerror or exc}; nothing was changed") from None
    return True


def update_tracker(
    path: Path | str,
    runs: list[dict[str, Any]],
    freshness: dict[str, Any],
    extras: dict[str, Any] | None = None,
) -> bool:
    """Regenerate the marked section of the tracker at `path`; True when the file changed.

    `runs` = `learning.retrospective(con)`, `freshness` = `lookups.freshness(con)`,
    `extras` = `tracker_extras(con)`. See `write_section` for what is kept and raised.
    """
    return write_section(path, render_section(runs, freshness, extras))


def _atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to a temporary file next to `target`, then rename it over `target` (keeping its mode)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies to new files
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
