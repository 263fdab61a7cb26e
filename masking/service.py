"""The masking rules: set, unset, get, list. Plain Python, no Flask.

Set and unset, the busy calls, run driver-level SQL (``masking.driver``) in a write
transaction (``masking.group_commit.run_write``); get, list and the rest use the ORM.
Every call takes ``now`` (naive UTC) so expiry is exact and testable. The invariants
hold because the database refuses to break them:

* (R) ``routes`` has one row per (masking number, party): unique index.
* (P) ``active_pairs`` has one row per unordered pair: primary key.

On SQLite, BEGIN IMMEDIATE serialises allocations, so the checks below see every
committed masking. On PostgreSQL (READ COMMITTED) two allocations may read the same
state; the loser's INSERT then fails on the unique index and the whole allocation is
retried, when it sees the winner and answers 1503, 1505 or another number.
"""
from __future__ import annotations

import functools
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import errors
from .accounts import Principal
from .clock import iso_utc
from .db import write_transaction
from .driver import DriverConnection, Statement, describe_error, read_timestamp
from .errors import MaskingError, text_field
from .expiry import END_NOW, parse_instant, resolve_expiry
from .group_commit import run_write
from .models import MAX_ROW_ID, ActivePair, Masking, MaskingStatus, Route
from .phone import PhoneNumberError, normalise, normalise_field, redact, region_of
from .settings import MaskingSettings

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
    value = (text_field(body, "eventId") or "").strip()
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


def create_masking(conn: DriverConnection, account: Principal, request: SetRequest, now: datetime,
                   settings: MaskingSettings) -> Masking:
    """Store a masking for ``request`` on a pool number both parties can use, or refuse.

    1503 if the pair already has a live masking, 1505 if no number fits, 1504 if the
    database refuses the write for another reason. Nothing is half-written.
    """
    params = _allocation_params(conn, account.id, request, now, settings)  # prepared outside the write lock
    for attempt in range(ALLOCATION_ATTEMPTS):
        try:
            masking_id, pool_id, mask = run_write(conn, lambda c: _allocate(c, params, settings))
            return Masking(id=masking_id, account_id=account.id, pool_number_id=pool_id,
                           mask_number=mask, m1=request.m1, m2=request.m2, event_id=request.event_id,
                           created_at=now, expires_at=request.expires_at, ended_at=None)
        except _NoNumberFits:
            # Why no number fits is counted once the write lock is free: it needs no lock.
            raise _why_no_number(conn, params, settings.geo_match) from None
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise  # the database went away, it refused nothing: 1010, as for any call
            if not _retryable(exc):
                log.error("masking not stored: %s", describe_error(exc))
                raise MaskingError(errors.NOT_INSERTED, "the database refused the masking") from exc
            # A concurrent allocation won the race; back off a little and look again.
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise MaskingError(errors.NO_NUMBER, "the pool is too contended right now; try again")


