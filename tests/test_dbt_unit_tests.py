"""dbt `unit_tests:` (hand-checkable given/expect rows for every metric computation) pass.

The Dagster build skips them (they test SQL, not data), so the suite runs the
whole project here once: on an empty warehouse every model builds, every data
test and every unit test passes.
"""

import re

from pipelines.raw.layer import Warehouse
from tests.dbt_harness import dbt_build


def test_the_whole_project_builds_on_an_empty_warehouse_and_every_unit_test_passes(tmp_path):
    wh = Warehouse(tmp_path / "wh").ensure()
    out = dbt_build(wh).stdout
    done = re.search(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+)", out)
    assert done, out[-2000:]
    assert int(done.group(3)) == 0 and int(done.group(4)) == 0
    unit_passed = len(re.findall(r"PASS \S+::\S+", out))
    assert unit_passed >= 30, out[-3000:]
