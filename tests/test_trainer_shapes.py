"""The names and shapes real trainers log give the same answers as the demo's default names.

Real offline `.wandb` files are written here by the real `wandb` library
(tests/wandb_fixtures.py) from the demo generator's exact series
(`pipelines.demo.league_truth.demo_runs`, which writes nothing), each run logged once per
naming:

- default: the demo's own names (`train/kl`, `elo/ckpt_<n>`, ...);
- trl: what TRL's GRPOTrainer logs through the Hugging Face Trainer (which
  prefixes `train/`): `train/entropy`, `train/clip_ratio/region_mean`,
  `train/completions/mean_length`, `train/reward`; checkpoints `checkpoint-<n>`;
- verl: `actor/kl_loss`, `actor/grad_norm`, `critic/rewards/mean`,
  `actor/entropy`, `actor/pg_clipfrac`, `response_length/mean`; checkpoints
  `global_step_<n>`;
- openrlhf: `train/kl`, `train/actor_grad_norm`, `train/entropy_loss`,
  `train/ppo_clip_ratio`, `train/response_length`; checkpoints `global_step<n>`;
- nested: `run.log({"train": {"kl": ...}, "elo": {"base_model": ..., "ckpt-100": ...}})`,
  stored as `train.kl`, `elo.base_model`.

The remaining checkpoint spellings (`checkpoint_<n>`, `step-<n>`, `step_<n>`)
get a run each. Expected statistics are computed here with numpy from the
generator's series; the other namings must then answer exactly as the default
one does. Events written here carry a run id, a run's display name, a name two
runs share and a label no run has.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.demo.league_truth import demo_runs
from tests.clock import DEMO_END
from tests.wandb_fixtures import write_runs

GRPO = str(Path(sys.executable).with_name("grpo"))
PLANS = ("lr-sweep-2", "lr-sweep-3", "kl-sweep-3")  # learning, unstable (entropy collapses), not_learning
ENTROPY_WINDOW = 10  # var entropy_window
COLLAPSE_FRACTION = 0.5  # var entropy_collapse_fraction

# canonical demo key -> the key each trainer logs
NAMES = {
    "default": {},
    "trl": {
        "train/reward_mean": "train/reward",
        "train/clip_ratio": "train/clip_ratio/region_mean",
        "train/response_length": "train/completions/mean_length",
    },
    "verl": {
        "train/kl": "actor/kl_loss",
        "train/grad_norm": "actor/grad_norm",
        "train/reward_mean": "critic/rewards/mean",
        "train/loss": "actor/pg_loss",
        "train/entropy": "actor/entropy",
        "train/clip_ratio": "actor/pg_clipfrac",
        "train/response_length": "response_length/mean",
        "train/learning_rate": "actor/lr",
    },
    "openrlhf": {
        "train/grad_norm": "train/actor_grad_norm",
        "train/reward_mean": "train/reward",
        "train/loss": "train/policy_loss",
        "train/entropy": "train/entropy_loss",
        "train/clip_ratio": "train/ppo_clip_ratio",
    },
    "nested": {},
}
CHECKPOINT_NAMES = {
    "default": "ckpt_{}",
    "trl": "checkpoint-{}",
    "verl": "global_step_{}",
    "openrlhf": "global_step{}",
    "nested": "ckpt-{}",
    "checkpoint_": "checkpoint_{}",
    "step-": "step-{}",
    "step_": "step_{}",
}


def _player(player: str, naming: str) -> str:
    if player.startswith("ckpt_"):
        return CHECKPOINT_NAMES[naming].format(int(player.removeprefix("ckpt_")))
    return player


def _row(data: dict[str, float], naming: str) -> dict[str, Any]:
    """One step's `run.log` payload in `naming`."""
    if naming == "nested":
        out: dict[str, Any] = {"train": {}, "elo": {}}
        for key, value in data.items():
            head, tail = key.split("/", 1)
            out[head][_player(tail, naming) if head == "elo" else tail] = value
        return {k: v for k, v in out.items() if v}
    names = NAMES.get(naming, {})
    out = {}
    for key, value in data.items():
        if key.startswith("elo/"):
            out["elo/" + _player(key.removeprefix("elo/"), naming)] = value
        else:
            out[names.get(key, key)] = value
    return out