# The allocation's statements, at the driver level (masking.driver): inside SQLite's write
# lock every microsecond counts, and on PostgreSQL every statement is a round trip.
# One row: the pair's masking and whether it is live (NULLs when there is none), and which of
# the parties, if any, is one of our own masking numbers (active or reserved: a retired one may
# be someone's real number again). A masking number as a party would loop calls back into us.
_FIND_PAIR = Statement("""
    SELECT pair.masking_id, pair.expires_at > :now,
           (SELECT min(number) FROM pool_numbers WHERE number IN (:m1, :m2) AND status <> 'retired')
    FROM (SELECT 1 AS one) AS one
    LEFT JOIN active_pairs AS pair ON pair.party_low = :low AND pair.party_high = :high
""")
# The expiry test stays in the DELETE: on PostgreSQL a concurrent allocation may have replaced
# the dead pair with a live one since we looked.
_DROP_DEAD_PAIR = Statement("""
    DELETE FROM active_pairs WHERE party_low = :low AND party_high = :high AND expires_at <= :now
""")
# Leases whose hold (expiry + cool-off) has passed no longer bind these parties.
_DROP_DEAD_ROUTES = Statement("DELETE FROM routes WHERE party IN (:m1, :m2) AND hold_until <= :now")
# PostgreSQL: both in one round trip (a data-modifying CTE runs whether or not it is read).
_DROP_DEAD_ROUTES_FIND_PAIR = Statement(f"""
    WITH dead_routes AS ({_DROP_DEAD_ROUTES.named})
    {_FIND_PAIR.named}
""")
# The least recently given active number that neither party holds, taken and marked in one
# statement. {country} is empty or the geo filter; {lock} is empty on SQLite (BEGIN IMMEDIATE
# already serialises writers) and, on PostgreSQL, makes concurrent allocations take
# different numbers instead of queueing on one row.
_TAKE_NUMBER = """
    UPDATE pool_numbers SET last_allocated_at = :now, allocation_count = allocation_count + 1
    WHERE id = (
        SELECT id FROM pool_numbers
        WHERE status = 'active' {country}
          AND number NOT IN (SELECT mask_number FROM routes WHERE party IN (:m1, :m2))
        ORDER BY last_allocated_at, id LIMIT 1 {lock})
    RETURNING id, number
"""
_COUNTRY = "AND country = :country"
# Storing a masking: the masking, both leases (sorted: two transactions never wait on each
# other's rows in opposite order) and the pair.
_INSERT_MASKING = Statement("""
    INSERT INTO maskings (account_id, pool_number_id, mask_number, m1, m2, event_id, created_at, expires_at)
    VALUES (:account_id, :pool_id, :mask, :m1, :m2, :event_id, :now, :expires_at)
    RETURNING id
""")
_INSERT_ROUTES = Statement("""
    INSERT INTO routes (mask_number, party, other_party, masking_id, route_until, hold_until)
    VALUES (:mask, :low, :high, :masking_id, :expires_at, :hold_until),
           (:mask, :high, :low, :masking_id, :expires_at, :hold_until)
""")
_INSERT_PAIR = Statement("""
    INSERT INTO active_pairs (party_low, party_high, masking_id, expires_at)
    VALUES (:low, :high, :masking_id, :expires_at)
""")
# PostgreSQL: taking the number and the three inserts in one statement, one round trip. It
# returns no row when no number fits; a unique index refusing a row fails it whole.
_TAKE_AND_STORE = """
    WITH taken AS ({take}),
    masking AS (
        INSERT INTO maskings (account_id, pool_number_id, mask_number, m1, m2, event_id, created_at, expires_at)
        SELECT :account_id, id, number, :m1, :m2, :event_id, :now, :expires_at FROM taken
        RETURNING id, pool_number_id, mask_number),
    leases AS (
        INSERT INTO routes (mask_number, party, other_party, masking_id, route_until, hold_until)
        SELECT mask_number, party, other_party, id, :expires_at, :hold_until
        FROM masking, (VALUES (:low, :high), (:high, :low)) AS leases (party, other_party)),
    pair AS (
        INSERT INTO active_pairs (party_low, party_high, masking_id, expires_at)
        SELECT :low, :high, id, :expires_at FROM masking)
    SELECT id, pool_number_id, mask_number FROM masking
"""


def _take_number_statements(geo: str, postgres: bool) -> list[Statement]:
    """The statements to try in order, for a geo rule (off, require, prefer) and a backend.

    On SQLite each takes a number (the inserts follow). On PostgreSQL each also stores the
    masking, and each query is tried skipping locked rows first, then waiting for one: when
    every candidate is locked by a concurrent allocation, wait rather than answer 1505.
    """
    filters = {"off": [""], "require": [_COUNTRY], "prefer": [_COUNTRY, ""]}[geo]
    if not postgres:
        return [Statement(_TAKE_NUMBER.format(country=country, lock="")) for country in filters]
    return [Statement(_TAKE_AND_STORE.format(take=_TAKE_NUMBER.format(country=country, lock=lock)))
            for country in filters for lock in ("FOR UPDATE SKIP LOCKED", "FOR UPDATE")]


_TAKE_NUMBER_STATEMENTS = {(geo, postgres): _take_number_statements(geo, postgres)
                           for geo in ("off", "require", "prefer") for postgres in (False, True)}


class _NoNumberFits(Exception):
    """Raised inside the write lock; ``create_masking`` answers 1505 once the lock is free."""


def _allocation_params(conn: DriverConnection, account_id: int, request: SetRequest, now: datetime,
                       settings: MaskingSettings) -> dict:
    """The allocation's bind parameters (the same for every attempt)."""
    low, high = sorted((request.m1, request.m2))
    return {"m1": request.m1, "m2": request.m2, "low": low, "high": high, "now": conn.timestamp(now),
            "country": region_of(request.m1), "account_id": account_id, "event_id": request.event_id,
            "expires_at": conn.timestamp(request.expires_at),
            "hold_until": conn.timestamp(request.expires_at + timedelta(seconds=settings.cooloff_seconds))}


