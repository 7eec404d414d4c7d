"""The Dagster UI shows the demo warehouse: asset graph raw → staging → marts, and check results.

One module-scoped setup (about 1.5–2.5 min on 2 cores):

* a Dagster instance in a temporary DAGSTER_HOME holding the repo's dagster.yaml;
* `dagster-webserver -m pipelines.definitions` on a free loopback port, started
  in its own process group (the webserver alone, no daemon: nothing but the
  demo build writes to the instance, so no sensor or schedule run can change
  what is asserted);
* meanwhile `grpo demo --json` with the same DAGSTER_HOME, so the job's
  materializations and check evaluations land in the instance the webserver reads.

Then the webserver's GraphQL endpoint is asked for the asset graph and the
latest check evaluations, and headless Chromium renders four pages, each once,
giving both a screenshot (tmp_path) and the rendered DOM that is asserted on.
Skipped when Chromium is not installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clock import DEMO_END_ISO
from tests.ui_helpers import (
    Capture,
    Page,
    capture,
    find_chromium,
    free_port,
    graphql,
    png_facts,
    start_group,
    stop_group,
    tail,
    wait_for_http,
)

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.browser,
    # Checked before any fixture runs, so a machine without Chromium spends nothing here.
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"),
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOCATION = "pipelines.definitions"
SERVER_WAIT_S = 120
WINDOW = (2200, 1300)  # room enough that the lineage graph draws full nodes, not minimal ones

RAW_TO_MART = {  # the upstream graph of fct_rollout_timing_by_run: (group, asset key)
    ("raw", "raw/axiom_events"),
    ("raw", "raw/wandb_runs"),
    ("staging", "stg_axiom__events"),
    ("staging", "stg_wandb__runs"),
    ("marts", "fct_rollout_timing_by_run"),
}


@dataclass
class UI:
    base: str
    root: Path
    demo: dict
    timings: dict[str, float]


@pytest.fixture(scope="module")
def chromium() -> str:
    assert CHROMIUM is not None
    return CHROMIUM


@pytest.fixture(scope="module")
def ui(chromium, tmp_path_factory, dbt_manifest) -> Iterator[UI]:
    """A demo warehouse built into a fresh Dagster instance, and a webserver reading that instance."""
    started = time.monotonic()
    root = tmp_path_factory.mktemp("dagster_ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    # The "Join the Dagster community" dialog would cover the first page; mark it as seen
    # the way the webserver itself does once someone dismisses it.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    warehouse = root / "warehouse"
    sources = warehouse / "demo_sources"  # where `grpo demo` writes its sources (checked below)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "GRPO_WAREHOUSE": str(warehouse),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    server_env = {**env, "GRPO_WANDB_DIRS": str(sources / "wandb"), "GRPO_EVENT_PATHS": str(sources / "events")}
    log = root / "webserver.log"
    # The manifest exists (dbt_manifest fixture), so neither process below re-parses dbt.
    server = start_group(
        [str(BIN / "dagster-webserver"), "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
        env=server_env,
        cwd=PROJECT_ROOT,
        log_path=log,
    )
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "grpo"), "--warehouse", str(warehouse), "demo", "--end-time", DEMO_END_ISO, "--json"],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=400,
        )
        timings["demo"] = time.monotonic() - t0
        assert proc.returncode == 0, (
            f"grpo demo exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
        demo = json.loads(proc.stdout)
        assert demo["success"], demo["errors"]
        assert demo["demo"]["wandb_dirs"] == [server_env["GRPO_WANDB_DIRS"]]
        assert demo["demo"]["events_dir"] == server_env["GRPO_EVENT_PATHS"]
        wait_for_http(f"{base}/server_info", proc=server, timeout_s=SERVER_WAIT_S, log_path=log)
        timings["ready"] = time.monotonic() - started
        yield UI(base, root, demo, timings)
    finally:
        stop_group(server)
        print(f"\nDagster UI test timings: {timings}; webserver log tail:\n{tail(log, 800)}")


@pytest.fixture(scope="module")
def pages(ui, chromium) -> dict[str, Capture]:
    """Each page rendered once in headless Chromium: screenshot + DOM."""
    shots = ui.root / "screenshots"
    shots.mkdir()

    def names(p: Page) -> set[str]:
        return {e.text() for e in p.by_class_prefix("AssetNode_assetName__")}

    specs = {
        "asset_graph": (
            "/assets/fct_rollout_timing_by_run?view=lineage&lineageScope=upstream&lineageDepth=2",
            lambda p: {"fct_rollout_timing_by_run", "stg_axiom__events", "axiom_events"} <= names(p),
        ),
        "global_lineage": (
            "/asset-groups",
            lambda p: len(p.by_class_prefix("CollapsedGroupNode_collapsedGroupNodeBox__")) >= 5,
        ),
        "checks_passed": (
            "/assets/fct_rollout_timing_by_run?view=checks&checkDetail=rollout_p95_per_run",
            lambda p: "Evaluation result" in p.text(),
        ),
        "checks_failed": (
            "/assets/fct_rollout_timing_hourly?view=checks&checkDetail=rollout_p95_per_hour",
            lambda p: "Evaluation result" in p.text(),
        ),
    }
    t0 = time.monotonic()
    # Two browsers at a time: one per core.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(
                capture,
                chromium,
                ui.base + path,
                shots / f"{name}.png",
                profile_root=ui.root,
                ready=ready,
                window=WINDOW,
            )
            for name, (path, ready) in specs.items()
        }
        out = {name: f.result() for name, f in futures.items()}
    ui.timings["chromium"] = time.monotonic() - t0
    return out


# --- GraphQL: the graph and the check results the webserver serves -------------------------

ASSET_GRAPH = """
{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }
"""

CHECKS = """
{
  assetNodes {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization { runId status evaluation { success description } }
        }
      }
    }
  }
  runsOrError { ... on Runs { results { runId jobName status } } }
}
"""


def _key(node: dict) -> str:
    return "/".join(node["assetKey"]["path"])


def test_graphql_asset_graph_runs_raw_to_staging_to_marts(ui):
    nodes = graphql(ui.base, ASSET_GRAPH)["assetNodes"]
    group = {_key(n): n["groupName"] for n in nodes}
    deps = {_key(n): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    for g, key in RAW_TO_MART:
        assert group.get(key) == g, (key, group.get(key))
    assert "raw/axiom_events" in deps["stg_axiom__events"]
    assert "raw/wandb_runs" in deps["stg_wandb__runs"]
    assert {"stg_axiom__events", "stg_wandb__runs"} <= deps["fct_rollout_timing_by_run"]
    assert group["warehouse_snapshot"] == "published"
    assert "fct_rollout_timing_by_run" in deps["warehouse_snapshot"]

    # Layering: staging reads only raw; every mart reaches raw through staging.
    def upstream(key: str, seen: set[str]) -> set[str]:
        for d in deps.get(key, ()):
            if d not in seen:
                seen.add(d)
                upstream(d, seen)
        return seen

    by_group: dict[str, list[str]] = {}
    for k, g in group.items():
        by_group.setdefault(g, []).append(k)
    assert by_group["raw"] and by_group["staging"] and by_group["marts"]
    for k in by_group["staging"]:
        assert deps[k] and all(group[d] == "raw" for d in deps[k]), (k, deps[k])
    for k in by_group["marts"]:
        ups = upstream(k, set())
        assert any(group.get(u) == "raw" for u in ups), k
        assert any(group.get(u) == "staging" for u in ups), k


def test_graphql_latest_check_evaluations_match_the_demo_build(ui):
    data = graphql(ui.base, CHECKS)
    runs = data["runsOrError"]["results"]
    assert [(r["jobName"], r["status"]) for r in runs] == [("build_warehouse", "SUCCESS")]
    run_id = runs[0]["runId"]
    latest = {}
    for n in data["assetNodes"]:
        assert n["assetChecksOrError"]["__typename"] == "AssetChecks", n
        for c in n["assetChecksOrError"]["checks"]:
            latest[(_key(n), c["name"])] = c["executionForLatestMaterialization"]
    missing = [k for k, e in latest.items() if e is None or e["evaluation"] is None]
    assert missing == [], f"checks without a latest evaluation: {missing}"
    assert {e["runId"] for e in latest.values()} == {run_id}
    passed = sum(1 for e in latest.values() if e["evaluation"]["success"])
    failed = sum(1 for e in latest.values() if not e["evaluation"]["success"])
    # The same numbers the CLI reported for the build it ran.
    assert (passed, failed) == (ui.demo["checks"]["passed"], ui.demo["checks"]["failed"])
    for key, want_status, want_success in (
        (("fct_rollout_timing_by_run", "rollout_p95_per_run"), "SUCCEEDED", True),
        (("fct_rollout_timing_hourly", "rollout_p95_per_hour"), "FAILED", False),
        (("fct_extraction_by_run", "extraction_rate_per_run"), "FAILED", False),
        (("fct_training_stability", "kl_no_spikes"), "FAILED", False),
    ):
        assert latest[key]["status"] == want_status, (key, latest[key])
        assert latest[key]["evaluation"]["success"] is want_success, (key, latest[key])
    # dbt tests are asset checks too.
    assert latest[("fct_rollout_timing_by_run", "unique_fct_rollout_timing_by_run_run_id")]["status"] == "SUCCEEDED"


# --- the rendered pages -------------------------------------------------------------------


def _assert_real_screenshot(cap: Capture) -> None:
    facts = png_facts(cap.png)
    assert facts["magic_ok"], cap.png
    assert facts["size"] == WINDOW, facts
    assert facts["bytes"] > 30_000, facts
    # A blank or error page is one or two colours; a rendered Dagster page has many.
    assert facts["distinct_colors"] > 100 and facts["dominant_share"] < 0.95, facts


def test_asset_graph_page_renders_raw_staging_and_marts_nodes(pages):
    cap = pages["asset_graph"]
    _assert_real_screenshot(cap)
    page = cap.page
    nodes = {e.text(): e for e in page.by_class_prefix("AssetNode_assetNodeBox__")}
    names = {e.text() for e in page.by_class_prefix("AssetNode_assetName__")}

    def shown(name: str, label: str) -> bool:
        """The UI shortens a long name to fit its node: "fct_rollou…_by_run"."""
        head, _, tail = label.partition("…")
        return label == name or (bool(_) and name.startswith(head) and name.endswith(tail))

    for name in ("axiom_events", "wandb_runs", "stg_axiom__events", "stg_wandb__runs", "fct_rollout_timing_by_run"):
        assert any(shown(name, label) for label in names), (name, names)
    groups = {e.text() for e in page.by_class_prefix("ExpandedGroupNode_groupNodeHeaderBox__")}
    assert {"raw", "staging", "marts"} <= {g.split()[0] for g in groups if g}, groups
    # Edges are SVG paths with an arrow marker inside the graph's SVG.
    svg = page.by_class_prefix("AssetNodeLineageGraph_sVGContainer__")
    assert svg, "no lineage graph SVG"
    edges = [e for e in svg[0].iter() if e.tag == "path" and e.attrs.get("marker-end")]
    assert len(edges) >= 4, len(edges)
    # Each node box shows its materialization and its checks' results.
    mart = next(
        (
            text
            for text in nodes
            if any(text.startswith(label) and shown("fct_rollout_timing_by_run", label) for label in names)
        ),
        None,
    )
    assert mart is not None, (list(nodes), names)
    assert "Materialized" in mart and re.search(r"Asset checks (\d+) / \1 Passed", mart), mart


def test_global_lineage_shows_every_layer(pages):
    cap = pages["global_lineage"]
    _assert_real_screenshot(cap)
    groups = {e.text() for e in cap.page.by_class_prefix("CollapsedGroupNode_collapsedGroupNodeBox__")}
    # a group box reads its name, then (when there is room) its asset counts: "marts 24 5"
    assert {"raw", "staging", "intermediate", "marts", "published"} <= {g.split()[0] for g in groups if g}, groups
    assert "Join the Dagster community" not in cap.page.text()


def test_checks_tab_shows_a_passing_target_check(pages):
    cap = pages["checks_passed"]
    _assert_real_screenshot(cap)
    page = cap.page
    selected = page.by_class_prefix("AssetChecks_checkRowSelected__")
    assert selected and selected[0].text() == "rollout_p95_per_run Succeeded", [s.text() for s in selected]
    rows = {e.text() for e in page.by_class_prefix("AssetChecks_checkRow__")}
    assert len(rows) == 4 and all(r.endswith("Succeeded") for r in rows), rows
    text = page.text()
    assert "Each run's rollout duration p95 is below the target." in text
    assert re.search(r"all \d+ runs meet the target", text), text[:2000]
    assert re.search(r"Evaluation result Passed\b", text), text[:2000]


def test_checks_tab_shows_the_failing_slow_hour(pages, ui):
    cap = pages["checks_failed"]
    _assert_real_screenshot(cap)
    page = cap.page
    selected = page.by_class_prefix("AssetChecks_checkRowSelected__")
    assert selected and selected[0].text() == "rollout_p95_per_hour Failed", [s.text() for s in selected]
    text = page.text()
    # Same description GraphQL gives for the latest evaluation.
    data = graphql(
        ui.base,
        """{ assetNodeOrError(assetKey: {path: ["fct_rollout_timing_hourly"]}) { ... on AssetNode {
             assetChecksOrError { ... on AssetChecks { checks { name
               executionForLatestMaterialization { evaluation { description } } } } } } } }""",
    )
    checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
    desc = next(c for c in checks if c["name"] == "rollout_p95_per_hour")["executionForLatestMaterialization"][
        "evaluation"
    ]["description"]
    assert re.fullmatch(r"1 of \d+ hours miss the target", desc), desc
    assert desc in text
    assert re.search(r"Evaluation result Failed\b", text), text[:2000]
