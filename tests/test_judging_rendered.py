"""The judging macros' stored rendering: current, used only while it matches, and what spares the
windowed answers importing Jinja."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.answers import judging
from pipelines.settings import thresholds


@pytest.fixture
def fresh_caches():
    caches = (judging._stored, judging._judge_sql, judging._component_status_sql, judging._macros)
    for f in caches:
        f.cache_clear()
    yield
    for f in caches:
        f.cache_clear()


def test_the_stored_rendering_is_what_jinja_renders_from_the_macros_now(fresh_caches):
    stored = json.loads(judging.RENDERED.read_text(encoding="utf-8"))
    assert stored == judging.rendered(tuple(thresholds().heartbeat_ok_statuses)), (
        "macros/judging.sql or var heartbeat_ok_statuses changed: run `python -m pipelines.answers.judging`"
    )


def test_changed_macros_are_rendered_afresh_not_read_from_the_stale_file(fresh_caches, tmp_path, monkeypatch):
    macros = tmp_path / "judging.sql"
    # A different target rule: a rate's interval must now clear the target by 0.5.
    text = judging.JUDGING_MACROS.read_text(encoding="utf-8")
    macros.write_text(text.replace("and {{ ci95_hi }} < {{ threshold }}", "and {{ ci95_hi }} < {{ threshold }} - 0.5"))
    monkeypatch.setattr(judging, "JUDGING_MACROS", macros)
    assert "- 0.5" in judging._judge_sql(True)
    assert judging.judge_rate(0, 1000, 0.01, True, 50)[0] == "inconclusive"  # 'pass' under the stored rule


def test_other_ok_statuses_are_rendered_afresh(fresh_caches):
    sql = judging._component_status_sql(("ok", "ready"))
    assert "'ready'" in sql and "'healthy'" not in sql


def test_the_windowed_answers_judge_without_importing_jinja():
    code = (
        "import sys\n"
        "from pipelines.answers import judging\n"
        "from pipelines.settings import thresholds\n"
        "assert judging.judge_rate(3, 1222, 0.01, True, 50.0)[0] == 'pass'\n"
        "assert judging.judge_p95(130.0, 30, 120.0, 20.0) == 'fail'\n"
        "assert judging.component_status(10.0, 'OK', thresholds()) == 'ok'\n"
        "print('jinja2' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
