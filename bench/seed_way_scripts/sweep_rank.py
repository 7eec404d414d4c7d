"""The playbook's way, one sweep's comparison: every run of the sweep through the W&B API, ranked
by its final gap (newest checkpoint's Elo over base_model, mean of the last 5 evaluations).

    python sweep_rank.py ENTITY/PROJECT SWEEP
"""

import json
import re
import sys

import numpy as np
import pandas as pd
import wandb

project, sweep = sys.argv[1], sys.argv[2]
api = wandb.Api()
ranked = []
for run in api.runs(project, filters={"sweep": sweep}):
    df = pd.DataFrame(run.scan_history()).sort_values("_step")
    ckpts = {c: int(m.group(1)) for c in df.columns if (m := re.match(r"^elo/(?:checkpoint|ckpt|step)[-_](\d+)$", c))}
    if not ckpts or "elo/base_model" not in df:
        ranked.append({"run": run.name, "gap_final": None})
        continue
    cols = sorted(ckpts, key=ckpts.get)
    newest = df[cols].apply(lambda r: r.dropna().iloc[-1] if r.notna().any() else np.nan, axis=1)
    gap = (newest - df["elo/base_model"]).dropna()
    ranked.append({"run": run.name, "gap_final": float(gap.tail(5).mean()) if len(gap) else None})
ranked.sort(key=lambda r: (r["gap_final"] is None, -(r["gap_final"] or 0.0), r["run"]))
print(json.dumps({"sweep": sweep, "runs": ranked}))
