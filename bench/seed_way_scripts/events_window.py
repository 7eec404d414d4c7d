"""The playbook's way, a question about a window of events: Axiom's APL query API into pandas.

    python events_window.py DATASET QUESTION SINCE UNTIL   (AXIOM_TOKEN, AXIOM_URL in the environment)

QUESTION: rollout_p95 | error_rate | extraction_rate | health. The APL asks for the
window's events in time order (pages of 50,000, each resuming at the last `_time`
seen); pandas computes the answer. Prints JSON.
"""

import json
import os
import sys
from datetime import datetime

import pandas as pd
from axiom_py import AplOptions, Client

dataset, question, since, until = sys.argv[1:5]
client = Client(token=os.environ["AXIOM_TOKEN"], url=os.environ.get("AXIOM_URL"))
frames, lo, seen = [], since, set()
while True:
    apl = (
        f"['{dataset}'] | where _time >= datetime({lo}) and _time < datetime({until}) | sort by _time asc | limit 50000"
    )
    opts = AplOptions(start_time=datetime.fromisoformat(lo), end_time=datetime.fromisoformat(until))
    table = client.query(apl, opts).tables[0]
    page = pd.DataFrame(dict(zip([f.name for f in table.fields], table.columns or [], strict=True)))
    fresh = page[~page["_rowId"].isin(seen)] if len(page) else page
    frames.append(fresh)
    if len(page) < 50000:
        break
    lo = page["_time"].iloc[-1]
    seen = set(page.loc[page["_time"] == lo, "_rowId"])
df = pd.concat(frames, ignore_index=True)
df["_time"] = pd.to_datetime(df["_time"], utc=True, format="ISO8601")

if question == "rollout_p95":
    r = df[(df["event"] == "rollout") & df["duration_s"].notna()]
    answer = {"count": len(r), "p95_s": float(r["duration_s"].quantile(0.95))}
elif question == "error_rate":
    r = df[df["event"] == "rollout"]
    failed = int((r["status"] != "ok").sum())
    answer = {"rollouts": len(r), "failed_rollouts": failed, "error_rate": failed / len(r) if len(r) else None}
elif question == "extraction_rate":
    x = df[df["event"] == "extraction"]
    expected, extracted = int(x["orders_expected"].sum()), int(x["orders_extracted"].sum())
    answer = {"orders_expected": expected, "orders_extracted": extracted, "extraction_rate": extracted / expected}
else:  # health: each component's last heartbeat before the window's end
    h = df[df["event"] == "heartbeat"].sort_values("_time")
    last = h.groupby("component")["_time"].max()
    answer = {"components": {c: t.isoformat() for c, t in last.items()}}
print(json.dumps(answer))
