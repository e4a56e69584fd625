"""``replay --end-now``: old records re-stamped by whole days so the series ends today."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.replay import beijing_rows, ending_now

CSV = Path(__file__).resolve().parents[2] / "samples" / "sensors" / "beijing_dongsi_2013-2017.csv"


def test_the_series_ends_on_the_day_of_now_and_keeps_local_hours_and_spacing() -> None:
    now = datetime(2026, 12, 6, 1, 30, tzinfo=UTC)
    original = list(beijing_rows(CSV, 50))
    shifted = list(ending_now(CSV, iter(original), now))
    last = datetime.fromisoformat(list(ending_now(CSV, beijing_rows(CSV), now))[-1]["time"])
    assert timedelta(0) <= now - last < timedelta(days=1)
    times = [datetime.fromisoformat(r["time"]) for r in shifted]
    before = [datetime.fromisoformat(r["time"]) for r in original]
    shift = {t - b for t, b in zip(times, before, strict=True)}
    assert len(shift) == 1 and next(iter(shift)) % timedelta(days=1) == timedelta(0)
    assert [t.hour for t in times] == [b.hour for b in before]  # same local hours
    assert [r["values"] for r in shifted] == [r["values"] for r in original]
