"""Candle and throttle intervals: names, lengths in milliseconds, alignment.

Engine time is an int of milliseconds since the Unix epoch, UTC; a datetime
appears only at the API edge (see ``to_ms`` / ``to_datetime``).
"""

from __future__ import annotations

from datetime import datetime, timezone

MINUTE_MS = 60_000

INTERVAL_MINUTES: dict[str, int] = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30,
    "1h": 60, "2h": 120, "4h": 240, "6h": 360, "8h": 480, "12h": 720, "1d": 1440,
}
INTERVALS = tuple(INTERVAL_MINUTES)


def interval_ms(interval: str) -> int:
    """Length of ``interval`` in ms; ``ValueError`` naming the valid ones otherwise."""
    try:
        return INTERVAL_MINUTES[interval] * MINUTE_MS
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown interval {interval!r}: expected one of {', '.join(INTERVALS)}"
        ) from None


def align(ms: int, step_ms: int) -> int:
    """Floor ``ms`` to a multiple of ``step_ms`` (candle open times are aligned)."""
    return ms - ms % step_ms


UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(value: datetime | int | float) -> int:
    """A datetime (naive means UTC) or epoch milliseconds -> int milliseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a datetime or epoch milliseconds, got {value!r}")
    return int(value)


def to_datetime(ms: int) -> datetime:
    """Epoch milliseconds -> an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso(ms: int) -> str:
    """Compact ISO-8601 text for messages and reports: ``2024-01-01T10:24Z``."""
    text = to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S")
    return (text[:-3] if text.endswith(":00") else text) + "Z"
