"""A loopback stand-in for the Axiom API, enough for `axiom_py.Client` 0.15.

Two routes (as axiom-py's client calls them): `POST /v1/datasets/_apl?format=tabular`, which
understands the APL subset the Axiom source generates, and
`POST /v1/datasets/{dataset}/ingest` (gzipped NDJSON, as `ingest_events`
sends it), so tests can load events through the real client.

Like real Axiom, the order of events that share a `_time` is unspecified:
by default every query shuffles such ties, so a client that pages by
position within a timestamp loses or repeats events here too.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gzip
import itertools
import json
import random
import re
from typing import Any

from . import FakeHTTPServer, Request, Response

_APL = re.compile(
    r"""^\s*\['(?P<ds>(?:[^'\\]|\\.)+)'\]
        \s*\|\s*where\s+_time\s*>=\s*datetime\((?P<start>[^()]+)\)
        \s+and\s+_time\s*<\s*datetime\((?P<end>[^()]+)\)
        \s*\|\s*sort\s+by\s+_time\s+asc
        \s*\|\s*limit\s+(?P<limit>\d+)\s*$""",
    re.VERBOSE,
)
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def parse_ns(text: str) -> int:
    """RFC 3339 with up to nanoseconds -> integer nanoseconds since the epoch."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"bad time {text!r}")
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    frac = (m.group(2) or "").ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(frac)


