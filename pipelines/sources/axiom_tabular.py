"""One page of an Axiom APL answer in the tabular format, read column by column.

axiom-py turns every answer into dataclasses (dacite, one object per value)
and then a dict per event: about half of a sync's time against a fast server.
`query_page` sends the same request `axiom_py.Client.query` sends, through the
client's own session (its base URL, auth headers, response hook that raises
`AxiomError`, and the retry adapter this project mounts), and reads the body
with one `json.loads`; `page_rows` then builds each event's canonical record
from the columns and parses every `_time` in one Arrow cast.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring as _encode_string
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.sources.axiom_apl_time import parse_ns

__all__ = ["PartialResult", "Row", "page_rows", "query_page"]

# Axiom writes `_time` as Go's RFC3339Nano in UTC; other spellings take the slow, general parser.
_AXIOM_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$"
# The record is `pipelines.sources.base.dumps` of the event; one encoder spares its per-call setup.
_ENCODE = json.JSONEncoder(sort_keys=True, default=str, allow_nan=True, ensure_ascii=False).encode


class PartialResult(Exception):
    """Axiom answered with `status.isPartial`: the page is incomplete."""


class Row(NamedTuple):
    ns: int | None  # `_time` in nanoseconds, None when it does not parse
    time_text: Any
    record: str  # canonical JSON of the event, nulls left out
    key: str | None  # `_rowId`; None until the source keys the row


def query_page(client: Any, apl: str, opts: Any) -> tuple[list[str], list[list[Any]]]:
    """POST the APL as `client.query` does; the first table's field names and columns.

    Errors surface as they do through `client.query`: HTTP errors as
    `AxiomError` (the session's response hook), transport failures as
    `requests` exceptions; an unreadable body raises json.JSONDecodeError,
    UnicodeDecodeError, KeyError, TypeError or IndexError. The client's
    request helpers are private to axiom-py (0.15, pinned in uv.lock); they are
    what `Client.query` itself calls, so the request is byte for byte the same.
    """
    import ujson
    from axiom_py.util import handle_json_serialization

    edge_url = client._get_edge_query_url()
    path = edge_url if edge_url is not None else "/v1/datasets/_apl"
    payload = ujson.dumps(client._prepare_apl_payload(apl, opts), default=handle_json_serialization)
    res = client.session.post(path, data=payload, params=client._prepare_apl_options(opts))
    body = json.loads(res.content)
    if body["status"]["isPartial"]:
        raise PartialResult
    tables = body["tables"]
    if not tables:
        return [], []
    table = tables[0]
    names = [str(f["name"]) for f in table["fields"]]
    columns = table.get("columns") or []
    if len(columns) != len(names) or len({len(c) for c in columns}) > 1:
        raise IndexError("the answer's columns do not match its fields")
    return names, columns


def page_rows(names: list[str], columns: list[list[Any]]) -> list[Row]:
    """The page's events as rows, computed per column.

    A row's record is `pipelines.sources.base.dumps` of the event's non-null
    fields, its key the event's `_rowId` (None when absent or blank), its `ns`
    the `_time` text in nanoseconds (None when it is missing or not a time).
    """
    if not columns or not columns[0]:
        return []
    records = _records(names, columns)
    texts = _column(names, columns, "_time")
    row_ids = _column(names, columns, "_rowId")
    if all(type(v) is str for v in row_ids):  # Axiom's `_rowId`s: a blank one is no key
        keys = [v if v and not v.isspace() else None for v in row_ids]
    else:
        keys = [_row_key(v) for v in row_ids]
    return list(map(Row._make, zip(_times_ns(texts), texts, records, keys, strict=True)))


def _column(names: list[str], columns: list[list[Any]], name: str) -> list[Any]:
    """The column of `name` (its last one, as an event dict would keep), else nulls."""
    where = [i for i, n in enumerate(names) if n == name]
    return columns[where[-1]] if where else [None] * len(columns[0])


def _records(names: list[str], columns: list[list[Any]]) -> list[str]:
    """Each event's `dumps` of its non-null fields, built from per-column JSON fragments.

    The tabular format pads every row with every field of the page; a null there only
    means "absent", and keeping it would make the same event's record (and key) depend
    on which page it came back in. Fragments are the text `json.dumps` writes for the
    same values (`"key": value`, keys sorted, ", " between items).
    """
    if len(set(names)) != len(names):  # a field named twice: the later column wins, as in a dict
        return [
            _ENCODE({k: v for k, v in zip(names, values, strict=True) if v is not None})
            for values in zip(*columns, strict=True)
        ]
    order = sorted(range(len(names)), key=names.__getitem__)
    # Each non-null value is `, "key": value` and a null is empty: a row's fragments joined
    # are its items, each after ", ", so the record is "{" + that text past its first ", " + "}".
    fragments = [_fragments(", " + _encode_string(names[i]) + ": ", columns[i]) for i in order]
    return ["{" + items[2:] + "}" for items in map("".join, zip(*fragments, strict=True))]


def _fragments(prefix: str, values: list[Any]) -> list[str]:
    kinds_with_null = set(map(type, values))
    kinds = kinds_with_null - {type(None)}
    encode: Any = _ENCODE  # nested values, mixed kinds
    if kinds == {str}:
        encode = _encode_string
    elif kinds == {int}:
        encode = int.__repr__
    elif kinds == {bool}:
        encode = {True: "true", False: "false"}.__getitem__
    elif kinds == {float} and all(math.isfinite(v) for v in values if v is not None):
        encode = float.__repr__
    if type(None) in kinds_with_null:
        return ["" if v is None else prefix + encode(v) for v in values]
    return [prefix + text for text in map(encode, values)]


def _row_key(row_id: Any) -> str | None:
    if row_id is None:
        return None
    text = str(row_id)
    return text if text.strip() else None


def _times_ns(texts: list[Any]) -> list[int | None]:
    """`_time` texts -> nanoseconds; one Arrow cast when every text is in Axiom's own format."""
    if all(type(t) is str for t in texts):
        arr = pa.array(texts, pa.string())
        if pc.all(pc.match_substring_regex(arr, _AXIOM_TIME)).as_py():
            try:
                return arr.cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_pylist()
            except pa.ArrowInvalid:
                pass  # out of the 64-bit nanosecond range (years past 2262): the general parser copes
    return [_parse(t) for t in texts]


def _parse(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_ns(text)
    except ValueError:
        return None
