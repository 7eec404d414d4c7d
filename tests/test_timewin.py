import datetime as dt

import pytest

from pipelines.answers.windows import WindowError, resolve

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def test_last_six_hours_ends_now_and_starts_six_hours_before():
    w = resolve("6h", None, None, default_last="1h", now=NOW)
    assert (w.since, w.until) == (NOW - dt.timedelta(hours=6), NOW)


def test_since_without_offset_is_read_as_utc_and_offsets_are_converted():
    w = resolve(None, "2026-11-26T08:00", "2026-11-26T11:00+02:00", default_last="1h", now=NOW)
    assert w.since == dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
    assert w.until == dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "last,since,until,message",
    [
        ("6 parsecs", None, None, "cannot read duration"),
        ("-3h", None, None, "cannot read duration"),
        (None, "yesterday", None, "cannot read --since"),
        (None, "2026-11-26T10:00", "2026-11-26T09:00", "window is empty"),
        ("1h", "2026-11-26T10:00", None, "either --last or --since"),
        ("99999d", None, None, "ten years"),
    ],
)
def test_nonsense_windows_are_refused_with_a_reason(last, since, until, message):
    with pytest.raises(WindowError, match=message):
        resolve(last, since, until, default_last="1h", now=NOW)