def format_ns(ns: int) -> str:
    """Go's RFC3339Nano, as Axiom writes `_time`: trailing zeros of the fraction trimmed."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _field_type(values: list[Any], name: str) -> str:
    if name in ("_time", "_sysTime"):
        return "datetime"
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return "boolean"
    if kinds == {int}:
        return "integer"
    if kinds and kinds <= {int, float}:
        return "float"
    if kinds == {str}:
        return "string"
    return "unknown"


class FakeAxiomServer(FakeHTTPServer):
    def __init__(self, *, token: str, row_ids: bool = True, shuffle_ties: bool = True, seed: int = 7) -> None:
        super().__init__()
        self.token = token
        self.row_ids = row_ids
        self.shuffle_ties = shuffle_ties
        self.datasets: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._index: dict[str, list[int]] = {}  # sorted times of each dataset, rebuilt after adds
        self._rng = random.Random(seed)
        self._seq = itertools.count(1)

    # --- test helpers --------------------------------------------------------
    def add_events(self, dataset: str, events: list[dict[str, Any]], *, sys_time: str | None = None) -> None:
        """Store events as Axiom would: `_time` normalised, `_sysTime` and (optionally) `_rowId` added."""
        stored = self.datasets.setdefault(dataset, [])
        sys_time = sys_time or format_ns(int(dt.datetime.now(dt.UTC).timestamp() * 1e9))
        for event in events:
            event = dict(event)
            t = event.get("_time")
            if isinstance(t, dt.datetime):
                t = t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
            ns = parse_ns(t) if isinstance(t, str) else int(dt.datetime.now(dt.UTC).timestamp() * 1e9)
            event["_time"] = format_ns(ns)
            event["_sysTime"] = sys_time
            if self.row_ids:
                event["_rowId"] = f"r{next(self._seq):012d}"
            stored.append((ns, event))
        stored.sort(key=lambda item: item[0])
        self._index[dataset] = [ns for ns, _ in stored]

    def events(self, dataset: str) -> list[dict[str, Any]]:
        return [e for _, e in self.datasets.get(dataset, [])]

    def queries(self) -> list[Request]:
        return self.requests(path="/v1/datasets/_apl")

    # --- protocol ------------------------------------------------------------
    def describe(self, request: Request) -> None:
        if request.path == "/v1/datasets/_apl":
            request.json = json.loads(request.body)
            request.op = "apl"
        elif request.path.endswith("/ingest"):
            request.op = "ingest"

    def malformed(self, request: Request) -> Response:
        return Response(200, b'{"format":"tabular","status":{"elapsedTime":', {"Content-Type": "application/json"})

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(405, "method not allowed")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "invalid token")
        if request.path == "/v1/datasets/_apl":
            return self._apl(request)
        m = re.match(r"^/v1/datasets/([^/]+)/ingest$", request.path)
        if m:
            return self._ingest(m.group(1), request)
        return _error(404, "not found")

    def _apl(self, request: Request) -> Response:
        if request.query.get("format") != ["tabular"]:
            return _error(400, "this fake answers format=tabular only")
        body = request.json or {}
        m = _APL.match(body.get("apl") or "")
        if not m:
            return _error(400, f"fake server: unsupported APL {body.get('apl')!r}")
        dataset = re.sub(r"\\(.)", r"\1", m.group("ds"))
        if dataset not in self.datasets:
            return _error(404, f"dataset '{dataset}' not found")
        lo, hi, limit = parse_ns(m.group("start")), parse_ns(m.group("end")), int(m.group("limit"))
        # The request's time window applies too, as in Axiom: [startTime, endTime).
        w_lo = parse_ns(body["startTime"]) if body.get("startTime") else None
        w_hi = parse_ns(body["endTime"]) if body.get("endTime") else None
        lo, hi = max(lo, w_lo if w_lo is not None else lo), min(hi, w_hi if w_hi is not None else hi)
        index = self._index[dataset]
        hits = self.datasets[dataset][bisect.bisect_left(index, lo) : bisect.bisect_left(index, hi)]
        if self.shuffle_ties:
            shuffled: list[tuple[int, dict[str, Any]]] = []
            for _, group in itertools.groupby(hits, key=lambda item: item[0]):
                block = list(group)
                self._rng.shuffle(block)
                shuffled.extend(block)
            hits = shuffled
        rows = [e for _, e in hits[:limit]]
        names = list(dict.fromkeys(itertools.chain(["_time", "_sysTime"], *(r.keys() for r in rows))))
        columns = [[r.get(n) for r in rows] for n in names]
        result = {
            "format": "tabular",
            "status": {
                "elapsedTime": 1,
                "blocksExamined": 1,
                "rowsExamined": len(self.datasets[dataset]),
                "rowsMatched": len(hits),
                "numGroups": 0,
                "isPartial": False,
                "minBlockTime": body.get("startTime"),
                "maxBlockTime": body.get("endTime"),
                "messages": [],
            },
            "tables": [
                {
                    "name": "0",
                    "sources": [{"name": dataset}],
                    "fields": [{"name": n, "type": _field_type(c, n)} for n, c in zip(names, columns, strict=True)],
                    "order": [{"field": "_time", "desc": False}],
                    "groups": [],
                    "range": {"field": "_time", "start": body.get("startTime"), "end": body.get("endTime")},
                    "buckets": None,
                    "columns": columns,
                }
            ],
            "datasetNames": [dataset],
        }
        return Response(200, json.dumps(result).encode(), {"Content-Type": "application/json"})

    def _ingest(self, dataset: str, request: Request) -> Response:
        raw = request.body
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        text = raw.decode()
        field = (request.query.get("timestamp-field") or ["_time"])[0]
        if text.lstrip().startswith("["):
            events = json.loads(text)
        else:
            events = [json.loads(line) for line in text.splitlines() if line.strip()]
        for e in events:
            if field in e and field != "_time":
                e["_time"] = e.pop(field)
        self.add_events(dataset, events)
        status = {
            "ingested": len(events),
            "failed": 0,
            "failures": [],
            "processedBytes": len(raw),
            "blocksCreated": 0,
            "walLength": len(events),
        }
        return Response(200, json.dumps(status).encode(), {"Content-Type": "application/json"})


def _error(status: int, message: str) -> Response:
    body = json.dumps({"code": status, "message": message}).encode()
    return Response(status, body, {"Content-Type": "application/json"})
