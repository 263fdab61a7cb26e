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

**Answers that came too late.** A call that timed out in the dashboard may still be carried
out by the service afterwards (a long write holding the database, say). Such an attempt is
recorded as ``unavailable`` with an ``error_message`` starting ``timeout``; the dashboard
then asks the service what became of it (``sets_to_recheck``, ``changes_to_recheck``, and
a ``1503`` naming a masking no row knows) and takes the answer in: a masking made late is
*adopted* by the attempt that made it (``adoptable``, ``adopt``: the row becomes a success
linked to the masking), an end or extend carried out late moves its set row
(``follow_change``). A masking is adopted only when no row references it yet and the
timed-out attempts that could have made it are all one agent's.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from .humanize import parse_iso_utc
from .models import AttemptAction, AttemptOutcome, MaskAttempt
from .phone import MAX_INPUT_LENGTH, PhoneNumberError, ascii_digits, normalise

ACTIVE, EXPIRED, ENDED, FAILED = "active", "expired", "ended", "failed"
MY_ACTIVE_LIMIT = 200
ENDED_OUTSIDE = "ended outside the dashboard"  # end_note of a mask found ended at the service

# Answers that came too late (see the module's docstring).
TIMED_OUT = "timeout"  # how error_message starts for a call that timed out (explain.TIMEOUT)
RECHECK_WINDOW = timedelta(minutes=10)  # how long after a timeout My active masks asks the service
RECHECK_LIMIT = 3  # calls to the service per rendering of My active masks, at most
LATE_BY = timedelta(minutes=10)  # how long after an attempt the service may still carry it out
CLOCK_SKEW = timedelta(minutes=2)  # between the dashboard's clock and the service's
EXTENDED = "extended"


def digits(value: str | None) -> str | None:
    """Only the digits of ``value`` (for partial-number search), or None."""
    if not value:
        return None
    return ascii_digits(value)[:40] or None


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
    """Record how ``attempt`` ended, unless that is known already (an end is never overwritten)."""
    if attempt.ended_at is None:
        attempt.ended_at = now
        attempt.ended_by_id = by_user_id
        attempt.end_note = note


def ended_by_request(attempt: MaskAttempt, now: datetime, user_id: int) -> None:
    """The service ended ``attempt``'s masking at ``user_id``'s request. That answer is certain, so
    it also replaces a guess made meanwhile ("ended outside the dashboard", when a concurrent
    request of the same mask heard 1506 and asked the service first); an end by someone is kept."""
    if attempt.ended_at is None:
        mark_ended(attempt, now, by_user_id=user_id)
    elif attempt.ended_by_id is None and attempt.end_note == ENDED_OUTSIDE:
        attempt.ended_by_id, attempt.end_note = user_id, None


def reread(session: Session, attempt_id: int, *, lock: bool = False) -> MaskAttempt | None:
    """The row as the database has it now, not as this session last saw it. ``lock``: inside
    ``db.write_transaction`` (SQLite's write lock is then already held), lock the row too
    (``FOR UPDATE`` on PostgreSQL) so that the decision and the write see the same row."""
    query = select(MaskAttempt).where(MaskAttempt.id == attempt_id).execution_options(populate_existing=True)
    return session.scalar(query.with_for_update() if lock else query)


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


# ---------------------------------------------------------------- answers that came too late

def timed_out(attempt: MaskAttempt) -> bool:
    """The attempt's call timed out: the service may have carried it out all the same."""
    return (attempt.outcome == AttemptOutcome.UNAVAILABLE and attempt.error_code is None
            and (attempt.error_message or "").startswith(TIMED_OUT))


def _timed_out_clauses():
    return (MaskAttempt.outcome == AttemptOutcome.UNAVAILABLE, MaskAttempt.error_code.is_(None),
            MaskAttempt.error_message.like(TIMED_OUT + "%"))


def _pair_clause(m1: str, m2: str):
    """Rows that may be about the pair {m1, m2}, either order (by the digit indexes; compare
    ``_same_pair`` on the rows found)."""
    both = (digits(m1), digits(m2))
    return and_(MaskAttempt.m1_digits.in_(both), MaskAttempt.m2_digits.in_(both))


def _same_pair(attempt: MaskAttempt, m1: str | None, m2: str | None) -> bool:
    return bool(m1 and m2) and {attempt.m1, attempt.m2} == {m1, m2}


def referenced(session: Session, masking_id: int) -> bool:
    """Some row (of any agent) knows the masking ``masking_id`` already."""
    return bool(session.scalar(select(exists().where(MaskAttempt.masking_id == masking_id))))


def _masked_since(session: Session, attempt: MaskAttempt, now: datetime) -> bool:
    """The agent has had the pair masked since ``attempt``, or holds it still: its request could
    only have been refused (1503)."""
    rows = session.scalars(
        select(MaskAttempt)
        .where(MaskAttempt.user_id == attempt.user_id, MaskAttempt.action == AttemptAction.SET,
               MaskAttempt.outcome == AttemptOutcome.SUCCESS, _pair_clause(attempt.m1, attempt.m2),
               or_(MaskAttempt.id > attempt.id, and_(MaskAttempt.ended_at.is_(None), MaskAttempt.expires_at > now)))
        .limit(10))
    return any(_same_pair(row, attempt.m1, attempt.m2) for row in rows)


