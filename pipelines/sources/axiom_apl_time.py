"""Axiom's times in nanoseconds (RFC 3339 text and datetimes to and from nanoseconds since the epoch)
and the APL query of one page of a dataset, its name validated and quoted."""

from __future__ import annotations

import datetime as dt
import re

NS = 1_000_000_000
DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?$")


def apl_page_query(dataset: str, lo_ns: int, hi_ns: int, limit: int) -> str:
    """The APL for one page; the dataset name is validated and quoted, times are ours."""
    if not DATASET_NAME.match(dataset):
        raise ValueError(f"invalid Axiom dataset name {dataset!r}")
    quoted = dataset.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"['{quoted}'] | where _time >= datetime({format_ns(lo_ns)}) and _time < datetime({format_ns(hi_ns)})"
        f" | sort by _time asc | limit {int(limit)}"
    )


def parse_ns(text: str) -> int:
    """RFC 3339 time (up to nanoseconds; no offset means UTC) -> nanoseconds since the epoch."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    date, clock, frac, zone = m.groups()
    offset = "+00:00" if zone in (None, "Z") else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    base = dt.datetime.fromisoformat(f"{date}T{clock}{offset}")
    seconds = (base - _EPOCH) // dt.timedelta(seconds=1)
    return seconds * NS + int((frac or "").ljust(9, "0"))


def format_ns(ns: int) -> str:
    """Nanoseconds since the epoch -> RFC 3339 UTC with as many fraction digits as needed."""
    seconds, frac = divmod(ns, NS)
    text = (_EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def to_ns(value: dt.datetime) -> int:
    """A datetime (naive = UTC) -> nanoseconds since the epoch."""
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return (value - _EPOCH) // dt.timedelta(microseconds=1) * 1000


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def timedelta_ns(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1) * 1000


def datetime_floor(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def datetime_ceil(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=-(-ns // 1000))
