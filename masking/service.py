"""The masking rules: set, unset, get, list. Plain Python over a SQLAlchemy session.

Every call takes ``now`` (naive UTC) so expiry is exact and testable. Writes run in
``write_transaction``; the invariants hold because the database refuses to break them:

* (R) ``routes`` has one row per (masking number, party): unique index.
* (P) ``active_pairs`` has one row per unordered pair: primary key.

On SQLite, BEGIN IMMEDIATE serialises allocations, so the checks below see every
committed masking. On PostgreSQL (READ COMMITTED) two allocations may read the same
state; the loser's INSERT then fails on the unique index and the whole allocation is
retried, when it sees the winner and answers 1503, 1505 or another number.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import errors
from .db import is_sqlite, write_transaction
from .errors import MaskingError
from .expiry import END_NOW, parse_instant, resolve_expiry
from .accounts import Principal
from .models import ActivePair, Masking, MaskingStatus, PoolNumber, PoolStatus, Route
from .phone import PhoneNumberError, normalise, normalise_field, redact, region_of
from .settings import MaskingSettings
from .clock import iso_utc

log = logging.getLogger("masking.service")

MAX_EVENT_ID = 255
ALLOCATION_ATTEMPTS = 8
LIST_DEFAULT_LIMIT = 50
LIST_MAX_LIMIT = 500
# PostgreSQL SQLSTATEs worth a retry: serialization failure, deadlock detected, and a unique
# index refusing our row (a concurrent allocation won the race). Other refusals (check, foreign
# key, trigger) would only repeat on retry: they are 1504.
_RETRY_SQLSTATES = {"40001", "40P01", "23505"}
_RETRY_SQLITE_ERRORS = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


# ---------------------------------------------------------------- reading requests

@dataclass(frozen=True)
class SetRequest:
    m1: str
    m2: str
    event_id: str | None
    expires_at: datetime


def read_event_id(body: dict) -> str | None:
    value = body.get("eventId")
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MaskingError(errors.INVALID_PARAMETERS, "eventId must be a string")
    value = str(value).strip()
    if len(value) > MAX_EVENT_ID:
        raise MaskingError(errors.INVALID_PARAMETERS, f"eventId must be at most {MAX_EVENT_ID} characters")
    return value or None


def read_set_request(body: dict, now: datetime, settings: MaskingSettings) -> SetRequest:
    """Validate a set body, in the order a client fixes things: numbers, sameness, expiry."""
    m1 = normalise_field(body, "m1", settings.default_region)
    m2 = normalise_field(body, "m2", settings.default_region)
    if m1 == m2:
        raise MaskingError(errors.SAME_NUMBERS, f"m1 and m2 are both {redact(m1)}")
    expires_at = resolve_expiry(body, now, zone=settings.zone, default_minutes=settings.default_expiry_minutes,
                                max_minutes=settings.max_expiry_minutes)
    return SetRequest(m1=m1, m2=m2, event_id=read_event_id(body), expires_at=expires_at)


def read_selector(body: dict, settings: MaskingSettings) -> dict[str, str]:
    """The numbers (mask, m1, m2) that pick maskings for unset; at least one is required."""
    selector = {}
    for field in ("mask", "m1", "m2"):
        if body.get(field) not in (None, ""):
            selector[field] = normalise_field(body, field, settings.default_region)
    if not selector:
        raise MaskingError(errors.INVALID_PARAMETERS, "give at least one of mask, m1, m2")
    return selector


# ---------------------------------------------------------------- presenting

def masking_view(masking: Masking, now: datetime) -> dict:
    return {
        "id": masking.id,
        "mask": masking.mask_number,
        "m1": masking.m1,
        "m2": masking.m2,
        "eventId": masking.event_id,
        "status": masking.status_at(now),
        "created_at": iso_utc(masking.created_at),
        "expires_at": iso_utc(masking.expires_at),
        "ended_at": iso_utc(masking.ended_at),
    }


# ---------------------------------------------------------------- set

def _retryable(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    return getattr(exc.orig, "sqlite_errorname", None) in _RETRY_SQLITE_ERRORS


def create_masking(session: Session, account: Principal, request: SetRequest, now: datetime,
                   settings: MaskingSettings) -> Masking:
    """Store a masking for ``request`` on a pool number both parties can use, or refuse.

    1503 if the pair already has a live masking, 1505 if no number fits, 1504 if the
    database refuses the write for another reason. Nothing is half-written.
    """
    for attempt in range(ALLOCATION_ATTEMPTS):
        try:
            with write_transaction(session):
                return _allocate(session, account.id, request, now, settings)
        except DBAPIError as exc:
            if not _retryable(exc):
                # hide_parameters keeps the phone numbers out of this message.
                log.error("masking not stored: %s", exc)
                raise MaskingError(errors.NOT_INSERTED, "the database refused the masking") from exc
            # A concurrent allocation won the race; back off a little and look again.
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise MaskingError(errors.NO_NUMBER, "the pool is too contended right now; try again")


# The allocation's statements, built once: inside the write lock every microsecond counts.
_FIND_PAIR = (
    select(ActivePair.masking_id, ActivePair.expires_at)
    .where(ActivePair.party_low == bindparam("low"), ActivePair.party_high == bindparam("high"))
)
_DROP_DEAD_PAIR = (
    delete(ActivePair)
    .where(ActivePair.party_low == bindparam("low"), ActivePair.party_high == bindparam("high"),
           ActivePair.expires_at <= bindparam("now"))
)
# Leases whose hold (expiry + cool-off) has passed no longer bind these parties.
_DROP_DEAD_ROUTES = (
    delete(Route)
    .where(Route.party.in_([bindparam("m1"), bindparam("m2")]), Route.hold_until <= bindparam("now"))
)
_HELD_BY_PARTIES = select(Route.mask_number).where(Route.party.in_([bindparam("m1"), bindparam("m2")]))
_PICK_ANY = (
    select(PoolNumber.id, PoolNumber.number)
    .where(PoolNumber.status == PoolStatus.ACTIVE, PoolNumber.number.not_in(_HELD_BY_PARTIES))
    .order_by(PoolNumber.last_allocated_at, PoolNumber.id)
    .limit(1)
)
_PICK_IN_COUNTRY = _PICK_ANY.where(PoolNumber.country == bindparam("country"))
# PostgreSQL: concurrent allocations take different numbers instead of queueing on one row;
# when every candidate is locked, wait for one rather than answer 1505.
_PICKS = {
    (geo, postgres): [
        variant
        for query in ((_PICK_ANY,) if geo == "off" else (_PICK_IN_COUNTRY,) if geo == "require"
                      else (_PICK_IN_COUNTRY, _PICK_ANY))
        for variant in ((query.with_for_update(skip_locked=True), query.with_for_update()) if postgres else (query,))
    ]
    for geo in ("off", "require", "prefer") for postgres in (False, True)
}
_INSERT_MASKING = insert(Masking.__table__).returning(Masking.__table__.c.id)
_INSERT_ROUTES = insert(Route.__table__)
_INSERT_PAIR = insert(ActivePair.__table__)
_MARK_ALLOCATED = (
    update(PoolNumber)
    .where(PoolNumber.id == bindparam("pool_id"))
    .values(last_allocated_at=bindparam("now"), allocation_count=PoolNumber.allocation_count + 1)
)


def _allocate(session: Session, account_id: int, request: SetRequest, now: datetime,
              settings: MaskingSettings) -> Masking:
    m1, m2 = request.m1, request.m2
    low, high = sorted((m1, m2))
    parties = {"m1": m1, "m2": m2, "now": now}
    # Core statements on the session's connection: no ORM bookkeeping inside the lock.
    conn = session.connection()

    pair = conn.execute(_FIND_PAIR, {"low": low, "high": high}).first()
    if pair is not None:
        if pair.expires_at > now:
            raise _pair_active(session, account_id, pair.masking_id)
        conn.execute(_DROP_DEAD_PAIR, {"low": low, "high": high, "now": now})
    conn.execute(_DROP_DEAD_ROUTES, parties)

    chosen = _pick_number(conn, parties, region_of(m1), settings.geo_match,
                          postgres=not is_sqlite(conn.engine))
    if chosen is None:
        raise MaskingError(errors.NO_NUMBER, _why_no_number(conn, region_of(m1), settings.geo_match))
    pool_id, mask_number = chosen

    masking = Masking(account_id=account_id, pool_number_id=pool_id, mask_number=mask_number,
                      m1=m1, m2=m2, event_id=request.event_id, created_at=now,
                      expires_at=request.expires_at, ended_at=None)
    masking.id = conn.execute(_INSERT_MASKING, {
        "account_id": account_id, "pool_number_id": pool_id, "mask_number": mask_number, "m1": m1, "m2": m2,
        "event_id": request.event_id, "created_at": now, "expires_at": request.expires_at,
    }).scalar_one()
    hold_until = request.expires_at + timedelta(seconds=settings.cooloff_seconds)
    # Sorted inserts: two transactions never wait on each other's rows in opposite order.
    conn.execute(_INSERT_ROUTES, [
        {"mask_number": mask_number, "party": party, "other_party": other, "masking_id": masking.id,
         "route_until": request.expires_at, "hold_until": hold_until}
        for party, other in sorted(((m1, m2), (m2, m1)))
    ])
    conn.execute(_INSERT_PAIR, {"party_low": low, "party_high": high, "masking_id": masking.id,
                                "expires_at": request.expires_at})
    conn.execute(_MARK_ALLOCATED, {"pool_id": pool_id, "now": now})
    return masking


def _why_no_number(conn: Connection, country: str | None, geo_match: str) -> str:
    """The 1505 detail: an empty pool and an exhausted one call for different fixes."""
    usable = select(func.count()).select_from(PoolNumber).where(PoolNumber.status == PoolStatus.ACTIVE)
    if geo_match == "require" and country:
        usable = usable.where(PoolNumber.country == country)
        if not conn.execute(usable).scalar():
            return f"the pool has no active number in {country} (GEO_MATCH=require)"
    elif not conn.execute(usable).scalar():
        return "the pool has no active number"
    return "every active pool number is in use by one of these parties, or cooling off after one of their maskings"


def _pair_active(session: Session, account_id: int, masking_id: int) -> MaskingError:
    existing = session.get(Masking, masking_id)
    if existing is None or existing.account_id != account_id:
        # Another account's masking: say that it exists, not which number it uses.
        return MaskingError(errors.PAIR_ACTIVE, "these two numbers already have an active masking")
    return MaskingError(
        errors.PAIR_ACTIVE,
        f"these two numbers are already masked behind {existing.mask_number} until {iso_utc(existing.expires_at)}",
        data={"id": existing.id, "mask": existing.mask_number, "expires_at": iso_utc(existing.expires_at)},
    )


def _pick_number(conn: Connection, parties: dict, country: str | None, geo_match: str, *, postgres: bool):
    """The least recently given active number that neither party holds (geo rule applied)."""
    params = {**parties, "country": country}
    for query in _PICKS["off" if country is None else geo_match, postgres]:
        row = conn.execute(query, params).first()
        if row is not None:
            return row.id, row.number
    return None


# ---------------------------------------------------------------- unset

def _live(now: datetime):
    return and_(Masking.ended_at.is_(None), Masking.expires_at > now)


def _party_filter(number: str):
    return or_(Masking.m1 == number, Masking.m2 == number)


def update_maskings(session: Session, account: Principal, body: dict, now: datetime,
                    settings: MaskingSettings) -> tuple[str, list[Masking]]:
    """Unset: end (no expiry, or duration <= 0) or re-time the account's live maskings
    matching ``mask``/``m1``/``m2``. A number given as m1 or m2 matches either party.

    Returns ("ended" | "extended", maskings). 1506 when none matches.
    """
    selector = read_selector(body, settings)
    new_expiry = resolve_expiry(body, now, zone=settings.zone, default_minutes=None,
                                max_minutes=settings.max_expiry_minutes, allow_end=True)
    with write_transaction(session):
        # Candidates through the small routes table (live and cooling-off maskings only), not
        # through the maskings' whole history on that number or party.
        candidates = select(Route.masking_id).where(Route.route_until > now)
        if "mask" in selector:
            candidates = candidates.where(Route.mask_number == selector["mask"])
        party = selector.get("m1") or selector.get("m2")
        if party:
            candidates = candidates.where(Route.party == party)
        query = (select(Masking)
                 .where(Masking.id.in_(candidates), Masking.account_id == account.id, _live(now))
                 .order_by(Masking.id))
        for field in ("m1", "m2"):
            if field in selector:
                query = query.where(_party_filter(selector[field]))
        maskings = list(session.scalars(query.with_for_update()))
        if not maskings:
            raise MaskingError(errors.NOT_FOUND, "no active masking of this account matches " +
                               ", ".join(f"{k}={redact(v)}" for k, v in selector.items()))
        ids = [m.id for m in maskings]
        if new_expiry == END_NOW:
            action, route_until = "ended", now
            for masking in maskings:
                masking.ended_at = now
            session.execute(delete(ActivePair).where(ActivePair.masking_id.in_(ids)))
        else:
            action, route_until = "extended", new_expiry
            for masking in maskings:
                masking.expires_at = new_expiry
            session.execute(update(ActivePair).where(ActivePair.masking_id.in_(ids)).values(expires_at=new_expiry))
        session.execute(
            update(Route).where(Route.masking_id.in_(ids))
            .values(route_until=route_until, hold_until=route_until + timedelta(seconds=settings.cooloff_seconds))
        )
        session.flush()
    return action, maskings


# ---------------------------------------------------------------- get and list

def read_id(raw, field: str = "id") -> int:
    if isinstance(raw, bool) or raw is None or raw == "":
        raise MaskingError(errors.INVALID_PARAMETERS, f"{field} is required" if raw in (None, "") else
                           f"{field} must be a whole number")
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if not isinstance(raw, int) or raw < 1 or raw > 2**62:
        raise MaskingError(errors.INVALID_PARAMETERS, f"{field} must be a positive whole number")
    return raw


def get_masking(session: Session, account: Principal, masking_id) -> Masking:
    masking_id = read_id(masking_id)
    masking = session.get(Masking, masking_id)
    if masking is None or masking.account_id != account.id:
        raise MaskingError(errors.NOT_FOUND, f"no masking {masking_id} belongs to this account")
    return masking


def list_maskings(session: Session, account: Principal, body: dict, now: datetime,
                  settings: MaskingSettings) -> tuple[list[Masking], int | None]:
    """The account's maskings, newest first, filtered; returns (page, next cursor or None).

    Filters: m1, m2 (either party), mask, eventId, status (active|expired|ended),
    created_from, created_to (inclusive, any expiry_time format). Keyset pagination:
    pass the returned ``next_cursor`` as ``cursor``.
    """
    query = select(Masking).where(Masking.account_id == account.id)
    for field in ("m1", "m2"):
        if body.get(field) not in (None, ""):
            query = query.where(_party_filter(normalise_field(body, field, settings.default_region)))
    if body.get("mask") not in (None, ""):
        query = query.where(Masking.mask_number == normalise_field(body, "mask", settings.default_region))
    if body.get("eventId") not in (None, ""):
        query = query.where(Masking.event_id == read_event_id(body))
    status = body.get("status")
    if status not in (None, ""):
        if status == MaskingStatus.ACTIVE:
            query = query.where(_live(now))
        elif status == MaskingStatus.EXPIRED:
            query = query.where(Masking.ended_at.is_(None), Masking.expires_at <= now)
        elif status == MaskingStatus.ENDED:
            query = query.where(Masking.ended_at.is_not(None))
        else:
            raise MaskingError(errors.INVALID_PARAMETERS, "status must be one of active, expired, ended")
    for field, op in (("created_from", Masking.created_at.__ge__), ("created_to", Masking.created_at.__le__)):
        if body.get(field) not in (None, ""):
            query = query.where(op(parse_instant(body[field], settings.zone, field, errors.INVALID_PARAMETERS)))
    limit = LIST_DEFAULT_LIMIT
    if body.get("limit") not in (None, ""):
        limit = read_id(body["limit"], "limit")
        if limit > LIST_MAX_LIMIT:
            raise MaskingError(errors.INVALID_PARAMETERS, f"limit must be at most {LIST_MAX_LIMIT}")
    if body.get("cursor") not in (None, ""):
        query = query.where(Masking.id < read_id(body["cursor"], "cursor"))
    rows = list(session.scalars(query.order_by(Masking.id.desc()).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


# ---------------------------------------------------------------- routing

def route_call(session: Session, caller, dialled, now: datetime, default_region: str) -> str | None:
    """The telephone switch's question: caller dialled a masking number; who is on the other side?

    One lookup on the unique (mask_number, party) index. None: no live masking (out of session).
    """
    try:
        caller, dialled = normalise(caller, default_region), normalise(dialled, default_region)
    except PhoneNumberError:
        return None
    return session.scalar(
        select(Route.other_party)
        .where(Route.mask_number == dialled, Route.party == caller, Route.route_until > now)
    )


def sweep(session: Session, now: datetime) -> dict[str, int]:
    """Remove leases whose time has passed. Housekeeping only; correctness never waits for it."""
    with write_transaction(session):
        routes = session.execute(delete(Route).where(Route.hold_until <= now)).rowcount
        pairs = session.execute(delete(ActivePair).where(ActivePair.expires_at <= now)).rowcount
    return {"routes": routes, "pairs": pairs}