def any_to_recheck(session: Session, user_id: int, now: datetime) -> bool:
    """Has the user a call that timed out within ``RECHECK_WINDOW``? (My active masks is polled:
    when there is none, this one indexed query is all it costs.)"""
    return bool(session.scalar(select(exists().where(
        MaskAttempt.user_id == user_id, MaskAttempt.created_at >= now - RECHECK_WINDOW, *_timed_out_clauses()))))


def sets_to_recheck(session: Session, user_id: int, now: datetime, limit: int = RECHECK_LIMIT) -> list[MaskAttempt]:
    """The user's set attempts that timed out within ``RECHECK_WINDOW`` and may have made a
    masking the dashboard does not know: newest first, at most ``limit``."""
    rows = session.scalars(
        select(MaskAttempt)
        .where(MaskAttempt.user_id == user_id, MaskAttempt.created_at >= now - RECHECK_WINDOW,
               MaskAttempt.action == AttemptAction.SET, *_timed_out_clauses())
        .order_by(MaskAttempt.created_at.desc(), MaskAttempt.id.desc())  # the index's order
        .limit(20))
    found = []
    for row in rows:
        if row.m1 and row.m2 and digits(row.m1) and digits(row.m2) and not _masked_since(session, row, now):
            found.append(row)
            if len(found) >= limit:
                break
    return found


def has_timed_out_set(session: Session, user_id: int, m1: str | None, m2: str | None) -> bool:
    """The user has a set attempt for the pair {m1, m2} that timed out and is not resolved."""
    if not (m1 and m2 and digits(m1) and digits(m2)):
        return False
    rows = session.scalars(
        select(MaskAttempt)
        .where(MaskAttempt.user_id == user_id, MaskAttempt.action == AttemptAction.SET, *_timed_out_clauses(),
               _pair_clause(m1, m2))
        .order_by(MaskAttempt.id.desc())
        .limit(20))
    return any(_same_pair(row, m1, m2) for row in rows)


def _same_request(attempt: MaskAttempt, masking: dict, created: datetime, expires: datetime) -> bool:
    """``masking`` is what ``attempt`` asked for: same reference, and the duration asked (when
    it was a duration; an end time leaves nothing to compare)."""
    if (attempt.event_id or None) != (masking.get("eventId") or None):
        return False
    if attempt.requested_minutes is not None:
        if abs((expires - created) - timedelta(minutes=attempt.requested_minutes)) > timedelta(minutes=1):
            return False
    return True


def adoptable(session: Session, user_id: int, masking: dict) -> MaskAttempt | None:
    """The set attempt of ``user_id`` that made ``masking`` (one of the dashboard's account, as
    the service answers it) although its call timed out; None when there is none, or when that
    is not certain.

    The masking must be active and known to no row. The candidates are the timed-out set
    attempts of every agent for the same pair, the same reference and duration, sent at most
    ``LATE_BY`` before the masking was made: if any of them is another agent's, nobody gets it
    (two agents could mask the same pair); of one agent's, the earliest made it.
    """
    masking_id, m1, m2 = masking.get("id"), masking.get("m1"), masking.get("m2")
    created, expires = parse_iso_utc(masking.get("created_at")), parse_iso_utc(masking.get("expires_at"))
    if (masking.get("status") != ACTIVE or not isinstance(masking_id, int) or isinstance(masking_id, bool)
            or not (m1 and m2 and digits(m1) and digits(m2)) or created is None or expires is None):
        return None
    if referenced(session, masking_id):
        return None
    rows = session.scalars(
        select(MaskAttempt)
        .where(MaskAttempt.action == AttemptAction.SET, *_timed_out_clauses(), _pair_clause(m1, m2),
               MaskAttempt.created_at >= created - LATE_BY - CLOCK_SKEW, MaskAttempt.created_at <= created + CLOCK_SKEW)
        .order_by(MaskAttempt.id)
        .limit(50))
    candidates = [row for row in rows if _same_pair(row, m1, m2) and _same_request(row, masking, created, expires)]
    if not candidates or {row.user_id for row in candidates} != {user_id}:
        return None
    return candidates[0]


def _late_note(attempt: MaskAttempt, now: datetime, what: str) -> str:
    """The row's message once its call turned out to be carried out late: how it went, then what was found."""
    found = now.isoformat(timespec="seconds")
    return f"{attempt.error_message} | {what} after the timeout; found at the service {found}Z"


def adopt(session: Session, attempt_id: int, masking: dict, now: datetime) -> MaskAttempt | None:
    """Record that the timed-out set ``attempt_id`` made ``masking`` (chosen by ``adoptable``): the
    row becomes a success linked to the masking, live on its agent's list. Inside
    ``db.write_transaction``: the row is re-read under lock and the masking checked again to be
    unknown, so two pages adopting at once adopt it once. None if that no longer holds."""
    attempt = reread(session, attempt_id, lock=True)
    expires = parse_iso_utc(masking.get("expires_at"))
    if attempt is None or not timed_out(attempt) or expires is None or referenced(session, masking["id"]):
        return None
    attempt.outcome = AttemptOutcome.SUCCESS
    attempt.masking_id = masking["id"]
    attempt.mask, attempt.mask_digits = masking.get("mask"), digits(masking.get("mask"))
    attempt.expires_at = expires
    attempt.error_message = _late_note(attempt, now, "made")[:500]
    session.flush()
    return attempt


