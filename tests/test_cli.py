"""The `grpo` command line: help, usage errors and the no-data path (no warehouse needed)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipelines.cli.app import main

COMMANDS = sorted(main.commands)


def test_the_cli_offers_every_question_of_the_playbook():
    assert set(COMMANDS) >= {
        "elo",
        "sweep",
        "metrics",
        "rollout-timing",
        "errors",
        "extraction-stats",
        "health",
        "check",
        "sql",
        "tracker",
        "ingest",
        "demo",
    }


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert len(main.commands[command].help.strip().splitlines()[0]) > 20


@pytest.mark.parametrize(
    "args",
    [
        ["elo", "some-run"],
        ["sweep", "--sweep", "x"],
        ["metrics", "-r", "x"],
        ["rollout-timing"],
        ["errors", "--last", "1h"],
        ["extraction-stats"],
        ["health"],
        ["check"],
        ["sql", "select 1"],
        ["tracker"],
    ],
)
def test_asking_an_empty_warehouse_says_how_to_fill_it_and_exits_2(args, tmp_path):
    result = CliRunner().invoke(main, ["--warehouse", str(tmp_path / "none"), *args])
    assert result.exit_code == 2
    assert "grpo demo" in result.output and "grpo ingest" in result.output


def test_ingest_without_sources_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["--warehouse", str(tmp_path), "ingest"])
    assert result.exit_code == 2
    assert "nothing to ingest" in result.output


def test_ingest_of_a_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope" / "events.ndjson"
    result = CliRunner().invoke(main, ["--warehouse", str(tmp_path), "ingest", "--events", str(missing)])
    assert result.exit_code == 2
    assert str(missing) in result.output


@pytest.mark.parametrize(
    "window,message",
    [
        (["--last", "soon"], "cannot read duration"),
        (["--last", "0h"], "must be positive"),
        (["--since", "tuesday"], "cannot read --since"),
    ],
)
def test_a_nonsense_window_is_refused_before_anything_is_read(window, message, tmp_path):
    result = CliRunner().invoke(main, ["--warehouse", str(tmp_path), "errors", *window])
    assert result.exit_code == 2
    assert message in result.output