def _spec(folder: Path, run_id: str, name: str, rows: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "dir": str(folder),
        "init": {"id": run_id, "name": name, "project": "shapes", "config": {"seed": 1}},
        "steps": [{"step": step, "data": data} for step, data in rows],
    }


def grpo(wh: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRPO_WAREHOUSE": str(wh), "COLUMNS": "250"}
    proc = subprocess.run([GRPO, *args], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def grpo_json(wh: Path, *args: str, code: int = 0) -> Any:
    return json.loads(grpo(wh, *args, "--json", code=code).stdout)


T0 = DEMO_END - dt.timedelta(hours=2)


def _event(minute: float, label: str, status: str = "ok", **extra: Any) -> str:
    at = (T0 + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "_time": at,
            "event": "rollout",
            "run_id": label,
            "rollout_id": f"{label}-{minute}",
            "duration_s": 10.0 + minute,
            "status": status,
            **extra,
        }
    )


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("shapes")
    runs = {r.name: r for r in demo_runs()}
    folder = root / "wandb"
    folder.mkdir()
    specs, ids = [], {}
    for naming in NAMES:
        for i, plan in enumerate(PLANS):
            run_id = f"{naming[:4]}{i:04d}"
            ids[(naming, plan)] = run_id
            specs.append(
                _spec(folder, run_id, f"{naming}-{plan}", [(s, _row(d, naming)) for s, d in runs[plan].history_rows()])
            )
    for naming in ("checkpoint_", "step-", "step_"):
        run_id = f"ck{len(ids):06d}"
        ids[(naming, "lr-sweep-2")] = run_id
        specs.append(
            _spec(
                folder,
                run_id,
                f"{naming}-lr-sweep-2",
                [(s, _row(d, naming)) for s, d in runs["lr-sweep-2"].history_rows()],
            )
        )
    # checkpoints named in a way no pattern knows: they are listed, and the gap is missing for that reason
    odd = [
        (
            s,
            {
                ("elo/model_iter" + k.removeprefix("elo/ckpt_")) if k.startswith("elo/ckpt_") else k: v
                for k, v in d.items()
            },
        )
        for s, d in runs["lr-sweep-2"].history_rows()
    ]
    specs.append(_spec(folder, "oddnames", "odd-names", odd))
    # two runs sharing one display name: events naming it cannot be told apart
    specs.append(_spec(folder, "twinaaaa", "twin-run", [(1, {"train/kl": 0.01})]))
    specs.append(_spec(folder, "twinbbbb", "twin-run", [(1, {"train/kl": 0.02})]))
    write_runs(specs, root / "work")

    lines = []
    by_id, by_name = ids[("default", "lr-sweep-2")], "trl-lr-sweep-2"
    for m in range(0, 60):
        lines.append(_event(m, by_id, "error" if m % 20 == 0 else "ok"))  # 3 of 60 failed
        lines.append(_event(m + 0.5, by_name, "error" if m % 30 == 0 else "ok"))  # 2 of 60 failed
    for m in range(0, 7):
        lines.append(_event(m + 0.25, "exp-orphan-7"))
    for m in range(0, 4):
        lines.append(_event(m + 0.75, "twin-run"))
    events = root / "events.ndjson"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")

    wh = root / "wh"
    grpo(wh, "ingest", "--wandb-dir", str(folder), "--events", str(events))
    return {"wh": wh, "ids": ids, "runs": runs, "lines": lines}


def _final_gap(run) -> float:
    """Mean over the last var final_gap_window (5) evals of newest checkpoint minus base_model, as logged."""
    _, gap = run.gap()
    return float(np.mean(gap[-5:]))


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


def _elo_answer(ans: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the names: verdict, references, gap, stability."""
    return {
        "verdict": ans["verdict"],
        "n_eval_points": ans["n_eval_points"],
        "references": ans["references"],
        "gap": {k: v for k, v in ans["gap"].items()},
        "stability": ans["stability"],
        "superseded": [{k: v for k, v in s.items() if k != "player"} for s in ans["superseded_checkpoints"]],
        "unclassified_players": ans["unclassified_players"],
    }


STABILITY_FIGURES = (
    "kl_mean",
    "kl_p95",
    "kl_max",
    "kl_spike_steps",
    "grad_norm_p95",
    "grad_norm_max",
    "grad_norm_over_steps",
    "non_finite_values",
    "reward_first",
    "reward_last",
    "reward_trend",
    "entropy_n_values",
    "entropy_early",
    "entropy_late",
    "entropy_late_to_early",
    "has_entropy_collapse",
    "clip_ratio_mean",
    "clip_ratio_p95",
    "clip_ratio_max",
    "response_length_mean",
    "response_length_max",
    "response_length_early",
    "response_length_late",
    "is_kl_stable",
    "has_kl_spikes",
    "has_grad_norm_over_target",
)


def test_the_default_names_answer_as_numpy_computes_from_the_logged_series(shapes) -> None:
    wh, runs = shapes["wh"], shapes["runs"]
    for plan in PLANS:
        run = runs[plan]
        m = grpo_json(wh, "metrics", "-r", f"default-{plan}")["stability"]
        kl = run.train["train/kl"]
        assert m["kl_key"] == "train/kl"
        assert math.isclose(m["kl_p95"], float(np.percentile(kl[np.isfinite(kl)], 95)), rel_tol=1e-9)
        entropy = run.train["train/entropy"]
        early, late = entropy[:ENTROPY_WINDOW].mean(), entropy[-ENTROPY_WINDOW:].mean()
        assert math.isclose(m["entropy_early"], early, rel_tol=1e-9)
        assert math.isclose(m["entropy_late"], late, rel_tol=1e-9)
        assert m["has_entropy_collapse"] is bool(late < COLLAPSE_FRACTION * early)
        clip = run.train["train/clip_ratio"]
        assert math.isclose(m["clip_ratio_mean"], clip.mean(), rel_tol=1e-9)
        assert math.isclose(m["clip_ratio_p95"], float(np.percentile(clip, 95)), rel_tol=1e-9)
        length = run.train["train/response_length"]
        assert math.isclose(m["response_length_early"], length[:ENTROPY_WINDOW].mean(), rel_tol=1e-9)
        assert math.isclose(m["response_length_late"], length[-ENTROPY_WINDOW:].mean(), rel_tol=1e-9)
        e = grpo_json(wh, "elo", f"default-{plan}")
        assert e["verdict"] == run.intended_verdict
        assert math.isclose(e["gap"]["final"], _final_gap(run), abs_tol=1e-6)
    assert grpo_json(wh, "metrics", "-r", "default-lr-sweep-3")["stability"]["has_entropy_collapse"] is True


@pytest.mark.parametrize("naming", [n for n in NAMES if n != "default"])
def test_trainer_names_and_nested_keys_give_the_default_names_answers(shapes, naming: str) -> None:
    wh = shapes["wh"]
    for plan in PLANS:
        want = grpo_json(wh, "elo", f"default-{plan}")
        got = grpo_json(wh, "elo", f"{naming}-{plan}")
        assert _close(_elo_answer(got), _elo_answer(want)), (naming, plan, got, want)
        assert got["gap"]["trend"] == want["gap"]["trend"] and got["gap"]["final"] is not None
        want_m = grpo_json(wh, "metrics", "-r", f"default-{plan}")
        got_m = grpo_json(wh, "metrics", "-r", f"{naming}-{plan}")
        for figure in STABILITY_FIGURES:
            assert _close(got_m["stability"].get(figure), want_m["stability"].get(figure)), (naming, plan, figure)
        assert {a["target"] for a in got_m["actions"]} == {a["target"] for a in want_m["actions"]}
        # the canonical metrics are shown under the keys this trainer logged
        shown = [x["key"] for x in got_m["metrics"]]
        assert len(shown) == len([x["key"] for x in want_m["metrics"]]), (shown, want_m["metrics"])
        if naming == "nested":
            assert got_m["stability"]["kl_key"] == "train.kl" and "elo.base_model" in shown
        else:
            keys = {**{k: k for k in NAMES["default"]}, **NAMES[naming]}
            assert got_m["stability"]["entropy_key"] == keys.get("train/entropy", "train/entropy")


@pytest.mark.parametrize("naming", ["default", "trl", "verl", "openrlhf", "nested", "checkpoint_", "step-", "step_"])
def test_every_common_checkpoint_spelling_is_a_checkpoint_with_its_step(shapes, naming: str) -> None:
    ans = grpo_json(shapes["wh"], "elo", f"{naming}-lr-sweep-2")
    run = shapes["runs"]["lr-sweep-2"]
    assert ans["unclassified_players"] == [] and ans["unclassified_note"] is None
    assert ans["n_checkpoint_players"] == len(run.checkpoints)
    steps = sorted(int(c.removeprefix("ckpt_")) for c in run.checkpoints)
    assert [s["checkpoint_step"] for s in ans["superseded_checkpoints"]] == steps[:-1]
    assert ans["verdict"] == "learning" and ans["gap"]["trend"] == "growing"
    assert math.isclose(ans["gap"]["final"], _final_gap(run), abs_tol=1e-6)


def test_unrecognized_players_are_named_with_the_var_to_set(shapes) -> None:
    wh = shapes["wh"]
    run = shapes["runs"]["lr-sweep-2"]
    ans = grpo_json(wh, "elo", "odd-names")
    expected = sorted("model_iter" + c.removeprefix("ckpt_") for c in run.checkpoints)
    n_points = {c: int(np.isfinite(run.elo[c]).sum()) for c in run.checkpoints}
    assert [u["player"] for u in ans["unclassified_players"]] == expected
    assert {u["player"]: u["n_points"] for u in ans["unclassified_players"]} == {
        "model_iter" + c.removeprefix("ckpt_"): n for c, n in n_points.items()
    }
    assert "checkpoint_patterns" in ans["unclassified_note"]
    assert ans["n_checkpoint_players"] == 0
    assert ans["gap"]["missing_reason"].startswith("no Elo player was classified as a checkpoint")
    assert "too little checkpoint gap data" not in ans["reason"]
    assert "no Elo player was classified as a checkpoint" in ans["reason"] and expected[0] in ans["reason"]
    text = " ".join(grpo(wh, "elo", "odd-names").stdout.split())
    assert "Unclassified Elo players: " + expected[0] in text and "checkpoint_patterns" in text
    assert "No checkpoint gap: no Elo player was classified as a checkpoint" in text


def test_events_join_their_run_by_id_else_by_a_unique_name_and_the_rest_are_named(shapes) -> None:
    wh, ids = shapes["wh"], shapes["ids"]
    window = ["--since", (T0 - dt.timedelta(hours=1)).isoformat(), "--until", (T0 + dt.timedelta(hours=2)).isoformat()]
    events = [json.loads(line) for line in shapes["lines"]]
    per_label: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        per_label.setdefault(e["run_id"], []).append(e)

    errors = grpo_json(wh, "errors", *window)
    by_run = {r["run"]: r for r in errors["by_run"]}
    for name, label in (("default-lr-sweep-2", ids[("default", "lr-sweep-2")]), ("trl-lr-sweep-2", "trl-lr-sweep-2")):
        mine = per_label[label]
        assert by_run[name]["joined"] is True
        assert by_run[name]["rollouts"] == len(mine)
        assert by_run[name]["failed_rollouts"] == sum(e["status"] == "error" for e in mine)
    assert by_run["trl-lr-sweep-2"]["run_id"] == ids[("trl", "lr-sweep-2")]
    unjoined = errors["unjoined_events"]
    assert unjoined["count"] == len(per_label["exp-orphan-7"]) + len(per_label["twin-run"])
    assert unjoined["run_labels"] == [
        {"run_label": "exp-orphan-7", "events": len(per_label["exp-orphan-7"])},
        {"run_label": "twin-run", "events": len(per_label["twin-run"])},
    ]
    assert by_run["exp-orphan-7"]["joined"] is False

    timing = grpo_json(wh, "rollout-timing", *window)
    p95 = {r["run"]: r["p95_s"] for r in timing["by_run"]}
    durations = [e["duration_s"] for e in per_label["trl-lr-sweep-2"]]
    assert math.isclose(p95["trl-lr-sweep-2"], float(np.percentile(durations, 95)), rel_tol=1e-9)
    assert timing["unjoined_events"]["count"] == unjoined["count"]
    text = " ".join(grpo(wh, "rollout-timing", *window).stdout.split())
    assert "Unjoined events:" in text and "exp-orphan-7 (7)" in text and "twin-run (4)" in text

    # the per-run marts (and so the tracker and the per-run checks) count name-labelled events too
    check = grpo_json(wh, "check", "--all", code=1)  # error_rate_per_run fails: 3 of 60 rollouts failed
    joined_checks = {c["subject"]: c for c in check["checks"] if c["name"] == "events_joined"}
    assert joined_checks["exp-orphan-7"]["passed"] is False
    assert joined_checks["twin-run"]["passed"] is False and "several runs" in joined_checks["twin-run"]["observed"]
    assert joined_checks["trl-lr-sweep-2"]["passed"] is True
    assert joined_checks[ids[("default", "lr-sweep-2")]]["passed"] is True
    rate = {c["subject"]: c for c in check["checks"] if c["name"] == "error_rate_per_run"}
    assert rate["trl-lr-sweep-2"]["n"] == len(per_label["trl-lr-sweep-2"])

    tracker = shapes["wh"].parent / "tracker.md"
    grpo(wh, "tracker", "--path", str(tracker))
    page = " ".join(tracker.read_text(encoding="utf-8").split())
    assert "Unjoined events: 11 events" in page and "`exp-orphan-7` (7)" in page and "`twin-run` (4)" in page


def test_events_that_arrive_before_their_run_join_it_once_it_arrives(tmp_path: Path) -> None:
    """An incremental build moves a label's rows to its run when the run arrives: no row stays under the label."""
    folder = tmp_path / "wandb"
    folder.mkdir()
    write_runs(
        [_spec(folder, "late0001", "late-run", [(s, {"train/kl": 0.01 * s}) for s in range(1, 6)])], tmp_path / "work"
    )
    lines = [_event(m, "late-run", "error" if m % 10 == 0 else "ok") for m in range(40)]
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    window = ["--since", (T0 - dt.timedelta(hours=1)).isoformat(), "--until", (T0 + dt.timedelta(hours=2)).isoformat()]

    staged = tmp_path / "staged"
    grpo(staged, "ingest", "--events", str(events))
    before = grpo_json(staged, "errors", *window)
    assert before["unjoined_events"]["run_labels"] == [{"run_label": "late-run", "events": 40}]
    grpo(staged, "ingest", "--wandb-dir", str(folder), "--events", str(events))
    after = grpo_json(staged, "errors", *window)
    assert after["unjoined_events"]["count"] == 0 and after["unjoined_events"]["note"] is None
    assert [(r["run"], r["run_id"], r["rollouts"], r["failed_rollouts"]) for r in after["by_run"]] == [
        ("late-run", "late0001", 40, sum(m % 10 == 0 for m in range(40)))
    ]

    fresh = tmp_path / "fresh"
    grpo(fresh, "ingest", "--wandb-dir", str(folder), "--events", str(events))
    for table in ("fct_rollout_timing_by_run", "fct_rollout_errors_by_run", "fct_rollout_errors_hourly"):
        query = f"select run_id, n_rollouts, n_failed from {table} order by all"
        staged_rows = grpo_json(staged, "sql", query)
        assert staged_rows == grpo_json(fresh, "sql", query), table
        assert all(r["run_id"] == "late0001" for r in staged_rows), (table, staged_rows)
