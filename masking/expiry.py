"""Reading ``expiry_duration`` and ``expiry_time`` into one expiry instant.

Rules (also in the README):
* ``expiry_duration``: whole minutes, as a JSON integer or a string of digits ("1440").
  Floats, booleans, words, empty strings and objects are refused with 1502, as are
  values outside 1..MAX_EXPIRY_MINUTES. For ``unset`` a value <= 0 means "end now".
* ``expiry_time``: ISO 8601 with an offset ("2026-11-27T18:00:00+05:30", "...Z"),
  "YYYY-MM-DD HH:MM:SS" (or the same with "T") in the configured time zone, or Unix
  seconds. It must lie in the future and within the maximum, else 1507.
* Both given: each must be valid; ``expiry_time`` wins. Neither: the default duration
  (``set``) or "end now" (``unset``).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from .errors import BAD_DURATION, BAD_EXPIRY_TIME, MaskingError

END_NOW = "end-now"  # unset's instruction to end the masking at once

_DIGITS = re.compile(r"^[+-]?\d{1,12}$")
# Unix times: more digits than a duration, so that milliseconds (13 digits today) are recognised.
_UNIX_DIGITS = re.compile(r"^[+-]?\d{1,18}$")
_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")
# Later than this as a Unix time is almost surely milliseconds (year 5138).
_MAX_UNIX_SECONDS = 10**11


def parse_duration(raw) -> int:
    """The minutes in ``raw`` or MaskingError 1502. Sign is kept; range is checked by callers."""
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        kind = "a boolean" if isinstance(raw, bool) else type(raw).__name__
        raise MaskingError(BAD_DURATION, f"expiry_duration must be a whole number of minutes, not {_kind(raw, kind)}")
    if isinstance(raw, str):
        text = raw.strip()
        if not _DIGITS.match(text):
            raise MaskingError(BAD_DURATION, f"expiry_duration must be a whole number of minutes, got {raw!r}")
        return int(text)
    return raw


def _kind(raw, fallback: str) -> str:
    if isinstance(raw, float):
        return f"the fraction {raw!r}"
    if isinstance(raw, dict):
        return "an object"
    if isinstance(raw, list):
        return "a list"
    return fallback


def parse_instant(raw, zone: ZoneInfo, field: str = "expiry_time", code: int = BAD_EXPIRY_TIME) -> datetime:
    """``raw`` as a naive-UTC instant, or MaskingError ``code`` saying what was wrong with ``field``."""
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise MaskingError(code, f"{field} must be ISO 8601 with an offset, 'YYYY-MM-DD HH:MM:SS', or Unix seconds")
    text = str(raw).strip()
    if not text:
        raise MaskingError(code, f"{field} is empty")
    if _UNIX_DIGITS.match(text):
        seconds = int(text)
        if seconds >= _MAX_UNIX_SECONDS:
            raise MaskingError(code, f"{field} looks like milliseconds; send Unix seconds")
        if seconds < 0:
            raise MaskingError(code, f"{field} must not be negative")
        return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
    moment = None
    for fmt in _LOCAL_FORMATS:
        try:
            moment = datetime.strptime(text, fmt).replace(tzinfo=zone)
            break
        except ValueError:
            continue
    if moment is None:
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise MaskingError(
                code, f"{field} {text[:40]!r} is not ISO 8601 with an offset, 'YYYY-MM-DD HH:MM:SS', or Unix seconds"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it: no UTC instant
        raise MaskingError(code, f"{field} {text[:40]!r} is outside the range of dates") from None


def resolve_expiry(body: dict, now: datetime, *, zone: ZoneInfo, default_minutes: int | None,
                   max_minutes: int, allow_end: bool = False):
    """The expiry instant a request asks for, checked against ``now`` and the maximum.

    Returns a naive-UTC datetime, or END_NOW (only when ``allow_end``, i.e. for unset).
    ``default_minutes`` is used when neither field is given; None there means END_NOW.
    """
    raw_duration = body.get("expiry_duration")
    raw_time = body.get("expiry_time")
    limit = now + timedelta(minutes=max_minutes)

    duration = None
    if raw_duration is not None:
        duration = parse_duration(raw_duration)
        if duration <= 0 and not allow_end:
            raise MaskingError(BAD_DURATION, "expiry_duration must be at least 1 minute")
        if duration > max_minutes:
            raise MaskingError(BAD_DURATION, f"expiry_duration must be at most {max_minutes} minutes")

    if raw_time is not None:
        # Whole seconds, like durations below: the instant we report is the instant we enforce.
        moment = parse_instant(raw_time, zone).replace(microsecond=0)
        if moment <= now:
            raise MaskingError(BAD_EXPIRY_TIME, "expiry_time must be in the future")
        if moment > limit:
            raise MaskingError(BAD_EXPIRY_TIME, f"expiry_time must be at most {max_minutes} minutes from now")
        return moment

    if duration is None:
        if default_minutes is None:
            return END_NOW
        duration = default_minutes
    if duration <= 0:
        return END_NOW
    # Whole seconds: the instant we report is the instant we enforce.
    return now.replace(microsecond=0) + timedelta(minutes=duration)
