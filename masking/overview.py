"""The supervisors' overview in figures: masks per day, failures by code, pool use, busiest agents. No Flask.

Two records of masking activity are read: the dashboard's own (``mask_attempts``: every
attempt of an agent, failed ones included) and the service's (``maskings``: every masking
made, whoever made it; a refused API call writes nothing). Pool use reads the pool
(``pool_numbers``) and the service's routing leases (``routes``).

* **Masks per day**: per local day (the configured zone) over the last ``DAYS`` days, today
  included: the dashboard's ``set`` attempts, split into successes and failures (error or
  unavailable), and the maskings integrators made through the API, i.e. those of accounts
  other than the dashboard's own (``dashboard_user_ids``): the dashboard's maskings are
  already counted as its successful attempts.
* **Failures by code**: failed attempts of any action (set, end, extend) over the same days,
  by the service's error code; no code means no usable answer (unreachable, timed out).
* **Pool use**: per pool status, how many numbers serve at least one live masking now
  (a route whose ``route_until`` is in the future) and how many are free.
* **Busiest agents**: users with the most ``set`` attempts over the last ``BUSY_DAYS`` local
  days (today included).

Queries and indexes (checked with EXPLAIN on SQLite and PostgreSQL, see ``explain_all``):

* Attempts are counted by one query shape, ``counts_query``: a range of
  ``ix_mask_attempts_created_at`` grouped by (local day, action, failed, code, user). The day
  of a row is found by comparing with the local midnights (a CASE), so any zone, DST
  included, is exact. Action, outcome, code and user are not in that index, so each row of
  the range is read once: about 0.5-0.7 s for the 30 days of a million-row table on a small
  machine (~340,000 rows in the window).
* Maskings likewise, ``api_counts_query``: a range of ``ix_maskings_created_at`` grouped by
  (local day, account). Grouping by account rather than filtering out the dashboard's keeps
  the counts independent of the configuration (the filter is applied in Python), and there
  are few accounts.
* Hence ``ClosedDays``: a local day that is over never changes (attempts and maskings are
  recorded at the instant they are made), so the page (``cache=``) counts each closed day
  once per process and afterwards scans only today's range (a few milliseconds). Without a
  cache every function here counts afresh (the tests, the CLI).
* Pool use: pool numbers by status, each probed with EXISTS on the ``routes`` unique index
  ``(mask_number, party)``.
"""
from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from .accounts import DASHBOARD_USER_ID
from .clock import local_midnight_utc
from .explain import code_label
from .humanize import to_local
from .models import ApiAccount, AttemptAction, AttemptOutcome, Masking, MaskAttempt, User
from .pool import StatusUse, use_by_status, use_by_status_query

DAYS = 30
BUSY_DAYS = 7
BUSY_LIMIT = 10
DASHBOARD_USER_IDS = (DASHBOARD_USER_ID,)  # the built-in account; the app adds the configured one


@dataclass(frozen=True)
class DayCount:
    day: date  # local date
    successes: int = 0  # in the dashboard
    failures: int = 0  # in the dashboard
    api: int = 0  # maskings made through the API by integrators' own accounts

    @property
    def made(self) -> int:
        return self.successes + self.api

    @property
    def total(self) -> int:
        """Everything the day's column shows: masks made, and the dashboard's failed attempts."""
        return self.successes + self.failures + self.api


@dataclass(frozen=True)
class CodeCount:
    code: int | None  # None: no usable answer from the service
    count: int

    @property
    def label(self) -> str:
        return code_label(self.code)


@dataclass(frozen=True)
class AgentCount:
    user_id: int
    username: str
    successes: int
    failures: int

    @property
    def total(self) -> int:
        return self.successes + self.failures


@dataclass
class Overview:
    now: datetime
    days: list[DayCount]
    failures: list[CodeCount]
    pool: list[StatusUse]
    busiest: list[AgentCount]
    day_span: int = DAYS
    busy_span: int = BUSY_DAYS

    @property
    def masks(self) -> int:
        """All the activity counted per day: masks made (dashboard and API) and failed attempts."""
        return sum(d.total for d in self.days)

    @property
    def masks_made(self) -> int:
        return sum(d.made for d in self.days)

    @property
    def api_masks(self) -> int:
        return sum(d.api for d in self.days)

    @property
    def mask_successes(self) -> int:
        return sum(d.successes for d in self.days)

    @property
    def mask_failures(self) -> int:
        return sum(d.failures for d in self.days)

    @property
    def failure_count(self) -> int:
        return sum(c.count for c in self.failures)

    @property
    def pool_total(self) -> int:
        return sum(p.total for p in self.pool)

    @property
    def pool_in_use(self) -> int:
        return sum(p.in_use for p in self.pool)

    @property
    def is_empty(self) -> bool:
        """Nothing at all to show (a fresh install): no attempts or maskings in the window, no pool."""
        return not self.masks and not self.failures and not self.busiest and not self.pool_total


