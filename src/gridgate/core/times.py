"""Times as people and the API write them: ISO 8601 in, unix microseconds out."""

from __future__ import annotations

from datetime import UTC, datetime

from gridgate.echo import capped
from gridgate.errors import ValidationFailed

DAY_US = 86_400_000_000


def parse_time(text: str, *, param: str) -> int:
    """ISO 8601 date or time → unix µs. A time without zone is UTC; a date is midnight UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed(
            f"{param}: not an ISO 8601 time: {capped(text)!r}", param=param
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    except OverflowError as exc:
        raise ValidationFailed(f"{param}: out of range: {capped(text)!r}", param=param) from exc
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_expiry(text: str, *, now_us: int) -> int:
    """ISO 8601 → unix µs. A time without zone is UTC. Must be in the future."""
    micros = parse_time(text, param="expires_at")
    if micros <= now_us:
        raise ValidationFailed("expires_at: must be in the future", param="expires_at")
    return micros


def day_of(us: int) -> int:
    """The UTC day (days since 1970-01-01) of a unix µs time."""
    return us // DAY_US


def day_start(day: int) -> int:
    return day * DAY_US


def iso_day(day: int) -> str:
    """``YYYY-MM-DD`` of a UTC day number."""
    return datetime.fromtimestamp(day * 86_400, tz=UTC).date().isoformat()
