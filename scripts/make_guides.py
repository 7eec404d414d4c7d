"""Regenerate the command outputs quoted in the guides (docs/guide-*.md) from a fresh demo warehouse.

Every command output in a guide sits between two marker comments, and only the
text between them is generated; everything outside the markers is written by
hand and kept byte for byte:

    <!-- output: grpo elo lr-sweep-2 -->
    ```console
    $ grpo elo lr-sweep-2
    ... what the command printed ...
    ```
    <!-- end output -->

The script builds the demo in a temporary warehouse at one fixed end time
(`grpo --warehouse TMP demo --end-time 2026-12-05T23:23Z --json`), runs each
marked command with the `grpo` executable next to this Python (environment:
COLUMNS=120, GRPO_WAREHOUSE=TMP, nothing of the shell's GRPO_/DAGSTER_/WANDB_/
AXIOM_/DBT_ settings), and writes its output between the markers.

Marker forms (a marker is a line of its own):

- `<!-- output: grpo ARGS -->`: what `grpo ARGS` printed (stdout and stderr, as a
  terminal shows them), with `[exit code N]` when N is not 0. ARGS are split as
  a POSIX shell would (shlex). Each guide's commands run one after another in
  a scratch folder of their own, so a relative `--path` lands there, never in
  the repository.
- `<!-- output: grpo demo --end-time 2026-12-05T23:23Z --json -->`: the build's
  own `--json` answer (it is not run twice), keys DEMO_KEYS and DEMO_MANIFEST_KEYS
  only, indented. Its `checks` counts are left out: they include the Dagster
  freshness check `events_fresh`, which compares the newest event with the
  wall clock.
- `<!-- output: file PATH -->`: a file of the guide's scratch folder, e.g. the
  tracker page `grpo tracker --path PATH` wrote there.
- `<!-- input: file PATH -->` + a fenced block + `<!-- end input -->`: written by
  hand; the fenced text is written to PATH in the scratch folder before the
  blocks after it run (a tracker page with notes, say).

Normalised, because it legitimately differs from one build to the next:
the snapshot's `published_at`, the runs' `latest_run_ingest`/`ingested_at` and
`started_at` (wall-clock instants of the build; exact values read from the
warehouse, plus the same keys in any JSON) become `<published_at>`,
`<latest_run_ingest>`, `<started_at>`; the temporary warehouse and folders
become `<warehouse>` and `<tmp>`; durations (`"seconds": 5.5`) become
`<seconds>`; wandb's run-folder start times (`offline-run-20261206_011932-…`)
become `offline-run-<start>-…`. Colour codes are dropped and trailing spaces
trimmed (editors strip them; rich pads table lines with them).

Usage:

    uv run python scripts/make_guides.py           # rewrite the blocks in place
    uv run python scripts/make_guides.py --check   # exit 1 listing the blocks that differ; writes nothing
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as dt
import difflib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GUIDES = (
    "guide-learning-dynamics.md",
    "guide-pipeline-performance.md",
    "guide-experiment-tracker.md",
    "guide-analysis-walkthrough.md",
)
GRPO = Path(sys.executable).with_name("grpo")
DEMO_END = "2026-12-05T23:23Z"
DEMO_ARGS = ("demo", "--end-time", DEMO_END, "--json")
COLUMNS = "120"

# What the demo block quotes of `grpo demo --json` (in this order).
DEMO_KEYS = ("runs", "history_rows", "events", "rejected", "success", "errors", "warnings")
DEMO_MANIFEST_KEYS = {
    "now": None,
    "runs": ("name", "run_id", "sweep", "intended_verdict", "final_gap", "n_eval_points", "segments"),
    "sweeps": None,
    "events": (
        "window_start",
        "window_end",
        "counts",
        "bad_lines",
        "bad_line_locations",
        "slow_hour",
        "slow_hour_p95_s",
        "error_hour",
        "error_hour_rate",
        "extraction_problem",
        "silent_component",
    ),
}

OUTPUT_MARKER = re.compile(r"^<!-- output: (?P<spec>.+?) -->$")
END_OUTPUT = "<!-- end output -->"
INPUT_MARKER = re.compile(r"^<!-- input: file (?P<path>\S+) -->$")
END_INPUT = "<!-- end input -->"

SCRUBBED_PREFIXES = ("GRPO_", "DAGSTER_", "WANDB_", "AXIOM_", "DBT_")
# Variables that make rich or click colour piped output, or change its size.
SCRUBBED_NAMES = ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
INSTANT_KEYS = {
    "published_at": "<published_at>",
    "latest_run_ingest": "<latest_run_ingest>",
    "ingested_at": "<latest_run_ingest>",
    "started_at": "<started_at>",
}


class GuideError(RuntimeError):
    """A guide's markers do not pair up, or a block cannot be generated."""


