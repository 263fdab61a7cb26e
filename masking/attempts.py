"""The dashboard's record of every attempt its agents make. No Flask.

The dashboard talks to the masking service over HTTP only, so it keeps its own record:
who asked for what, when, and what came back (failures included). That record is the
supervisors' history; it works against any service speaking the vendor's set/unset.

A successful ``set`` row follows its masking afterwards: an extend moves its
``expires_at``, an end sets ``ended_at``/``ended_by_id``. Its status is derived:

* ``failed``  - the attempt did not succeed (``outcome`` is error or unavailable)
* ``ended``   - ``ended_at`` is set (by an agent, or found ended at the service)
* ``expired`` - ``expires_at`` has passed
* ``active``  - otherwise
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AttemptAction, AttemptOutcome, MaskAttempt
from .phone import MAX_INPUT_LENGTH, PhoneNumberError, normalise

ACTIVE, EXPIRED, ENDED, FAILED = "active", "expired", "ended", "failed"
MY_ACTIVE_LIMIT = 200


def digits(value: str | None) -> str | None:
    """Only the digits of ``value`` (for partial-number search), or None."""
    if not value:
        return None
    only = "".join(str(int(ch)) for ch in str(value) if ch.isdecimal())  # any script's digits, as ASCII
    return only[:40] or None


def stored_number(value, default_region: str) -> str | None:
    """E.164 when ``value`` is a phone number, else what was typed (trimmed, at most 40 characters)."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return normalise(str(value), default_region)
    except PhoneNumberError:
        return str(value).strip()[:MAX_INPUT_LENGTH]


def record(session: Session, *, user_id: int, action: str, now: datetime, outcome: str,
           m1: str | None = None, m2: str | None = None, mask: str | None = None, event_id: str | None = None,
           requested_minutes: int | None = None, expires_at: datetime | None = None,
           error_code: int | None = None, error_message: str | None = None, masking_id: int | None = None,
           target: MaskAttempt | None = None) -> MaskAttempt:
    if action not in AttemptAction.ALL:
        raise ValueError(f"unknown action {action!r}")
    if outcome not in AttemptOutcome.ALL:
        raise ValueError(f"unknown outcome {outcome!r}")
    attempt = MaskAttempt(
        user_id=user_id, created_at=now, action=action,
        m1=m1, m2=m2, mask=mask, m1_digits=digits(m1), m2_digits=digits(m2), mask_digits=digits(mask),
        event_id=(event_id or None) and event_id[:255], requested_minutes=requested_minutes, expires_at=expires_at,
        outcome=outcome, error_code=error_code, error_message=(error_message or None) and error_message[:500],
        masking_id=masking_id, target_id=target.id if target is not None else None,
    )
    session.add(attempt)
    session.flush()
    return attempt


def status(attempt: MaskAttempt, now: datetime) -> str:
    if attempt.outcome != AttemptOutcome.SUCCESS:
        return FAILED
    if attempt.action != AttemptAction.SET:
        return attempt.action  # an end or extend request that succeeded
    if attempt.ended_at is not None:
        return ENDED
    if attempt.expires_at is not None and attempt.expires_at <= now:
        return EXPIRED
    return ACTIVE


def mark_ended(attempt: MaskAttempt, now: datetime, *, by_user_id: int | None, note: str | None = None) -> None:
    if attempt.ended_at is None:
        attempt.ended_at = now
        attempt.ended_by_id = by_user_id
        attempt.end_note = note


def active_for_user(session: Session, user_id: int, now: datetime, limit: int = MY_ACTIVE_LIMIT) -> list[MaskAttempt]:
    """A user's masks that are live by our record, newest first."""
    return list(session.scalars(
        select(MaskAttempt)
        .where(MaskAttempt.user_id == user_id, MaskAttempt.action == AttemptAction.SET,
               MaskAttempt.outcome == AttemptOutcome.SUCCESS, MaskAttempt.expires_at > now,
               MaskAttempt.ended_at.is_(None))
        .order_by(MaskAttempt.id.desc())
        .limit(limit)
    ))


def own_set(session: Session, user_id: int, attempt_id: int) -> MaskAttempt | None:
    """The user's own successful set ``attempt_id`` (live or not), else None."""
    attempt = session.get(MaskAttempt, attempt_id)
    if (attempt is None or attempt.user_id != user_id or attempt.action != AttemptAction.SET
            or attempt.outcome != AttemptOutcome.SUCCESS):
        return None
    return attempt
