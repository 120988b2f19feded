"""The windows of spend caps: UTC calendar days, weeks (from Monday 00:00) and months, and the
lifetime window (from 0, never reset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridgate.storage.records import CapPeriod

PERIODS: tuple[CapPeriod, ...] = ("daily", "weekly", "monthly", "lifetime")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def window_start(period: CapPeriod, now_us: int) -> int:
    """The start (unix µs) of the window of ``period`` that holds ``now_us``."""
    if period == "lifetime":
        return 0
    now = _moment(now_us)
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "daily":
        return _us(day)
    if period == "weekly":
        return _us(day - timedelta(days=day.weekday()))
    return _us(datetime(now.year, now.month, 1, tzinfo=UTC))


def windows(now_us: int) -> dict[CapPeriod, int]:
    """Every period's current window start."""
    return {period: window_start(period, now_us) for period in PERIODS}


def resets_at(period: CapPeriod, start_us: int) -> int | None:
    """When the window of ``period`` starting at ``start_us`` ends (None: lifetime, never)."""
    if period == "lifetime":
        return None
    start = _moment(start_us)
    if period == "daily":
        return _us(start + timedelta(days=1))
    if period == "weekly":
        return _us(start + timedelta(days=7))
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return _us(datetime(year, month, 1, tzinfo=UTC))


def iso(us: int) -> str:
    """``2026-12-08T00:00:00Z``."""
    return _moment(us).strftime("%Y-%m-%dT%H:%M:%SZ")
