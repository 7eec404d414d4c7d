"""A loopback stand-in for the W&B GraphQL API, enough for `wandb.Api` 0.31.

The real public client sends its GraphQL through the Go wandb-core sidecar, so
this answers a Go HTTP client: POST /graphql dispatching on
the `query <Name>` text, parquet history exports under /parquet/ with HTTP
Range support, and the telemetry POST that wandb-core sends at shutdown.

Runs live in memory (`FakeRun`): config, summary and a list of history rows.
Tests can append rows between syncs (a growing run) and choose how many of the
first rows are "exported" to parquet; the rest are the live tail that the
client must fetch with HistoryPage queries.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import FakeHTTPServer, Request, Response

_OP = re.compile(r"\b(?:query|mutation)\s+(\w+)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class FakeRun:
    """One run as the server stores it."""

    run_id: str
    display_name: str | None = None
    state: str = "finished"
    group: str | None = None
    job_type: str | None = None
    sweep: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = "2024-01-01T00:00:00"
    heartbeat_at: str = "2024-01-01T00:00:00"
    exported_rows: int = 0  # the first N history rows are in the parquet export
    metric_definitions: list[dict[str, Any]] = field(default_factory=list)  # config `_wandb.m`, as uploaded

    @property
    def last_step(self) -> int | None:
        return max((int(r["_step"]) for r in self.history), default=None)

    def append(self, rows: list[dict[str, Any]]) -> None:
        self.history.extend(rows)


def numeric_points(rows: list[dict[str, Any]]) -> int:
    """Numeric values W&B stores per row (nested dicts flattened), _step/_runtime/_timestamp excluded."""

    def walk(v: Any) -> int:
        if isinstance(v, dict):
            return sum(walk(x) for x in v.values())
        return 1 if isinstance(v, int | float) and not isinstance(v, bool) else 0

    return sum(walk({k: v for k, v in r.items() if k not in ("_step", "_runtime", "_timestamp")}) for r in rows)


def make_rows(
    n: int,
    *,
    start: int = 0,
    t0: float = 1_704_067_200.0,
    nan_every: int = 0,
    sparse_every: int = 0,
) -> list[dict[str, Any]]:
    """Typical training-history rows: numbers, a NaN now and then, nested and text values."""
    rows = []
    for step in range(start, start + n):
        row: dict[str, Any] = {
            "_step": step,
            "_timestamp": t0 + step * 1.5,
            "_runtime": step * 1.5,
            "train/loss": 1.0 / (step + 1),
            "train/reward": float(step % 7) - 3.0,
            "count": step * 3,
            "optim": {"lr": 1e-5 * (1 + step % 3), "grad_norm": 0.5 + step / 1000},
            "phase": "warmup" if step < 5 else "train",
        }
        if nan_every and step % nan_every == 0:
            row["train/reward"] = math.nan
        if sparse_every and step % sparse_every == 0:
            row["eval/accuracy"] = step / (step + 10)
        rows.append(row)
    return rows


class FakeWandbServer(FakeHTTPServer):
    def __init__(self, *, api_key: str, entity: str = "ent", projects: dict[str, list[FakeRun]] | None = None):
        super().__init__()
        self.api_key = api_key
        self.entity = entity
        self.projects: dict[str, list[FakeRun]] = projects if projects is not None else {}
        self.row_group_size = 25  # small, so ranged parquet reads touch several row groups
        self._parquet_cache: dict[tuple[str, str, int, int], bytes] = {}

    # --- test helpers --------------------------------------------------------
    def add_run(self, project: str, run: FakeRun) -> FakeRun:
        self.projects.setdefault(project, []).append(run)
        return run

    def run(self, project: str, run_id: str) -> FakeRun:
        return next(r for r in self.projects[project] if r.run_id == run_id)

    def graphql_ops(self) -> list[str]:
        return [r.op or "?" for r in self.requests(path="/graphql")]

    # --- protocol ------------------------------------------------------------
    def describe(self, request: Request) -> None:
        if request.path == "/graphql" and request.method == "POST":
            request.json = json.loads(request.body)
            m = _OP.search(request.json.get("query") or "")
            request.op = m.group(1) if m else None

    def malformed(self, request: Request) -> Response:
        return Response(200, b'{"data": {"project": ', {"Content-Type": "application/json"})

    def handle(self, request: Request) -> Response:
        if request.path == "/sdk/otel/v1/metrics":
            return Response(404, b"not found")
        if request.path.startswith("/parquet/") and request.method in ("GET", "HEAD"):
            return self._parquet(request)
        if request.path != "/graphql" or request.method != "POST":
            return Response(404, b"not found")
        if not self._authorized(request):
            body = b'{"errors":[{"message":"user is not logged in"}]}'
            return Response(401, body, {"Content-Type": "application/json"})
        handler = getattr(self, f"_op_{request.op}", None)
        if handler is None:
            return _gql_error(f"fake server: unsupported operation {request.op!r}")
        variables = request.json.get("variables") or {}
        data = handler(request, variables)
        if isinstance(data, Response):
            return data
        body = json.dumps({"data": data}).encode()
        return Response(200, body, {"Content-Type": "application/json"})

    def _authorized(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == "api" and key == self.api_key

    # --- operations ------------------------------------------------------------
    def _op_Viewer(self, request: Request, v: dict) -> dict:
        return {
            "viewer": {
                "id": "VXNlcjox",
                "entity": self.entity,
                "username": "tester",
                "email": "tester@example.com",
                "flags": "{}",
                "teams": {"edges": []},
            }
        }

    def _op_GetDefaultEntity(self, request: Request, v: dict) -> dict:
        return {"viewer": {"id": "VXNlcjox", "entity": self.entity}}

    def _project_runs(self, v: dict) -> list[FakeRun] | None:
        if v.get("entity") != self.entity:
            return None
        return self.projects.get(v.get("project"))

    def _op_Runs(self, request: Request, v: dict) -> dict:
        runs = self._project_runs(v)
        if runs is None:
            return {"project": None}
        filters = json.loads(v.get("filters") or "{}")
        matched = [r for r in runs if _matches(r, filters)]
        order = v.get("order") or "+created_at"
        key = {"created_at": lambda r: r.created_at, "heartbeat_at": lambda r: r.heartbeat_at}.get(
            order.lstrip("+-"), lambda r: r.created_at
        )
        matched.sort(key=key, reverse=order.startswith("-"))
        start = int(v["cursor"]) if v.get("cursor") else 0
        per_page = int(v.get("perPage") or 50)
        page = matched[start : start + per_page]
        lightweight = "LightweightRunFragment" in request.json["query"]
        edges = [
            {"node": self._node(r, lightweight=lightweight), "cursor": str(start + i + 1)} for i, r in enumerate(page)
        ]
        end = start + len(page)
        return {
            "project": {
                "internalId": "UHJvamVjdDox",
                "runCount": len(matched),
                "readOnly": False,
                "runs": {"edges": edges, "pageInfo": {"endCursor": str(end), "hasNextPage": end < len(matched)}},
            }
        }

    def _find_run(self, v: dict, name_var: str) -> FakeRun | None | bool:
        runs = self._project_runs(v)
        if runs is None:
            return False
        return next((r for r in runs if r.run_id == v.get(name_var)), None)

    def _op_Run(self, request: Request, v: dict) -> dict:
        run = self._find_run(v, "name")
        if run is False:
            return {"project": None}
        lightweight = "LightweightRunFragment" in request.json["query"]
        return {"project": {"run": self._node(run, lightweight=lightweight) if run else None}}

    def _op_RunHistoryKeys(self, request: Request, v: dict) -> dict:
        run = self._find_run(v, "name")
        if not run:
            return {"project": None if run is False else {"run": None}}
        return {"project": {"run": {"historyKeys": _history_keys(run)}}}

    def _op_RunParquetHistory(self, request: Request, v: dict) -> dict:
        run = self._find_run(v, "runName")
        if not run:
            return {"project": None if run is False else {"run": None}}
        exported = min(run.exported_rows, len(run.history))
        urls = []
        if exported:
            urls = [f"{self.url}/parquet/{self.entity}/{v['project']}/{run.run_id}/{exported}/0.parquet"]
        live = [{"_step": float(r["_step"])} for r in run.history[exported:]]
        return {"project": {"run": {"parquetHistory": {"parquetUrls": urls, "liveData": live}}}}

    def _op_HistoryPage(self, request: Request, v: dict) -> dict:
        run = self._find_run(v, "run")
        if not run:
            return {"project": None if run is False else {"run": None}}
        lo, hi, size = int(v["minStep"]), int(v["maxStep"]), int(v["pageSize"])
        rows = [r for r in run.history if lo <= int(r["_step"]) < hi][:size]
        return {"project": {"run": {"history": [json.dumps(r) for r in rows]}}}

    def _op_SampledHistoryPage(self, request: Request, v: dict) -> dict:
        run = self._find_run(v, "run")
        if not run:
            return {"project": None if run is False else {"run": None}}
        spec = json.loads(v["spec"])
        keys = list(dict.fromkeys(spec["keys"]))
        lo, hi = int(spec.get("minStep", 0)), int(spec.get("maxStep", 2**62))  # maxStep inclusive here
        rows = [
            {k: r[k] for k in keys} for r in run.history if lo <= int(r["_step"]) <= hi and all(k in r for k in keys)
        ][: int(spec.get("samples", 1000))]
        return {"project": {"run": {"sampledHistory": [rows]}}}

    def _op_RunFullHistory(self, request: Request, v: dict) -> dict:
        run = self._find_run(v, "name")
        if not run:
            return {"project": None if run is False else {"run": None}}
        samples = int(v.get("samples") or 500)
        rows = run.history
        if len(rows) > samples:  # sampled, as the real server does: never use this for ingestion
            stride = len(rows) / samples
            rows = [rows[int(i * stride)] for i in range(samples)]
        return {"project": {"run": {"history": [json.dumps(r) for r in rows]}}}

    # --- run nodes -------------------------------------------------------------
    def _node(self, run: FakeRun, *, lightweight: bool) -> dict[str, Any]:
        node: dict[str, Any] = {
            "projectId": "1",
            "id": base64.b64encode(f"Run:{run.run_id}".encode()).decode(),
            "tags": run.tags,
            "name": run.run_id,
            "displayName": run.display_name or run.run_id,
            "sweepName": run.sweep,
            "state": run.state,
            "group": run.group,
            "jobType": run.job_type,
            "commit": None,
            "readOnly": False,
            "createdAt": run.created_at,
            "heartbeatAt": run.heartbeat_at,
            "description": run.notes,
            "notes": run.notes,
            "historyLineCount": len(run.history),
            "user": {"name": "Tester", "username": "tester"},
        }
        if not lightweight:
            config = {k: {"value": v, "desc": None} for k, v in run.config.items()}
            config["_wandb"] = {"value": {"cli_version": "0.31.0", "python_version": "3.11"}}
            if run.metric_definitions:
                config["_wandb"]["value"]["m"] = run.metric_definitions
            last = run.history[-1] if run.history else {}
            summary = {
                **{k: v for k, v in last.items() if not k.startswith("_")},
                **run.summary,
                "_step": run.last_step,
                "_runtime": last.get("_runtime"),
                "_timestamp": last.get("_timestamp"),
                "_wandb": {"runtime": int(last.get("_runtime") or 0)},
            }
            node["config"] = json.dumps(config)
            node["summaryMetrics"] = json.dumps(summary)
            node["systemMetrics"] = json.dumps({"system.gpu.0.memory": 12.5})
            node["historyKeys"] = _history_keys(run)
        return node

    # --- parquet export --------------------------------------------------------
    def export_bytes(self, project: str, run_id: str, exported: int) -> bytes:
        """The parquet export of a run's first `exported` rows (built once, then cached)."""
        key = (project, run_id, exported, self.row_group_size)
        if key not in self._parquet_cache:
            run = self.run(project, run_id)
            table = rows_to_parquet_table(run.history[:exported])
            buf = io.BytesIO()
            pq.write_table(table, buf, row_group_size=self.row_group_size)
            self._parquet_cache[key] = buf.getvalue()
        return self._parquet_cache[key]

    def _parquet(self, request: Request) -> Response:
        parts = request.path.split("/")  # /parquet/<entity>/<project>/<run>/<exported>/0.parquet
        if len(parts) != 7:
            return Response(404, b"not found")
        _, _, _entity, project, run_id, exported, _name = parts
        try:
            data = self.export_bytes(project, run_id, int(exported))
        except (KeyError, StopIteration, ValueError):
            return Response(404, b"not found")
        total = len(data)
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        rng = request.headers.get("range")
        if not rng:
            return Response(200, data, headers)
        m = _RANGE.match(rng.strip())
        if not m or (not m.group(1) and not m.group(2)):
            return Response(416, b"", {"Content-Range": f"bytes */{total}"})
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
        else:  # suffix range: the last N bytes
            start, end = max(total - int(m.group(2)), 0), total - 1
        if start >= total or start > end:
            return Response(416, b"", {"Content-Range": f"bytes */{total}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        return Response(206, data[start : end + 1], headers)


def _history_keys(run: FakeRun) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for row in run.history:
        for k in row:
            keys.setdefault(k, {"typeCounts": [{"type": "number", "count": 0}]})
    out: dict[str, Any] = {"keys": keys}
    if run.last_step is not None:
        out["lastStep"] = run.last_step
    return out


def _gql_error(message: str) -> Response:
    return Response(200, json.dumps({"errors": [{"message": message}], "data": None}).encode())


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def rows_to_parquet_table(rows: list[dict[str, Any]]) -> pa.Table:
    """History rows as W&B exports them: one column per (flattened) key, nulls where unlogged."""
    flat = [flatten(r) for r in rows]
    names = list(dict.fromkeys(k for r in flat for k in r))
    arrays = []
    for name in names:
        values = [r.get(name) for r in flat]
        present = [x for x in values if x is not None]
        if name == "_step" or (present and all(isinstance(x, int) and not isinstance(x, bool) for x in present)):
            typ = pa.int64()
        elif present and all(isinstance(x, bool) for x in present):
            typ = pa.bool_()
        elif present and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in present):
            typ = pa.float64()
            values = [None if x is None else float(x) for x in values]
        else:
            typ = pa.string()
            values = [None if x is None else (x if isinstance(x, str) else json.dumps(x)) for x in values]
        arrays.append(pa.array(values, typ))
    return pa.Table.from_arrays(arrays, names=names)


def _field(run: FakeRun, name: str) -> Any:
    simple = {
        "sweep": run.sweep,
        "sweepName": run.sweep,
        "group": run.group,
        "state": run.state,
        "name": run.run_id,
        "display_name": run.display_name or run.run_id,
        "displayName": run.display_name or run.run_id,
        "jobType": run.job_type,
        "job_type": run.job_type,
        "createdAt": run.created_at,
        "created_at": run.created_at,
        "heartbeatAt": run.heartbeat_at,
        "heartbeat_at": run.heartbeat_at,
        "tags": run.tags,
    }
    if name in simple:
        return simple[name]
    if name.startswith("config."):
        key = name.removeprefix("config.").removesuffix(".value")
        return run.config.get(key)
    if name.startswith("summary_metrics."):
        return run.summary.get(name.removeprefix("summary_metrics."))
    raise ValueError(f"fake server: unsupported filter field {name!r}")


def _as_time(x: Any) -> Any:
    if isinstance(x, str) and re.match(r"\d{4}-\d\d-\d\dT", x):
        t = dt.datetime.fromisoformat(x.replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return x


def _cmp(value: Any, cond: Any) -> bool:
    if not isinstance(cond, dict) or not any(k.startswith("$") for k in cond):
        if isinstance(value, list):
            return cond in value
        return value == cond
    ops = {
        "$eq": lambda a, b: a == b,
        "$ne": lambda a, b: a != b,
        "$gt": lambda a, b: a is not None and _as_time(a) > _as_time(b),
        "$gte": lambda a, b: a is not None and _as_time(a) >= _as_time(b),
        "$lt": lambda a, b: a is not None and _as_time(a) < _as_time(b),
        "$lte": lambda a, b: a is not None and _as_time(a) <= _as_time(b),
        "$in": lambda a, b: any(x in b for x in a) if isinstance(a, list) else a in b,
        "$nin": lambda a, b: a not in b,
        "$exists": lambda a, b: (a is not None) == bool(b),
        "$regex": lambda a, b: a is not None and re.search(b, str(a)) is not None,
    }
    return all(ops[op](value, arg) for op, arg in cond.items())


def _matches(run: FakeRun, filters: dict[str, Any]) -> bool:
    for key, cond in filters.items():
        if key == "$and":
            if not all(_matches(run, f) for f in cond):
                return False
        elif key == "$or":
            if not any(_matches(run, f) for f in cond):
                return False
        elif key == "$nor":
            if any(_matches(run, f) for f in cond):
                return False
        elif not _cmp(_field(run, key), cond):
            return False
    return True
