"""The one place that says what time it is.

All rules take ``now`` as an argument; production passes ``utcnow()``. Tests pass
chosen instants, so expiry at the boundary is checked to the microsecond without sleeping.
Times are naive UTC everywhere in storage (the same on SQLite and PostgreSQL).
"""
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso_utc(moment: datetime | None) -> str | None:
    """Naive-UTC datetime -> '2026-11-27T13:45:00Z' (seconds precision, as clients expect)."""
    if moment is None:
        return None
    return moment.replace(microsecond=0).isoformat() + "Z"


def local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    """The instant (naive UTC) the local ``day`` begins in ``zone``."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(timezone.utc).replace(tzinfo=None)
