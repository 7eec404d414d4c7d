"""Time windows for the CLI: `--last 6h` or `--since/--until`, half-open [since, until)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_LAST = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class WindowError(ValueError):
    """A window the user gave cannot be understood; the message says why."""


@dataclass(frozen=True)
class Window:
    since: dt.datetime
    until: dt.datetime

    def as_dict(self) -> dict[str, str]:
        return {"since": iso(self.since), "until": iso(self.until)}

    def describe(self) -> str:
        return f"[{iso(self.since)}, {iso(self.until)})"


def iso(ts: dt.datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_duration(text: str) -> dt.timedelta:
    m = _LAST.match(text or "")
    if not m:
        raise WindowError(f"cannot read duration {text!r}: use a number and a unit, e.g. 30m, 6h, 2d")
    seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if seconds <= 0:
        raise WindowError(f"duration {text!r} must be positive")
    if seconds > 3650 * 86400:
        raise WindowError(f"duration {text!r} is longer than ten years")
    return dt.timedelta(seconds=seconds)


def parse_instant(text: str, name: str) -> dt.datetime:
    """ISO-8601; UTC unless an offset is given."""
    raw = (text or "").strip()
    try:
        ts = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise WindowError(
            f"cannot read {name} {text!r}: use ISO-8601, e.g. 2026-11-26T08:00 or 2026-11-26T08:00+02:00"
        ) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    try:
        return ts.astimezone(dt.UTC)
    except OverflowError:
        raise WindowError(f"{name} {text!r} is outside the supported range of dates") from None


def resolve(
    last: str | None, since: str | None, until: str | None, *, default_last: str, now: dt.datetime | None = None
) -> Window:
    """The window the options describe; `--until` defaults to now, `--last` to `default_last`."""
    if last and since:
        raise WindowError("give either --last or --since, not both")
    end = parse_instant(until, "--until") if until else (now or dt.datetime.now(dt.UTC))
    if since:
        start = parse_instant(since, "--since")
    else:
        try:
            start = end - parse_duration(last or default_last)
        except OverflowError:
            raise WindowError("the window reaches before the supported range of dates") from None
    if start >= end:
        raise WindowError(f"the window is empty: --since {iso(start)} is not before --until {iso(end)}")
    return Window(start, end)