# ---------------------------------------------------------------- time windows

def day_window(now: datetime, zone: ZoneInfo, days: int = DAYS) -> tuple[list[date], list[datetime]]:
    """The last ``days`` local dates (today last) and their ``days + 1`` boundaries in UTC."""
    today = to_local(now, zone).date()
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    bounds = [local_midnight_utc(d, zone) for d in dates] + [local_midnight_utc(today + timedelta(days=1), zone)]
    return dates, bounds


def _day_index(bounds: list[datetime], column=MaskAttempt.created_at):
    """SQL: the index of the local day ``column`` falls in (rows are within bounds[0]..bounds[-1])."""
    whens = [(column < bound, index) for index, bound in enumerate(bounds[1:-1])]
    return case(*(whens or [(column < bounds[-1], 0)]), else_=literal(len(bounds) - 2))


# ---------------------------------------------------------------- counting attempts and maskings

# (action, failed, error_code, user_id, count): one group of a local day's attempts.
Group = tuple[str, bool, "int | None", int, int]
# (account_id, count): one account's maskings of a local day.
ApiGroup = tuple[int, int]

ATTEMPTS, MASKINGS = "attempts", "maskings"  # what a ClosedDays entry counts


def counts_query(bounds: list[datetime]):
    """Attempts between ``bounds[0]`` and ``bounds[-1]`` grouped by (local day index, action,
    failed, code, user): a range of ``ix_mask_attempts_created_at``; action, outcome, code and
    user are read from the rows."""
    day = _day_index(bounds).label("day")
    failed = (MaskAttempt.outcome != AttemptOutcome.SUCCESS).label("failed")
    return (
        select(day, MaskAttempt.action, failed, MaskAttempt.error_code, MaskAttempt.user_id, func.count().label("n"))
        .where(MaskAttempt.created_at >= bounds[0], MaskAttempt.created_at < bounds[-1])
        .group_by(day, MaskAttempt.action, failed, MaskAttempt.error_code, MaskAttempt.user_id)
    )


def api_counts_query(bounds: list[datetime]):
    """Maskings between ``bounds[0]`` and ``bounds[-1]`` grouped by (local day index, account):
    a range of ``ix_maskings_created_at``; the account is read from the rows."""
    day = _day_index(bounds, Masking.created_at).label("day")
    return (
        select(day, Masking.account_id, func.count().label("n"))
        .where(Masking.created_at >= bounds[0], Masking.created_at < bounds[-1])
        .group_by(day, Masking.account_id)
    )


def unavailable_query(bounds: list[datetime]):
    """Attempts with no usable answer per local day (index of the day, count): a range of
    ``ix_mask_attempts_outcome``. The one figure of a closed day that can still change: a
    timed-out call the service carried out all the same becomes a success when an agent's
    page finds its masking (``attempts.adopt``, ``attempts.follow_change``)."""
    day = _day_index(bounds).label("day")
    return (
        select(day, func.count().label("n"))
        .where(MaskAttempt.outcome == AttemptOutcome.UNAVAILABLE, MaskAttempt.error_code.is_(None),
               MaskAttempt.created_at >= bounds[0], MaskAttempt.created_at < bounds[-1])
        .group_by(day)
    )


def _attempt_group(action, failed, code, user_id, n) -> Group:
    return action, bool(failed), code, user_id, n


def _api_group(account_id, n) -> ApiGroup:
    return account_id, n


COUNTERS = {ATTEMPTS: (counts_query, _attempt_group), MASKINGS: (api_counts_query, _api_group)}


def _count_days(session: Session, bounds: list[datetime], first: int, last: int, kind: str = ATTEMPTS) -> dict:
    """The groups of days ``first`` .. ``last - 1`` (indexes into ``bounds``)."""
    found: dict[int, list] = {i: [] for i in range(first, last)}
    if first >= last:
        return found
    query, group = COUNTERS[kind]
    for day, *row in session.execute(query(bounds[first:last + 1])):
        found[first + int(day)].append(group(*row))
    return found