def _allocate(conn: DriverConnection, params: dict, settings: MaskingSettings) -> tuple[int, int, str]:
    """Take a number and store the masking; returns (masking id, pool number id, masking number)."""
    if conn.sqlite:
        conn.execute(_DROP_DEAD_ROUTES, params)
        pair = conn.first(_FIND_PAIR, params)
    else:
        pair = conn.first(_DROP_DEAD_ROUTES_FIND_PAIR, params)
    masking_id, live, pooled = pair
    if pooled is not None:
        field = "m1" if pooled == params["m1"] else "m2"
        raise MaskingError(errors.INVALID_PARAMETERS, f"{field} is one of this service's masking numbers "
                                                      f"({pooled}); give the party's own number")
    if masking_id is not None:
        if live:
            raise _pair_active(conn, params["account_id"], masking_id)
        conn.execute(_DROP_DEAD_PAIR, params)

    country = params["country"]
    geo = "off" if country is None else settings.geo_match
    for statement in _TAKE_NUMBER_STATEMENTS[geo, not conn.sqlite]:
        taken = conn.first(statement, params)
        if taken is not None:
            break
    else:
        raise _NoNumberFits
    if not conn.sqlite:
        return taken  # (masking id, pool number id, masking number): stored by the same statement
    pool_id, mask = taken
    stored = {**params, "pool_id": pool_id, "mask": mask}
    stored["masking_id"] = conn.first(_INSERT_MASKING, stored)[0]
    conn.execute(_INSERT_ROUTES, stored)
    conn.execute(_INSERT_PAIR, stored)
    return stored["masking_id"], pool_id, mask


_COUNT_ACTIVE = Statement("SELECT count(*) FROM pool_numbers WHERE status = 'active'")
_COUNT_ACTIVE_IN = Statement("SELECT count(*) FROM pool_numbers WHERE status = 'active' AND country = :country")
# Per party, the active pool numbers it holds through this account's maskings: live, or cooling
# off after one that ended (ix_routes_party). The first form for any country, the second for
# GEO_MATCH=require. Other accounts' maskings are not counted: as for 1503, an account learns
# that they exist, not what they are.
_HELD = """
    SELECT r.party, sum(CASE WHEN r.route_until > :now THEN 1 ELSE 0 END), count(*)
    FROM routes r JOIN pool_numbers p ON p.number = r.mask_number JOIN maskings m ON m.id = r.masking_id
    WHERE r.party IN (:m1, :m2) AND r.hold_until > :now AND p.status = 'active' AND m.account_id = :account_id{country}
    GROUP BY r.party
"""
_HELD_ANY = Statement(_HELD.format(country=""))
_HELD_IN = Statement(_HELD.format(country=" AND p.country = :country"))


def _why_no_number(conn: DriverConnection, params: dict, geo_match: str) -> MaskingError:
    """The 1505: an empty pool and an exhausted one call for different fixes, and an exhausted
    one is usually one busy party (a driver in many deliveries): say which, and how busy in this
    account's maskings."""
    country = params["country"] if geo_match == "require" else None
    if country:
        total = conn.first(_COUNT_ACTIVE_IN, {"country": country})[0]
        if not total:
            return MaskingError(errors.NO_NUMBER, f"the pool has no active number in {country} (GEO_MATCH=require)")
    else:
        total = conn.first(_COUNT_ACTIVE)[0]
        if not total:
            return MaskingError(errors.NO_NUMBER, "the pool has no active number")
    held = {party: (int(live or 0), int(n)) for party, live, n in
            conn.rows(_HELD_IN if country else _HELD_ANY, {**params, "country": country})}
    parts, data = [], {"active_numbers": total}
    for field in ("m1", "m2"):
        live, n = held.get(params[field], (0, 0))
        data[f"{field}_holds"] = n
        state = "live" if n == live else "cooling off" if not live else f"{live} live, {n - live} cooling off"
        parts.append(f"{n} for {field} ({state})" if n else f"none for {field}")
    where = f" in {country}" if country else ""
    others = "" if data["m1_holds"] + data["m2_holds"] >= total else "; the others through other accounts' maskings"
    return MaskingError(errors.NO_NUMBER, "every active pool number is in use by one of these parties, or cooling "
                                          f"off after one of their maskings: of the {total} active numbers{where}, "
                                          f"this account's maskings hold {parts[0]} and {parts[1]}{others}", data=data)