# --- the demo warehouse ---------------------------------------------------------------


@dataclasses.dataclass
class Demo:
    """A demo warehouse built at DEMO_END, with what normalising its answers needs."""

    tmp: Path  # everything temporary lives under this folder
    warehouse: Path
    env: dict[str, str]
    summary: dict[str, Any]  # `grpo demo --json`
    replacements: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def _env(tmp: Path, warehouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES) and k not in SCRUBBED_NAMES}
    home = tmp / "env"
    for sub in ("wandb_config", "wandb_cache", "wandb_data", "wandb_dir"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        GRPO_WAREHOUSE=str(warehouse),
        COLUMNS=COLUMNS,
        NO_COLOR="1",
        PYTHONIOENCODING="utf-8",
        DAGSTER_DISABLE_TELEMETRY="1",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_CONFIG_DIR=str(home / "wandb_config"),
        WANDB_CACHE_DIR=str(home / "wandb_cache"),
        WANDB_DATA_DIR=str(home / "wandb_data"),
        WANDB_DIR=str(home / "wandb_dir"),
    )
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> tuple[str, int]:
    proc = subprocess.run(
        [str(GRPO), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
    )
    return proc.stdout.decode("utf-8", errors="replace"), proc.returncode


def _query(demo: Demo, sql: str) -> list[dict[str, Any]]:
    out, code = _run(["sql", sql, "--json"], demo.env, demo.tmp)
    if code != 0:
        raise GuideError(f"grpo sql {sql!r} exited {code}:\n{out}")
    return json.loads(out)


def build_demo(tmp: Path) -> Demo:
    """`grpo --warehouse TMP demo --end-time DEMO_END --json` in `tmp`, then what normalising needs."""
    tmp = Path(tmp)
    warehouse = tmp / "warehouse"
    env = _env(tmp, warehouse)
    out, code = _run(["--warehouse", str(warehouse), *DEMO_ARGS], env, tmp, timeout=900)
    if code != 0:
        raise GuideError(f"grpo demo exited {code}:\n{out[-4000:]}")
    try:
        summary = json.loads(out)
    except ValueError:
        raise GuideError(f"grpo demo --json did not print JSON:\n{out[-4000:]}") from None
    demo = Demo(tmp=tmp, warehouse=warehouse, env=env, summary=summary)
    demo.replacements = _replacements(demo)
    return demo


def _instant_forms(text: str | None) -> list[str]:
    """An ISO-8601 instant as the answers print it: `…Z` (JSON, freshness lines) and `… +00:00` (SQL tables)."""
    if not text:
        return []
    ts = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    return sorted({text, ts.isoformat().replace("+00:00", "Z"), str(ts)}, key=len, reverse=True)


def _replacements(demo: Demo) -> list[tuple[str, str]]:
    """(text, placeholder) pairs, longest text first: instants of this build, then temporary paths."""
    pairs: list[tuple[str, str]] = []
    for snap in _query(demo, "select published_at, latest_run_ingest from _snapshot"):
        pairs += [(f, "<published_at>") for f in _instant_forms(snap["published_at"])]
        pairs += [(f, "<latest_run_ingest>") for f in _instant_forms(snap["latest_run_ingest"])]
    for run in _query(demo, "select started_at, ingested_at from stg_wandb__runs"):
        pairs += [(f, "<started_at>") for f in _instant_forms(run["started_at"])]
        pairs += [(f, "<latest_run_ingest>") for f in _instant_forms(run["ingested_at"])]
    paths = [(demo.warehouse, "<warehouse>"), (demo.tmp, "<tmp>")]
    for path, name in paths:
        for form in {str(path), os.path.realpath(path)}:
            pairs.append((form, name))
    seen: dict[str, str] = {}
    for text, name in pairs:
        seen.setdefault(text, name)
    # Paths: warehouse before tmp (it lies inside it); instants: any order (none contains another).
    return sorted(seen.items(), key=lambda kv: (not kv[1].startswith("<warehouse"), -len(kv[0])))


def normalise(text: str, demo: Demo) -> str:
    """The output with what differs between two builds replaced by placeholders, lines right-trimmed."""
    text = ANSI.sub("", text).replace("\r\n", "\n")
    for old, new in demo.replacements:
        text = text.replace(old, new)
    for key, name in INSTANT_KEYS.items():
        text = re.sub(rf'("{key}":\s*)"[^"<]*"', rf'\1"{name}"', text)
    text = re.sub(r'("seconds":\s*)-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?', r'\1"<seconds>"', text)
    text = re.sub(r"offline-run-\d{8}_\d{6}-", "offline-run-<start>-", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


# --- parsing and rendering a guide ---------------------------------------------------------


@dataclasses.dataclass
class Block:
    guide: str
    line: int  # 1-based line of the begin marker
    marker: str  # the begin marker's text
    old: str  # text between the markers now
    new: str = ""  # text generated for it

    @property
    def label(self) -> str:
        return f"{self.guide}:{self.line}: {self.marker}"


@dataclasses.dataclass
class Rendered:
    path: Path
    old_text: str
    new_text: str
    blocks: list[Block]

    @property
    def stale(self) -> list[Block]:
        return [b for b in self.blocks if b.old != b.new]


def _fence(content: str, info: str) -> tuple[str, str]:
    longest = max((len(m) for m in re.findall(r"`+", content)), default=0)
    ticks = "`" * max(3, longest + 1)
    return ticks + info, ticks


def _fenced_text(lines: list[str], where: str) -> str:
    """The text inside the one fenced code block `lines` hold (an input block's content)."""
    body = [ln.rstrip("\r\n") for ln in lines]
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    opening = re.match(r"^(`{3,}|~{3,})", body[0]) if body else None
    closing = body[-1].strip() if len(body) >= 2 else ""
    if not opening or len(closing) < len(opening[1]) or closing != opening[1][0] * len(closing):
        raise GuideError(f"{where}: an input block holds one fenced code block (``` … ```)")
    return "\n".join(body[1:-1]) + "\n"


def _scratch_path(cwd: Path, rel: str, where: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise GuideError(f"{where}: {rel!r} must be a relative path inside the guide's scratch folder")
    return cwd / p


def _generate(spec: str, demo: Demo, cwd: Path, where: str) -> str:
    """The text that belongs between an output marker and its end marker (fences included)."""
    if spec.startswith("file "):
        path = _scratch_path(cwd, spec[5:].strip(), where)
        if not path.is_file():
            raise GuideError(f"{where}: {spec[5:].strip()} does not exist (a command above must write it)")
        content = normalise(path.read_text(encoding="utf-8"), demo)
        start, end = _fence(content, "markdown")
        return f"{start}\n{content}\n{end}\n"
    try:
        argv = shlex.split(spec)
    except ValueError as exc:
        raise GuideError(f"{where}: cannot split {spec!r}: {exc}") from None
    if not argv or argv[0] != "grpo":
        raise GuideError(f"{where}: an output marker names `grpo ARGS` or `file PATH`, not {spec!r}")
    args = argv[1:]
    if args and args[0] == "demo":
        if tuple(args) != DEMO_ARGS:
            raise GuideError(f"{where}: the demo is built once, as `grpo {' '.join(DEMO_ARGS)}`; quote that command")
        output, code = _json_lines(_demo_excerpt(demo.summary)), 0
    else:
        output, code = _run(args, demo.env, cwd)
    content = f"$ {spec}\n{normalise(output, demo)}"
    if code:
        content += f"\n[exit code {code}]"
    start, end = _fence(content, "console")
    return f"{start}\n{content}\n{end}\n"


def _json_lines(value: Any, indent: int = 0, width: int = 100) -> str:
    """JSON indented by 2 like `json.dumps(indent=2)`, but any value that fits in `width` stays on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if indent + len(flat) <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(k, ensure_ascii=False)}: {_json_lines(v, indent + 2, width)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _json_lines(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _demo_excerpt(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: summary.get(k) for k in DEMO_KEYS}
    manifest = summary.get("demo") or {}
    demo: dict[str, Any] = {}
    for key, sub in DEMO_MANIFEST_KEYS.items():
        value = manifest.get(key)
        if sub is None:
            demo[key] = value
        elif isinstance(value, list):
            demo[key] = [{k: item.get(k) for k in sub} for item in value]
        else:
            demo[key] = {k: (value or {}).get(k) for k in sub}
    out["demo"] = demo
    return out


def render_guide(path: Path, demo: Demo) -> Rendered:
    """The guide at `path` with every output block regenerated; nothing is written."""
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GuideError(f"{path}: no such guide") from None
    nl = "\r\n" if text.split("\n", 1)[0].endswith("\r") else "\n"  # write blocks in the file's line endings
    lines = text.splitlines(keepends=True)
    cwd = demo.tmp / "scratch" / path.stem
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)

    out: list[str] = []
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        where = f"{name}:{i + 1}"
        out_m, in_m = OUTPUT_MARKER.match(stripped), INPUT_MARKER.match(stripped)
        if stripped in (END_OUTPUT, END_INPUT):
            raise GuideError(f"{where}: {stripped} without a begin marker above it")
        if not (out_m or in_m):
            out.append(lines[i])
            i += 1
            continue
        end_marker = END_OUTPUT if out_m else END_INPUT
        j = i + 1
        while j < len(lines) and lines[j].strip() != end_marker:
            if OUTPUT_MARKER.match(lines[j].strip()) or INPUT_MARKER.match(lines[j].strip()):
                raise GuideError(f"{where}: {stripped} has no {end_marker} before the next marker (line {j + 1})")
            j += 1
        if j == len(lines):
            raise GuideError(f"{where}: {stripped} has no {end_marker} after it")
        inner = lines[i + 1 : j]
        if in_m:
            target = _scratch_path(cwd, in_m["path"], where)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_fenced_text(inner, where), encoding="utf-8")
            out += lines[i : j + 1]
        else:
            new = _generate(out_m["spec"], demo, cwd, where).replace("\n", nl)
            for marker in (END_OUTPUT, END_INPUT):
                if any(ln.strip() == marker for ln in new.splitlines()):
                    raise GuideError(f"{where}: the output holds a line {marker}; it cannot be quoted between markers")
            blocks.append(Block(name, i + 1, stripped, "".join(inner), new))
            out += [lines[i], new, lines[j]]
        i = j + 1
    return Rendered(path, text, "".join(out), blocks)


def render_all(demo: Demo, docs: Path = DOCS, names: tuple[str, ...] = GUIDES) -> list[Rendered]:
    """Every guide rendered (guides run concurrently, each one's commands in order)."""
    workers = max(1, min(len(names), os.cpu_count() or 1, 4))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda n: render_guide(Path(docs) / n, demo), names))


def stale_report(rendered: list[Rendered], context_lines: int = 40) -> list[str]:
    """One entry per block whose text differs from what the commands print now: its label and a short diff."""
    report = []
    for r in rendered:
        for b in r.stale:
            diff = list(
                difflib.unified_diff(
                    b.old.splitlines(), b.new.splitlines(), "in the guide", "generated now", lineterm="", n=1
                )
            )
            shown = diff[:context_lines] + (
                [f"... ({len(diff) - context_lines} more diff lines)"] if len(diff) > context_lines else []
            )
            report.append(b.label + "\n" + "\n".join("    " + ln for ln in shown))
    return report


def write(rendered: list[Rendered]) -> list[Path]:
    """Write the guides whose text changed; the paths written."""
    written = []
    for r in rendered:
        if r.new_text != r.old_text:
            r.path.write_text(r.new_text, encoding="utf-8", newline="")
            written.append(r.path)
    return written


def check(demo: Demo, docs: Path = DOCS, names: tuple[str, ...] = GUIDES, out=None) -> int:
    """`--check`: 0 when every block matches what its command prints now; else 1, listing the blocks. Writes nothing."""
    out = out or sys.stdout
    rendered = render_all(demo, docs, names)
    n_blocks = sum(len(r.blocks) for r in rendered)
    report = stale_report(rendered)
    if report:
        print(
            f"{len(report)} of {n_blocks} output blocks differ from what the commands print now "
            "(regenerate: uv run python scripts/make_guides.py, then review the text around them):",
            file=out,
        )
        for entry in report:
            print(entry, file=out)
        return 1
    print(f"all {n_blocks} output blocks of {len(rendered)} guides are up to date", file=out)
    return 0


def regenerate(demo: Demo, docs: Path = DOCS, names: tuple[str, ...] = GUIDES, out=None) -> int:
    """Rewrite the blocks in place (only files whose text changes are written)."""
    out = out or sys.stdout
    rendered = render_all(demo, docs, names)
    write(rendered)
    for r in rendered:
        shown = r.path.relative_to(REPO) if r.path.is_relative_to(REPO) else r.path
        print(f"{shown}: {len(r.stale)} of {len(r.blocks)} output blocks updated", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 listing the blocks that differ; write nothing")
    args = parser.parse_args(argv)
    if not GRPO.exists():
        print(
            f"no grpo executable next to {sys.executable}: run `uv run python scripts/make_guides.py`", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="grpo-guides-") as tmp:
        print(f"building the demo (grpo {' '.join(DEMO_ARGS)}) in a temporary warehouse …", file=sys.stderr)
        try:
            demo = build_demo(Path(tmp))
            return check(demo) if args.check else regenerate(demo)
        except GuideError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