class ClosedDays:
    """The counts of local days that are over, kept in memory (one per process, e.g. on the app).

    Attempts and maskings are recorded with the instant they are made, so once a local day has
    ended (plus ``GRACE`` for a request that started before midnight and commits after) its
    counts barely change: each closed day is counted once, and a page only scans today. The
    exception is a timed-out attempt found later to have succeeded (its outcome changes): a
    day's attempts are kept with its count of unavailable ones (``stamp``), and counted again
    when that count no longer matches. Rows written into the past some other way (a bulk
    import, a restore) show after a restart.
    """

    GRACE = timedelta(minutes=5)
    KEEP = 64  # days kept per zone and kind

    def __init__(self):
        self._days: dict[tuple[str, str, date], tuple[list, int]] = {}
        self._lock = threading.Lock()  # one per process, shared by the worker's threads

    def get(self, zone: ZoneInfo, day: date, kind: str = ATTEMPTS, stamp: int | None = None) -> list | None:
        """The day's groups; None if it is not kept, or was counted with another ``stamp``."""
        found = self._days.get((kind, str(zone), day))
        return found[0] if found is not None and stamp in (None, found[1]) else None

    def put(self, zone: ZoneInfo, day: date, groups: list, kind: str = ATTEMPTS, stamp: int = 0) -> None:
        with self._lock:
            self._days[(kind, str(zone), day)] = (groups, stamp)
            if len(self._days) > self.KEEP * 2 * len(COUNTERS):
                for key in sorted(self._days, key=lambda k: k[2])[: len(self._days) - self.KEEP * len(COUNTERS)]:
                    del self._days[key]


def day_groups(session: Session, now: datetime, zone: ZoneInfo, days: int = DAYS,
               cache: ClosedDays | None = None, kind: str = ATTEMPTS) -> tuple[list[date], list[list]]:
    """The last ``days`` local dates and each one's groups of ``kind``; closed days from ``cache`` when given."""
    dates, bounds = day_window(now, zone, days)
    groups: list[list | None] = [None] * days
    closed = sum(1 for i in range(days) if bounds[i + 1] + ClosedDays.GRACE <= now) if cache is not None else 0
    stamps: dict[int, int] = {}
    if closed and kind == ATTEMPTS:
        # Read before the counts: an attempt adopted in between shows as a new stamp next time.
        stamps = {int(i): n for i, n in session.execute(unavailable_query(bounds[:closed + 1]))}
    for i in range(closed):
        groups[i] = cache.get(zone, dates[i], kind, stamps.get(i, 0))
    missing = [i for i in range(closed) if groups[i] is None]
    if missing:
        for i, found in _count_days(session, bounds, missing[0], closed, kind).items():
            if groups[i] is None:
                groups[i] = found
                cache.put(zone, dates[i], found, kind, stamps.get(i, 0))
    for i, found in _count_days(session, bounds, closed, days, kind).items():
        groups[i] = found
    return dates, groups


def dashboard_accounts(session: Session, user_ids: Collection[str]) -> set[int]:
    """The ids of the API accounts the dashboard masks through (by their unique userId)."""
    if not user_ids:
        return set()
    return set(session.scalars(select(ApiAccount.id).where(ApiAccount.user_id.in_(list(user_ids)))))


def _api_made(groups: list[ApiGroup], dashboard: Collection[int]) -> int:
    return sum(n for account_id, n in groups if account_id not in dashboard)


def _per_day(dates: list[date], groups: list[list[Group]], api_groups: list[list[ApiGroup]],
             dashboard: Collection[int]) -> list[DayCount]:
    out = []
    for i, (day, day_groups_) in enumerate(zip(dates, groups)):
        ok = bad = 0
        for action, failed, _code, _user, n in day_groups_:
            if action == AttemptAction.SET:
                if failed:
                    bad += n
                else:
                    ok += n
        out.append(DayCount(day, ok, bad, _api_made(api_groups[i], dashboard)))
    return out


