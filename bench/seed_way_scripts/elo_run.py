"""The playbook's way, one run's Elo analysis: the W&B API's history of the run into pandas.

    python elo_run.py ENTITY/PROJECT RUN_NAME   (WANDB_API_KEY, WANDB_BASE_URL in the environment)

Prints JSON: each fixed reference's first/last/delta and fitted slope, the newest
checkpoint's gap over base_model (its last value and the mean of the last 5).
"""

import json
import re
import sys

import numpy as np
import pandas as pd
import wandb

project, name = sys.argv[1], sys.argv[2]
api = wandb.Api()
(run,) = api.runs(project, filters={"display_name": name})
df = pd.DataFrame(run.scan_history()).sort_values("_step")

elo = {c[len("elo/") :]: c for c in df.columns if c.startswith("elo/")}
references = []
for player in sorted(p for p in elo if p == "base_model" or p.endswith("_bot")):
    s = df[["_step", elo[player]]].dropna()
    slope = np.polyfit(s["_step"], s[elo[player]], 1)[0] * 100 if len(s) > 1 else None
    first, last = float(s[elo[player]].iloc[0]), float(s[elo[player]].iloc[-1])
    references.append(
        {"player": player, "n_points": len(s), "first": first, "last": last, "delta": last - first, "slope": slope}
    )

ckpts = {p: int(m.group(1)) for p in elo if (m := re.match(r"^(?:checkpoint|ckpt|step)[-_](\d+)$", p))}
newest = df[[elo[p] for p in sorted(ckpts, key=ckpts.get)]].apply(
    lambda r: r.dropna().iloc[-1] if r.notna().any() else np.nan, axis=1
)
gap = (newest - df[elo["base_model"]]).dropna()
print(
    json.dumps(
        {
            "run": name,
            "references": references,
            "gap": {"last": float(gap.iloc[-1]), "final": float(gap.tail(5).mean())},
        }
    )
)