_MASKING_FOR_1503 = Statement("SELECT account_id, mask_number, expires_at FROM maskings WHERE id = :id")


def _pair_active(conn: DriverConnection, account_id: int, masking_id: int) -> MaskingError:
    existing = conn.first(_MASKING_FOR_1503, {"id": masking_id})
    if existing is None or existing[0] != account_id:
        # Another account's masking: say that it exists, not which number it uses.
        return MaskingError(errors.PAIR_ACTIVE, "these two numbers already have an active masking")
    _, mask, expires_at = existing
    expires = iso_utc(read_timestamp(expires_at))
    return MaskingError(
        errors.PAIR_ACTIVE, f"these two numbers are already masked behind {mask} until {expires}",
        data={"id": masking_id, "mask": mask, "expires_at": expires},
    )


# ---------------------------------------------------------------- unset

def _party_filter(number: str):
    return or_(Masking.m1 == number, Masking.m2 == number)


def update_maskings(conn: DriverConnection, account: Principal, body: dict, now: datetime,
                    settings: MaskingSettings) -> tuple[str, list[Masking]]:
    """Unset: end (no expiry, or duration <= 0) or re-time the account's live maskings
    matching ``mask``/``m1``/``m2``. A number given as m1 or m2 matches either party.

    Returns ("ended" | "extended", maskings). 1506 when none matches.
    """
    selector = read_selector(body, settings)
    new_expiry = resolve_expiry(body, now, zone=settings.zone, default_minutes=None,
                                max_minutes=settings.max_expiry_minutes, allow_end=True)
    ending = new_expiry == END_NOW
    route_until = now if ending else new_expiry
    params = {**selector, "party": selector.get("m1") or selector.get("m2"), "account_id": account.id,
              "now": conn.timestamp(now), "route_until": conn.timestamp(route_until),
              "hold_until": conn.timestamp(route_until + timedelta(seconds=settings.cooloff_seconds))}
    rows = run_write(conn, lambda c: _update(c, frozenset(selector), ending, params))
    maskings = [
        Masking(id=masking_id, account_id=account.id, pool_number_id=pool_id, mask_number=mask, m1=m1, m2=m2,
                event_id=event_id, created_at=read_timestamp(created_at),
                expires_at=read_timestamp(expires_at) if ending else new_expiry, ended_at=now if ending else None)
        for masking_id, pool_id, mask, m1, m2, event_id, created_at, expires_at in rows
    ]
    return ("ended" if ending else "extended"), maskings


_MATCHING_COLUMNS = "id, pool_number_id, mask_number, m1, m2, event_id, created_at, expires_at"


@functools.lru_cache(maxsize=None)
def _matching_statement(fields: frozenset[str], postgres: bool) -> Statement:
    """The account's live maskings matching the given selector fields, oldest first.

    Candidates come through the routes table (leases of live and cooling-off maskings, until
    swept), not through the maskings' whole history on that number or party.
    """
    routes = ["route_until > :now"]
    if "mask" in fields:
        routes.append("mask_number = :mask")
    if fields & {"m1", "m2"}:
        routes.append("party = :party")
    parties = [f"(m1 = :{field} OR m2 = :{field})" for field in ("m1", "m2") if field in fields]
    return Statement(f"""
        SELECT {_MATCHING_COLUMNS} FROM maskings
        WHERE id IN (SELECT masking_id FROM routes WHERE {" AND ".join(routes)})
          AND account_id = :account_id AND ended_at IS NULL AND expires_at > :now
          {"".join(f" AND {p}" for p in parties)}
        ORDER BY id {"FOR UPDATE" if postgres else ""}
    """)


# The most ids one statement binds (SQLite allows 32,766 parameters).
_CHUNK = 500