def _by_code(groups: list[list[Group]]) -> list[CodeCount]:
    counts: dict[int | None, int] = {}
    for day_groups_ in groups:
        for _action, failed, code, _user, n in day_groups_:
            if failed:
                counts[code] = counts.get(code, 0) + n
    return sorted((CodeCount(code, n) for code, n in counts.items()),
                  key=lambda c: (-c.count, c.code is None, c.code or 0))


def _busiest(session: Session, groups: list[list[Group]], limit: int) -> list[AgentCount]:
    counts: dict[int, list[int]] = {}
    for day_groups_ in groups:
        for action, failed, _code, user_id, n in day_groups_:
            if action == AttemptAction.SET:
                counts.setdefault(user_id, [0, 0])[1 if failed else 0] += n
    top = sorted(counts.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))[:limit]
    if not top:
        return []
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_([uid for uid, _ in top]))).all())
    return [AgentCount(uid, names.get(uid, f"user {uid}"), ok, bad) for uid, (ok, bad) in top]


def masks_per_day(session: Session, now: datetime, zone: ZoneInfo, days: int = DAYS, *,
                  dashboard_user_ids: Collection[str] = DASHBOARD_USER_IDS) -> list[DayCount]:
    """``set`` attempts and API maskings per local day, oldest first, every day present (zeros included)."""
    dates, groups = day_groups(session, now, zone, days)
    _dates, api_groups = day_groups(session, now, zone, days, kind=MASKINGS)
    return _per_day(dates, groups, api_groups, dashboard_accounts(session, dashboard_user_ids))


def failures_by_code(session: Session, now: datetime, zone: ZoneInfo, days: int = DAYS) -> list[CodeCount]:
    """Failed attempts of any action over the last ``days`` local days, most frequent first."""
    _dates, groups = day_groups(session, now, zone, days)
    return _by_code(groups)


def busiest_agents(session: Session, now: datetime, zone: ZoneInfo, days: int = BUSY_DAYS,
                   limit: int = BUSY_LIMIT) -> list[AgentCount]:
    """The users with the most ``set`` attempts in the last ``days`` local days (today included), busiest first."""
    _dates, groups = day_groups(session, now, zone, days)
    return _busiest(session, groups, limit)


def overview(session: Session, now: datetime, zone: ZoneInfo, *, cache: ClosedDays | None = None, days: int = DAYS,
             busy_days: int = BUSY_DAYS, busy_limit: int = BUSY_LIMIT,
             dashboard_user_ids: Collection[str] = DASHBOARD_USER_IDS) -> Overview:
    """Everything the overview page shows. Without ``cache``: one pass over the ``days`` window
    of each record; with it: over the days not yet counted by this process (usually today alone).
    ``dashboard_user_ids``: the API accounts whose maskings are the dashboard's (counted as its
    attempts, so not again as the API's)."""
    dates, groups = day_groups(session, now, zone, max(days, busy_days), cache)
    _dates, api_groups = day_groups(session, now, zone, days, cache, kind=MASKINGS)
    per_day = _per_day(dates[-days:], groups[-days:], api_groups, dashboard_accounts(session, dashboard_user_ids))
    return Overview(now=now, days=per_day, failures=_by_code(groups[-days:]),
                    pool=use_by_status(session, now), busiest=_busiest(session, groups[-busy_days:], busy_limit),
                    day_span=days, busy_span=busy_days)


def explain_all(session: Session, now: datetime, zone: ZoneInfo) -> dict[str, list[str]]:
    """The database's query plan of each overview query (for the benchmark and for checking indexes)."""
    _dates, bounds = day_window(now, zone)
    queries = {"attempts by day, action, outcome, code, user (30 days)": counts_query(bounds),
               "attempts of today": counts_query(bounds[-2:]),
               "unavailable attempts by day (30 days)": unavailable_query(bounds),
               "maskings by day and account (30 days)": api_counts_query(bounds),
               "maskings of today": api_counts_query(bounds[-2:]),
               "pool use": use_by_status_query(now)}
    bind = session.get_bind()
    prefix = "EXPLAIN QUERY PLAN " if bind.dialect.name == "sqlite" else "EXPLAIN "
    plans = {}
    for name, query in queries.items():
        compiled = query.compile(bind)
        params = compiled.construct_params()
        if compiled.positional:
            params = tuple(params[key] for key in compiled.positiontup)
        rows = session.connection().exec_driver_sql(prefix + str(compiled), params)
        plans[name] = [" ".join(str(c) for c in row) for row in rows]
    return plans
