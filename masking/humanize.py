"""Times and numbers for people to read. No Flask.

Instants are naive UTC everywhere in storage; they are shown in the configured zone.
"""
from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import phonenumbers


def parse_iso_utc(text: str | None) -> datetime | None:
    """'2026-11-27T13:45:00Z' (or with an offset) -> naive UTC; None for None or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def to_local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=timezone.utc).astimezone(zone)


def local_time(moment: datetime | None, zone: ZoneInfo, now: datetime | None = None) -> str:
    """'14:05' when on the same local day as ``now``, else '28 Nov 14:05' (same year) or '28 Nov 2027 14:05'."""
    if moment is None:
        return ""
    local = to_local(moment, zone)
    if now is not None:
        today = to_local(now, zone)
        if local.date() == today.date():
            return local.strftime("%H:%M")
        if local.year == today.year:
            return f"{local.day} {local:%b %H:%M}"
    return f"{local.day} {local:%b %Y %H:%M}"


def local_datetime(moment: datetime | None, zone: ZoneInfo) -> str:
    """Full local date and time with the zone's abbreviation: '27 Nov 2026 19:15 IST'."""
    if moment is None:
        return ""
    local = to_local(moment, zone)
    return f"{local.day} {local:%b %Y %H:%M} {local.tzname()}"


_ISO_UTC = re.compile(r"\b(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})Z\b")


def local_times_in(text: str | None, zone: ZoneInfo, now: datetime | None = None) -> str:
    """``text`` (a message of the service) with its ISO 8601 UTC instants as local times: on a
    page that shows every time in the local zone, '2026-11-28T00:07:21Z' reads '05:37'."""
    def local(match: re.Match) -> str:
        try:
            moment = datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}")
        except ValueError:
            return match.group(0)
        return local_time(moment, zone, now)

    return _ISO_UTC.sub(local, text or "")


def duration(delta: timedelta) -> str:
    """'3 h 20 min', '2 d 4 h', '45 min', 'less than a minute'."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def time_left(until: datetime | None, now: datetime) -> str:
    """'in 3 h 20 min', or 'expired' once passed."""
    if until is None:
        return ""
    if until <= now:
        return "expired"
    return "in " + duration(until - now)


def count(n: int, singular: str, plural: str | None = None) -> str:
    """'1 number', '3 numbers', '0 numbers'."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def minutes_label(minutes: int) -> str:
    """A duration for a sentence, in words: '30 days', '1 day 4 hours', '1 hour 30 minutes'."""
    days, rest = divmod(max(int(minutes), 0), 1440)
    hours, mins = divmod(rest, 60)
    parts = [count(n, unit) for n, unit in ((days, "day"), (hours, "hour"), (mins, "minute")) if n]
    return " ".join(parts) or "0 minutes"


@functools.lru_cache(maxsize=8192)  # pages show the same numbers many times; parsing is the cost
def phone(number: str | None) -> str:
    """E.164 in international notation ('+91 98765 43210'); anything else as it is."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