@functools.lru_cache(maxsize=64)
def _unset_statements(ending: bool, count: int) -> tuple[Statement, Statement, Statement]:
    """End or re-time ``count`` maskings (ids :id0 ...): the masking, its pair, its leases."""
    ids = ", ".join(f":id{i}" for i in range(count))
    if ending:
        masking = Statement(f"UPDATE maskings SET ended_at = :now WHERE id IN ({ids})")
        pair = Statement(f"DELETE FROM active_pairs WHERE masking_id IN ({ids})")
    else:
        masking = Statement(f"UPDATE maskings SET expires_at = :route_until WHERE id IN ({ids})")
        pair = Statement(f"UPDATE active_pairs SET expires_at = :route_until WHERE masking_id IN ({ids})")
    routes = Statement(f"UPDATE routes SET route_until = :route_until, hold_until = :hold_until "
                       f"WHERE masking_id IN ({ids})")
    return masking, pair, routes


def _update(conn: DriverConnection, fields: frozenset[str], ending: bool, params: dict) -> list[tuple]:
    """End or re-time the matching maskings; returns their rows as they were (1506 if none)."""
    rows = conn.rows(_matching_statement(fields, not conn.sqlite), params)
    if not rows:
        raise MaskingError(errors.NOT_FOUND, "no active masking of this account matches " +
                           ", ".join(f"{k}={redact(params[k])}" for k in ("mask", "m1", "m2") if k in fields))
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        bound = {**params, **{f"id{i}": row[0] for i, row in enumerate(chunk)}}
        for statement in _unset_statements(ending, len(chunk)):
            conn.execute(statement, bound)
    return rows


# ---------------------------------------------------------------- get and list

def read_id(raw, field: str = "id") -> int:
    if isinstance(raw, bool) or raw is None or raw == "":
        raise MaskingError(errors.INVALID_PARAMETERS, f"{field} is required" if raw in (None, "") else
                           f"{field} must be a whole number")
    if isinstance(raw, str) and raw.strip().isdecimal() and len(raw.strip()) <= 20:  # isdecimal: int() takes it
        raw = int(raw.strip())
    if not isinstance(raw, int) or raw < 1 or raw > MAX_ROW_ID:
        raise MaskingError(errors.INVALID_PARAMETERS, f"{field} must be a positive whole number")
    return raw


def get_masking(session: Session, account: Principal, masking_id) -> Masking:
    masking_id = read_id(masking_id)
    masking = session.get(Masking, masking_id)
    if masking is None or masking.account_id != account.reads_id:
        owner = "this account" if account.reads_id == account.id else "the account this one reads for"
        raise MaskingError(errors.NOT_FOUND, f"no masking {masking_id} belongs to {owner}")
    return masking


def list_maskings(session: Session, account: Principal, body: dict, now: datetime,
                  settings: MaskingSettings) -> tuple[list[Masking], int | None]:
    """The account's maskings (a read-only account's: those of the account it reads for), newest
    first, filtered; returns (page, next cursor or None).

    Filters: m1, m2 (either party), mask, eventId, status (active|expired|ended),
    created_from, created_to (inclusive, any expiry_time format). Keyset pagination:
    pass the returned ``next_cursor`` as ``cursor``.
    """
    query = select(Masking).where(Masking.account_id == account.reads_id)
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
            query = query.where(Masking.live_at(now))
        elif status == MaskingStatus.EXPIRED:
            query = query.where(Masking.ended_at.is_(None), Masking.expires_at <= now)
        elif status == MaskingStatus.ENDED:
            query = query.where(Masking.ended_at.is_not(None))
        else:
            raise MaskingError(errors.INVALID_PARAMETERS, "status must be one of " + ", ".join(MaskingStatus.ALL))
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


SWEEP_BATCH = 1000


def sweep(session: Session, now: datetime, batch: int = SWEEP_BATCH) -> dict[str, int]:
    """Remove leases whose time has passed. Housekeeping only; correctness never waits for it.

    At most ``batch`` rows per transaction, so that a large backlog never holds the write lock
    long enough to keep a ``set`` waiting.
    """
    dead = {"routes": (Route, Route.id, Route.hold_until <= now),
            "pairs": (ActivePair, ActivePair.masking_id, ActivePair.expires_at <= now)}
    removed = {}
    for name, (model, key, condition) in dead.items():
        removed[name] = 0
        while True:
            with write_transaction(session):
                chunk = select(key).where(condition).limit(batch).scalar_subquery()
                # The condition again: on PostgreSQL a row may have changed since the subquery read it.
                count = session.execute(delete(model).where(key.in_(chunk), condition)).rowcount
            removed[name] += count
            if count < batch:
                break
    return removed