def changes_to_recheck(session: Session, user_id: int, now: datetime, limit: int = RECHECK_LIMIT) -> list[MaskAttempt]:
    """The user's end and extend attempts that timed out within ``RECHECK_WINDOW``, of masks
    not ended by our record (even if expired: a late extend keeps it live at the service):
    newest first, one per mask, at most ``limit``."""
    if limit <= 0:
        return []
    rows = session.scalars(
        select(MaskAttempt)
        .where(MaskAttempt.user_id == user_id, MaskAttempt.created_at >= now - RECHECK_WINDOW,
               MaskAttempt.action.in_((AttemptAction.UNSET, AttemptAction.EXTEND)), *_timed_out_clauses(),
               MaskAttempt.target_id.is_not(None))
        .order_by(MaskAttempt.created_at.desc(), MaskAttempt.id.desc())  # the index's order
        .limit(20))
    found, seen = [], set()
    for row in rows:
        if row.target_id in seen:
            continue
        seen.add(row.target_id)
        target = session.get(MaskAttempt, row.target_id)
        if target is not None and target.ended_at is None and target.masking_id is not None:
            found.append(row)
            if len(found) >= limit:
                break
    return found


def _carried_out(change: MaskAttempt, now: datetime, expires_at: datetime | None) -> None:
    change.outcome = AttemptOutcome.SUCCESS
    change.expires_at = expires_at
    change.error_message = _late_note(change, now, "ended" if change.action == AttemptAction.UNSET
                                      else "extended")[:500]


def _pending_end(session: Session, target: MaskAttempt, now: datetime) -> MaskAttempt | None:
    """The latest end of ``target`` that timed out within ``RECHECK_WINDOW``, by its agent."""
    rows = session.scalars(
        select(MaskAttempt)
        .where(MaskAttempt.target_id == target.id, MaskAttempt.user_id == target.user_id,
               MaskAttempt.action == AttemptAction.UNSET, MaskAttempt.created_at >= now - RECHECK_WINDOW,
               *_timed_out_clauses())
        .order_by(MaskAttempt.id.desc())
        .limit(1))
    return next(iter(rows), None)


def _follow_end(session: Session, target: MaskAttempt, masking: dict | None, now: datetime) -> None:
    """The masking has ended at the service: its agent's own end that timed out did it, if there
    is one (it becomes a success), else it was ended outside the dashboard."""
    ended = parse_iso_utc((masking or {}).get("ended_at")) or now
    pending = _pending_end(session, target, now)
    if pending is not None:
        mark_ended(target, ended, by_user_id=pending.user_id)
        _carried_out(pending, now, None)
    else:
        mark_ended(target, ended, by_user_id=None, note=ENDED_OUTSIDE)


def follow_change(session: Session, change_id: int, masking: dict, now: datetime) -> str | None:
    """Bring the set row of the timed-out end or extend ``change_id`` up to date with ``masking``
    (Masking/get's answer): the service's expiry is the one that counts, and an end or extend
    it carried out late becomes a success. Inside ``db.write_transaction`` (rows re-read under
    lock). Returns ENDED, EXTENDED, EXPIRED, or None when nothing changed."""
    change = reread(session, change_id, lock=True)
    target = reread(session, change.target_id, lock=True) if change is not None and change.target_id else None
    if target is None or target.ended_at is not None:
        return None
    status, expires = masking.get("status"), parse_iso_utc(masking.get("expires_at"))
    if status == ENDED:
        _follow_end(session, target, masking, now)
        return ENDED
    if expires is None or expires == target.expires_at:
        return None
    target.expires_at = expires
    if change.action == AttemptAction.EXTEND and timed_out(change) and change.requested_minutes:
        asked = change.created_at + timedelta(minutes=change.requested_minutes)
        if asked - CLOCK_SKEW <= expires <= asked + LATE_BY + CLOCK_SKEW:
            _carried_out(change, now, expires)
    return EXTENDED if status == ACTIVE else EXPIRED


def follow_missing(session: Session, target_id: int, masking: dict | None, now: datetime) -> bool:
    """The service answered 1506 for the set row ``target_id`` (no active masking): take in how it
    ended, from ``masking`` (Masking/get's answer, None if unknown). Inside
    ``db.write_transaction``. False when our record says it had ended already (then nothing
    is changed: an end is never overwritten)."""
    target = reread(session, target_id, lock=True)
    if target is None or target.ended_at is not None:
        return False
    status, expires = (masking or {}).get("status"), parse_iso_utc((masking or {}).get("expires_at"))
    if status == EXPIRED and expires is not None:
        target.expires_at = expires
    elif status != ACTIVE:
        _follow_end(session, target, masking, now)
    return True
