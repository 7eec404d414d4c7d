"""The guides (docs/guide-*.md) quote what the commands really print.

scripts/make_guides.py builds the demo at its fixed end time (2026-12-05T23:23Z,
whatever GRPO_TEST_DEMO_END says: the guides quote that one instant) in a
temporary folder, runs every command quoted between `<!-- output: … -->` and
`<!-- end output -->` markers, and compares. Nothing in the repository is
written: the commands run in scratch folders under the test's temporary
folder. When `test_guides_quote_what_the_commands_print` fails, regenerate
with `uv run python scripts/make_guides.py` and read the text around the
blocks named in the failure: the prose may describe the old output.
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_guides.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_guides", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


make_guides = _load_script()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_guides.build_demo(tmp_path_factory.mktemp("guides"))


def _repo_files() -> dict[Path, bytes | None]:
    """The guides and the tracker's default page: what a careless run could write into the repository."""
    paths = [make_guides.DOCS / name for name in make_guides.GUIDES] + [make_guides.DOCS / "experiment-tracker.md"]
    return {p: p.read_bytes() if p.exists() else None for p in paths}


def test_guides_quote_what_the_commands_print(demo):
    before = _repo_files()
    rendered = make_guides.render_all(demo)
    assert _repo_files() == before, "rendering the guides wrote into docs/"
    stale = make_guides.stale_report(rendered)
    assert not stale, (
        f"{len(stale)} output blocks of the guides differ from what the commands print now; regenerate with "
        "`uv run python scripts/make_guides.py` and review the text around them:\n" + "\n".join(stale)
    )
    for r in rendered:
        assert len(r.blocks) >= 3, f"{r.path.name} quotes only {len(r.blocks)} outputs"
        for machine_path in (str(demo.tmp), str(make_guides.REPO), "/tmp/", "/home/", "/root/"):
            assert machine_path not in r.new_text, f"{r.path.name} holds a path of this machine: {machine_path}"


def test_a_drifted_block_is_named_and_regenerating_keeps_the_prose(demo, tmp_path):
    guide = tmp_path / "guide-x.md"
    top = "# A guide\n\nWritten by hand,\n\n"
    bottom = "\nand kept as it is, trailing spaces too.   \n"
    query = 'grpo sql "select verdict, count(*) as runs from fct_learning_verdicts group by 1 order by 1"'
    guide.write_text(
        f"{top}<!-- output: {query} -->\n```console\nstale\n```\n<!-- end output -->\n{bottom}", encoding="utf-8"
    )
    original = guide.read_bytes()

    out = io.StringIO()
    assert make_guides.check(demo, tmp_path, ("guide-x.md",), out=out) == 1
    assert f"guide-x.md:5: <!-- output: {query} -->" in out.getvalue()
    assert "-stale" in out.getvalue()  # the diff shows what the guide says now
    assert guide.read_bytes() == original, "--check wrote the guide"

    assert make_guides.regenerate(demo, tmp_path, ("guide-x.md",), out=io.StringIO()) == 0
    text = guide.read_text(encoding="utf-8")
    assert text.startswith(top + f"<!-- output: {query} -->\n```console\n$ {query}\n")
    assert text.endswith("<!-- end output -->\n" + bottom)
    assert "insufficient_data" in text and "stale" not in text
    assert make_guides.check(demo, tmp_path, ("guide-x.md",), out=io.StringIO()) == 0


def test_input_files_feed_the_commands_after_them(demo, tmp_path):
    guide = tmp_path / "guide-t.md"
    guide.write_text(
        "<!-- input: file notes/t.md -->\n```markdown\n# Mine\n\nkept\n```\n<!-- end input -->\n"
        "<!-- output: grpo tracker --path notes/t.md -->\n<!-- end output -->\n"
        "<!-- output: file notes/t.md -->\n<!-- end output -->\n",
        encoding="utf-8",
    )
    [r] = make_guides.render_all(demo, tmp_path, ("guide-t.md",))
    tracker_out, page = (b.new for b in r.blocks)
    assert "updated notes/t.md: 7 runs" in tracker_out
    assert page.startswith("```markdown\n# Mine\n\nkept\n\n<!-- grpo tracker: begin")
    assert "snapshot published <published_at>" in page  # normalised
    assert not (tmp_path / "notes").exists(), "the command ran outside its scratch folder"


@pytest.mark.parametrize(
    "text, message",
    [
        ("<!-- output: grpo check -->\nno end\n", "has no <!-- end output --> after it"),
        ("<!-- end output -->\n", "without a begin marker"),
        ("<!-- output: grpo demo --json -->\n<!-- end output -->\n", "the demo is built once"),
        ("<!-- output: ls -la -->\n<!-- end output -->\n", "names `grpo ARGS` or `file PATH`"),
        ("<!-- output: file ../x.md -->\n<!-- end output -->\n", "must be a relative path inside"),
    ],
)
def test_markers_that_do_not_pair_up_are_refused_naming_the_line(demo, tmp_path, text, message):
    (tmp_path / "guide-bad.md").write_text("intro\n" + text, encoding="utf-8")
    with pytest.raises(make_guides.GuideError, match="guide-bad.md:2: .*" + re.escape(message)):
        make_guides.render_guide(tmp_path / "guide-bad.md", demo)
