"""The experiment tracker keeps people's notes: only the marked section is regenerated.

Pure-format tests feed `update_tracker` / `render_section` hand-made rows; the
warehouse tests build the demo once (fixed end time, in a tmp folder) and check
the tables against the marts, with expected values computed here from the
marts' own rows (verdicts, gap trends, stability, rollout and extraction
marts, dim_run_config), not from the tracker's queries. Nothing here writes
to the working directory or depends on the wall clock.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.tracker.marked_page import (
    BEGIN_MARKER,
    END_MARKER,
    TrackerFileError,
    render_tracker,
    update_tracker,
)
from pipelines.tracker.mart_extras import tracker_extras
from pipelines.tracker.section_render import render_section
from tests.clock import DEMO_END_ISO

GRPO = str(Path(sys.executable).with_name("grpo"))

FRESH = {"published_at": "2026-12-05T23:30:00Z", "latest_event_at": "2026-12-05T23:22:59Z", "latest_step": 400}


def _run(run_id, name, sweep, *, gap=None, se=None, rank=None, tie=(), verdict="learning", config=None, **more):
    """A retrospective row plus the extras that belong to it."""
    row = {
        "run_id": run_id,
        "run_name": name,
        "sweep_key": sweep,
        "state": "finished",
        "started_at": more.pop("started_at", "2026-12-01T00:00:00Z"),
        "config_json": json.dumps(config or {}),
        "verdict": verdict,
        "gap_final": gap,
        "base_model_delta": more.pop("base_delta", -50.0),
        "kl_p95": 0.05,
        "kl_spike_steps": more.get("kl_spike_steps", 0),
        "grad_norm_max": 5.0,
        "rollout_p95_s": more.pop("p95", 70.0),
        "n_rollouts": 100,
        "error_rate": 0.01,
        "n_error_events": 1,
        "extraction_rate": more.pop("extraction", 0.98),
    }
    ranking = {
        "run_id": run_id,
        "sweep_key": sweep,
        "rank": rank,
        "gap_final": gap,
        "gap_final_se": se,
        "is_tie": bool(tie),
        "tied_with": list(tie),
    }
    stability = {
        "run_id": run_id,
        "kl_spike_steps": more.get("kl_spike_steps", 0),
        "has_kl_spikes": more.get("kl_spike_steps", 0) > 0,
        "grad_norm_over_steps": more.get("grad_over", 0),
        "has_grad_norm_over_target": more.get("grad_over", 0) > 0,
        "grad_norm_max": 5.0,
    }
    return row, ranking, stability


def hand_made(latest_step=400, lr3_verdict="unstable"):
    """Two sweeps of hand-made rows: (runs, freshness, extras)."""
    made = [
        _run(
            "a1",
            "lr-1",
            "lr",
            gap=150.0,
            se=3.0,
            rank=2,
            config={"lr": 1e-6, "kl": 0.05},
            started_at="2026-11-01T00:00:00Z",
        ),
        _run("a2", "lr-2", "lr", gap=240.0, se=7.0, rank=1, config={"lr": 3e-6, "kl": 0.05}),
        _run(
            "a3",
            "lr-3",
            "lr",
            gap=None,
            se=None,
            rank=3,
            verdict=lr3_verdict,
            kl_spike_steps=10,
            grad_over=4,
            config={"lr": 5e-6, "kl": 0.05},
        ),
        _run(
            "b1",
            "kl-1",
            "kl",
            gap=205.0,
            se=8.0,
            rank=1,
            tie=["kl-2"],
            config={"lr": 1e-6, "kl": 0.01},
            started_at="2026-11-20T00:00:00Z",
        ),
        _run("b2", "kl-2", "kl", gap=202.0, se=3.0, rank=2, tie=["kl-1"], config={"lr": 1e-6, "kl": 0.5}),
    ]
    runs = [m[0] for m in made]
    config = [
        {"run_id": r["run_id"], "sweep_key": r["sweep_key"], "config_key": k, "value_text": json.dumps(v)}
        for r in runs
        for k, v in json.loads(r["config_json"]).items()
    ]
    extras = {
        "rankings": [m[1] for m in made],
        "stability": [m[2] for m in made],
        "varying_config_keys": [{"sweep_key": "kl", "config_key": "kl"}, {"sweep_key": "lr", "config_key": "lr"}],
        "run_config": config,
    }
    return runs, {**FRESH, "latest_step": latest_step}, extras


def between_markers(text: str) -> str:
    start = text.index(BEGIN_MARKER)
    end = text.index(END_MARKER) + len(END_MARKER)
    return text[start:end]


def outside_markers(data: bytes) -> tuple[bytes, bytes]:
    start = data.index(BEGIN_MARKER.encode())
    end = data.index(END_MARKER.encode()) + len(END_MARKER)
    return data[:start], data[end:]


# --- notes are kept --------------------------------------------------------------------


def test_notes_above_and_below_the_section_survive_two_regenerations_byte_for_byte(tmp_path):
    path = tmp_path / "experiment-tracker.md"
    assert update_tracker(path, *hand_made()) is True
    first = path.read_bytes()
    above, below = outside_markers(first)
    # Between two runs of the tracker a person writes notes above and below the section.
    notes_above = above + b"## Notes\n\n- lr-3 blew up at step 210: *check the reward scale*  \n  (Ana, 3 Dec)\n\n"
    notes_below = below + "\n\n## Next steps\n\n1. rerun kl-1 with seed 8 — ünïcödé ✓\n\n<!-- a comment -->\n".encode()
    path.write_bytes(notes_above + between_markers(first.decode()).encode() + notes_below)

    assert update_tracker(path, *hand_made(latest_step=450, lr3_verdict="not_learning")) is True
    second = path.read_bytes()
    assert outside_markers(second) == (notes_above, notes_below)
    section = between_markers(second.decode())
    assert "latest step 450" in section and "not_learning" in section and "latest step 400" not in section

    assert update_tracker(path, *hand_made(latest_step=500)) is True
    assert outside_markers(path.read_bytes()) == (notes_above, notes_below)
    assert "latest step 500" in path.read_text(encoding="utf-8")


def test_a_file_with_notes_but_no_markers_keeps_them_and_gets_the_section_after_a_blank_line(tmp_path):
    for name, original in {
        "ends-with-newline.md": b"# Our tracker\n\nHand-written notes.\n",
        "no-final-newline.md": b"# Our tracker\n\nHand-written notes.",
        "ends-with-blank-line.md": b"# Our tracker\n\nHand-written notes.\n\n",
    }.items():
        path = tmp_path / name
        path.write_bytes(original)
        assert update_tracker(path, *hand_made()) is True
        data = path.read_bytes()
        assert data.startswith(original), name
        notes = original.decode().rstrip("\n")
        assert data.decode().startswith(notes + "\n\n" + BEGIN_MARKER + "\n"), name  # exactly one blank line
        assert data.decode().endswith(END_MARKER + "\n"), name
        assert data.count(BEGIN_MARKER.encode()) == 1
        # The second run finds the markers: nothing is appended again.
        assert update_tracker(path, *hand_made()) is False
        assert path.read_bytes() == data


def test_a_missing_file_is_created_with_a_title_and_the_section(tmp_path):
    path = tmp_path / "docs" / "experiment-tracker.md"
    assert update_tracker(path, *hand_made()) is True
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Experiment tracker\n\n")
    assert text.endswith(END_MARKER + "\n")
    assert text.count(BEGIN_MARKER) == text.count(END_MARKER) == 1
    assert text == render_tracker(*hand_made())
    assert sorted(p.name for p in path.parent.iterdir()) == ["experiment-tracker.md"]


def test_rerunning_with_the_same_data_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "tracker.md"
    path.write_bytes(b"notes above\n")
    assert update_tracker(path, *hand_made()) is True
    before = path.read_bytes()
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))  # an old, exact mtime
    st = path.stat()
    assert update_tracker(path, *hand_made()) is False
    assert path.read_bytes() == before
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (st.st_mtime_ns, st.st_ino)


def test_the_section_follows_a_crlf_files_line_endings_and_keeps_its_notes(tmp_path):
    path = tmp_path / "tracker.md"
    above = b"# Tracker\r\n\r\nnotes\r\n\r\n"
    below = b"\r\nmore notes\r\n"
    path.write_bytes(above + f"{BEGIN_MARKER}\r\nold\r\n{END_MARKER}".encode() + below)
    assert update_tracker(path, *hand_made()) is True
    data = path.read_bytes()
    assert outside_markers(data) == (above, below)
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_markers_quoted_in_a_code_fence_are_notes_not_markers(tmp_path):
    path = tmp_path / "tracker.md"
    original = f"How it works:\n\n```markdown\n{BEGIN_MARKER}\n{END_MARKER}\n```\n".encode()
    path.write_bytes(original)
    assert update_tracker(path, *hand_made()) is True
    data = path.read_bytes()
    assert data.startswith(original) and data.count(BEGIN_MARKER.encode()) == 2
    assert update_tracker(path, *hand_made()) is False


def test_the_file_mode_is_kept(tmp_path):
    path = tmp_path / "tracker.md"
    path.write_bytes(b"notes\n")
    path.chmod(0o640)
    assert update_tracker(path, *hand_made()) is True
    assert path.stat().st_mode & 0o777 == 0o640


# --- nothing is written on errors ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        (f"notes\n{BEGIN_MARKER}\nold section\n", 2, "no end marker"),
        (
            f"{BEGIN_MARKER}\na\n{END_MARKER}\n\nnotes\n{BEGIN_MARKER}\nb\n{END_MARKER}\n",
            6,
            "second tracker begin marker",
        ),
        (f"{BEGIN_MARKER}\na\n{BEGIN_MARKER}\nb\n{END_MARKER}\n", 3, "second tracker begin marker"),
        (f"notes\n\n{END_MARKER}\n{BEGIN_MARKER}\n", 3, "no begin marker before it"),
        (f"{BEGIN_MARKER}\na\n{END_MARKER}\nb\n{END_MARKER}\n", 5, "second tracker end marker"),
    ],
    ids=["begin-without-end", "two-sections", "two-begins", "end-before-begin", "two-ends"],
)
def test_malformed_markers_name_the_file_and_line_and_change_nothing(tmp_path, text, line, says):
    path = tmp_path / "tracker.md"
    path.write_bytes(text.encode())
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    with pytest.raises(TrackerFileError) as err:
        update_tracker(path, *hand_made())
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ") and says in message and "Nothing was written" in message
    assert (err.value.path, err.value.line) == (str(path), line)
    assert path.read_bytes() == text.encode()
    assert path.stat().st_mtime_ns == 1_000_000_000_000_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["tracker.md"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "tracker.md"
    path.write_bytes(b"precious notes\n")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(TrackerFileError, match="No space left on device"):
        update_tracker(path, *hand_made())
    assert path.read_bytes() == b"precious notes\n"
    assert [p.name for p in tmp_path.iterdir()] == ["tracker.md"]


def test_a_file_that_is_not_utf8_is_refused_untouched(tmp_path):
    path = tmp_path / "tracker.md"
    path.write_bytes(b"notes \xff\xfe\n")
    with pytest.raises(TrackerFileError, match=re.escape(str(path)) + ": not UTF-8"):
        update_tracker(path, *hand_made())
    assert path.read_bytes() == b"notes \xff\xfe\n"


# --- what the section says (hand-made rows) -------------------------------------------


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def table_under(text: str, heading: str) -> list[dict[str, str]]:
    """The first markdown table after `heading`, as dicts keyed by its header."""
    lines = text.splitlines()
    i = lines.index(heading)
    while not lines[i].startswith("| "):
        i += 1
    header = _cells(lines[i])
    out = []
    for line in lines[i + 2 :]:
        if not line.startswith("| "):
            break
        out.append(dict(zip(header, _cells(line), strict=True)))
    return out


def test_the_section_shows_ranks_gaps_with_their_interval_stability_and_varied_config():
    section = render_section(*hand_made())
    lr = table_under(section, "## Sweep lr")
    assert [r["run"] for r in lr] == ["lr-2", "lr-1", "lr-3"]  # by rank
    assert lr[0]["final gap [95 % CI]"] == f"240.0 [{240 - 1.96 * 7:.1f}, {240 + 1.96 * 7:.1f}]"
    assert lr[2]["final gap [95 % CI]"] == "–"
    assert lr[2]["KL spikes / grad norm over target"] == "10 ⚠ / 4 ⚠"
    assert lr[0]["KL spikes / grad norm over target"] == "0 / 0"
    assert [r["lr"] for r in lr] == ["3e-06", "1e-06", "5e-06"]
    assert "kl" not in lr[0]  # kl does not vary within the lr sweep
    assert (lr[0]["base_model Δ"], lr[0]["rollout p95 (s)"], lr[0]["extraction rate"]) == ("-50.0", "70.0", "98.0 %")
    kl = table_under(section, "## Sweep kl")
    assert [(r["rank"], r["run"], r["kl"]) for r in kl] == [("1 (tie)", "kl-1", "0.01"), ("2 (tie)", "kl-2", "0.5")]

    best = table_under(section, "## Across sweeps")
    assert [(b["sweep"], b["best run"], b["runs"]) for b in best] == [
        ("lr", "lr-2", "3"),
        ("kl", "kl-1 (tie with kl-2)", "2"),
    ]
    assert best[0]["verdicts"] == "2 learning, 1 unstable"
    changed = table_under(section, "| config key | lr | kl |")
    assert changed == [
        {"config key": "`kl`", "lr": "0.05", "kl": "0.01, 0.5"},
        {"config key": "`lr`", "lr": "1e-06, 3e-06, 5e-06", "kl": "1e-06"},
    ]
    assert "lr → kl: `kl`, `lr`" in section


def test_the_section_states_the_snapshot_times_and_never_the_clock(monkeypatch):
    import datetime as dt
    import time

    first = render_section(*hand_made())

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2031, 1, 1, tzinfo=tz)

    monkeypatch.setattr(dt, "datetime", Later)
    monkeypatch.setattr(time, "time", lambda: 1_924_992_000.0)
    assert render_section(*hand_made()) == first
    assert "published 2026-12-05T23:30:00Z (latest event 2026-12-05T23:22:59Z, latest step 400)" in first
    stamps = set(re.findall(r"\d{4}-\d\d-\d\dT[\d:.]+Z?", first))
    assert stamps == {FRESH["published_at"], FRESH["latest_event_at"]}


def test_cells_escape_pipes_and_show_missing_values_as_a_dash():
    runs, fresh, extras = hand_made()
    runs[0]["run_name"] = "lr|1"
    runs[0]["extraction_rate"] = None
    section = render_section(runs, fresh, extras)
    row = next(r for r in table_under(section, "## Sweep lr") if r["run"] == "lr\\|1")
    assert row["extraction rate"] == "–"


def test_without_extras_config_comes_from_config_json():
    runs, fresh, _ = hand_made()
    section = render_section(runs, fresh)
    lr = table_under(section, "## Sweep lr")
    assert sorted(r["lr"] for r in lr) == ["1e-06", "3e-06", "5e-06"]
    assert {r["rank"] for r in lr} == {"–"}
    assert table_under(section, "## Across sweeps")[0]["best run"] == "lr-2"


def test_an_empty_warehouse_says_so(tmp_path):
    path = tmp_path / "t.md"
    assert update_tracker(
        path, [], FRESH, {"rankings": [], "stability": [], "varying_config_keys": [], "run_config": []}
    )
    assert "No runs in the warehouse yet." in between_markers(path.read_text(encoding="utf-8"))


# --- against a demo warehouse ----------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """The demo ending at the suite's fixed instant, built through the real CLI in a tmp folder."""
    root = tmp_path_factory.mktemp("tracker")
    wh = root / "wh"
    env = {**os.environ, "GRPO_WAREHOUSE": str(wh)}
    proc = subprocess.run(
        [GRPO, "demo", "--end-time", DEMO_END_ISO, "--json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from pipelines.answers import sql

    con = sql.open_snapshot(wh)
    yield con
    con.close()


def _inputs(con):
    from pipelines.answers import learning, lookups

    return learning.retrospective(con), lookups.freshness(con), tracker_extras(con)


def _rows(con, sql):
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _number(cell: str) -> float | None:
    return None if cell == "–" else float(cell.replace(",", "").replace(" %", ""))


def _close(cell: str, expected, scale: float = 1.0, digits: int = 1) -> bool:
    got = _number(cell)
    if expected is None or (isinstance(expected, float) and not math.isfinite(expected)):
        return got is None
    return got is not None and abs(got - scale * expected) <= 0.5 * 10**-digits + 1e-9


def test_each_sweep_table_matches_the_marts(warehouse, tmp_path):
    con = warehouse
    path = tmp_path / "tracker.md"
    assert update_tracker(path, *_inputs(con)) is True
    text = path.read_text(encoding="utf-8")

    runs = {r["run_id"]: r for r in _rows(con, "select run_id, run_name, sweep_key, state from dim_runs")}
    verdicts = {r["run_id"]: r for r in _rows(con, "select * from fct_learning_verdicts")}
    gaps = {r["run_id"]: r for r in _rows(con, "select run_id, gap_final, gap_final_se from fct_gap_trends")}
    stab = {r["run_id"]: r for r in _rows(con, "select * from fct_training_stability")}
    p95 = {r["run_id"]: r["p95_s"] for r in _rows(con, "select run_id, p95_s from fct_rollout_timing_by_run")}
    extraction = {
        r["run_id"]: r["extraction_rate"]
        for r in _rows(con, "select run_id, extraction_rate from fct_extraction_by_run")
    }
    config: dict[str, dict[str, str]] = {}
    for c in _rows(con, "select run_id, config_key, value_text from dim_run_config"):
        config.setdefault(c["run_id"], {})[c["config_key"]] = c["value_text"]
    by_name = {r["run_name"]: rid for rid, r in runs.items()}

    sweeps = sorted({r["sweep_key"] for r in runs.values()})
    assert sweeps == ["kl-sweep", "lr-sweep", "smoke-test"]
    seen = set()
    for sweep in sweeps:
        members = [rid for rid, r in runs.items() if r["sweep_key"] == sweep]
        # Config keys that vary within the sweep: more than one value, or set by only some runs.
        keys = sorted(
            k
            for k in {k for rid in members for k in config.get(rid, {})}
            if len({config.get(rid, {}).get(k) for rid in members}) > 1
        )
        table = table_under(text, f"## Sweep {sweep}")
        assert sorted(r["run"] for r in table) == sorted(runs[rid]["run_name"] for rid in members)
        assert list(table[0])[10:] == keys  # rank … extraction rate, game gap among them: 10 fixed columns
        gap_order = [r["run"] for r in table if r["final gap [95 % CI]"] != "–"]
        assert gap_order == sorted(gap_order, key=lambda n: -verdicts[by_name[n]]["gap_final"])
        for row in table:
            rid = by_name[row["run"]]
            seen.add(rid)
            v, g, s = verdicts[rid], gaps.get(rid, {}), stab[rid]
            assert (row["state"], row["verdict"]) == (runs[rid]["state"], v["verdict"])
            kl, gn = row["KL spikes / grad norm over target"].split(" / ")
            assert kl == f"{s['kl_spike_steps']}" + (" ⚠" if s["has_kl_spikes"] else "")
            assert gn == f"{s['grad_norm_over_steps']}" + (" ⚠" if s["has_grad_norm_over_target"] else "")
            cell = row["final gap [95 % CI]"]
            if v["gap_final"] is None:
                assert cell == "–"
            else:
                m = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cell)
                assert m, cell
                assert _close(m[1], v["gap_final"])
                assert _close(m[2], g["gap_final"] - 1.96 * g["gap_final_se"])
                assert _close(m[3], g["gap_final"] + 1.96 * g["gap_final_se"])
            assert _close(row["base_model Δ"], v["base_model_delta"])
            assert _close(row["rollout p95 (s)"], p95.get(rid))
            assert _close(row["extraction rate"], extraction.get(rid), scale=100)
            for k in keys:
                assert row[k] == config.get(rid, {}).get(k, "(not set)")
    assert seen == set(runs)
    # The demo's known shape: lr-sweep-3 is the unstable one, with KL spikes and grad-norm steps over target.
    lr3 = next(r for r in table_under(text, "## Sweep lr-sweep") if r["run"] == "lr-sweep-3")
    assert lr3["verdict"] == "unstable" and lr3["KL spikes / grad norm over target"].count("⚠") == 2


def test_the_retrospective_names_each_sweeps_best_run_and_what_changed_between_sweeps(warehouse, tmp_path):
    con = warehouse
    path = tmp_path / "tracker.md"
    update_tracker(path, *_inputs(con))
    text = path.read_text(encoding="utf-8")
    runs = _rows(con, "select run_id, run_name, sweep_key, started_at from dim_runs")
    gaps = {r["run_id"]: r for r in _rows(con, "select run_id, gap_final, gap_final_se from fct_gap_trends")}

    # Sweeps oldest first (by their first run's start), as the retrospective lists them.
    first = {}
    for r in runs:
        first[r["sweep_key"]] = min(first.get(r["sweep_key"], r["started_at"]), r["started_at"])
    order = sorted(first, key=lambda s: (first[s], s))
    best = table_under(text, "## Across sweeps")
    assert [b["sweep"] for b in best] == order
    for b in best:
        members = [r for r in runs if r["sweep_key"] == b["sweep"]]
        assert b["runs"] == str(len(members))
        with_gap = [r for r in members if gaps.get(r["run_id"], {}).get("gap_final") is not None]
        if not with_gap:
            assert b["best run"] == "no final gap yet"
            continue
        ranked = sorted(with_gap, key=lambda r: (-gaps[r["run_id"]]["gap_final"], r["run_name"]))
        top = ranked[0]
        name = top["run_name"]
        # the tie rule is fct_sweep_rankings' (tested in test_learning_marts); the page names every tied run
        (tied,) = con.execute("select tied_with from fct_sweep_rankings where run_id = ?", [top["run_id"]]).fetchone()
        if tied:
            name += " (tie with " + ", ".join(tied) + ")"
        assert b["best run"] == name
    assert [b["best run"] for b in best if b["sweep"] == "kl-sweep"] == ["kl-sweep-1 (tie with kl-sweep-2)"]

    # Config keys whose set of values (with "(not set)" for runs lacking the key) differs between sweeps.
    values: dict[str, dict[str, set[str]]] = {}
    config: dict[str, dict[str, str]] = {}
    for c in _rows(con, "select run_id, config_key, value_text from dim_run_config"):
        config.setdefault(c["run_id"], {})[c["config_key"]] = c["value_text"]
    for k in {k for cfg in config.values() for k in cfg}:
        values[k] = {
            s: {config.get(r["run_id"], {}).get(k, "(not set)") for r in runs if r["sweep_key"] == s} for s in order
        }
    differing = sorted(k for k, per in values.items() if len({frozenset(v) for v in per.values()}) > 1)
    changed = table_under(text, "| config key | " + " | ".join(order) + " |")
    assert [c["config key"].strip("`") for c in changed] == differing
    assert {"kl_coef", "learning_rate", "total_steps"} <= set(differing)
    for c in changed:
        k = c["config key"].strip("`")
        for s in order:
            assert set(c[s].split(", ")) == values[k][s]


def test_regenerating_from_an_unchanged_warehouse_changes_nothing(warehouse, tmp_path):
    path = tmp_path / "tracker.md"
    path.write_bytes(b"# Team tracker\n\nnotes\n")
    assert update_tracker(path, *_inputs(warehouse)) is True
    before = path.read_bytes()
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    assert update_tracker(path, *_inputs(warehouse)) is False
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == 1_000_000_000_000_000_000
    assert before.startswith(b"# Team tracker\n\nnotes\n\n" + BEGIN_MARKER.encode())
