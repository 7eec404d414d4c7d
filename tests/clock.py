"""The instant every generated test dataset ends at, so no outcome depends on when the suite runs.

The demo's 24 hours of events, and the windows tests ask about, end at
`DEMO_END`. The default is the hour a fresh clone once failed at (events of
the last day, 23:23 UTC). `GRPO_TEST_DEMO_END` (ISO-8601, UTC unless an
offset is given) moves it, to run the whole suite as if it were another hour:

    GRPO_TEST_DEMO_END=2028-02-29T00:05Z uv run pytest
"""

from __future__ import annotations

import datetime as dt
import os

DEFAULT_DEMO_END = "2026-12-05T23:23:00Z"


def demo_end() -> dt.datetime:
    raw = os.environ.get("GRPO_TEST_DEMO_END") or DEFAULT_DEMO_END
    ts = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    ts = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
    return ts.replace(second=0, microsecond=0)


DEMO_END = demo_end()
DEMO_END_ISO = DEMO_END.isoformat().replace("+00:00", "Z")
