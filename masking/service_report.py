"""Every masking the service holds, whoever made it: filters, keyset pages, the maker. No Flask.

The supervisors' history (``masking.history``) lists what agents did in the dashboard; this
lists the ``maskings`` table itself, so maskings that integrators make through the API with
their own accounts are seen too. What a supervisor types (a query string) becomes
``ReportQuery``: the values as typed, the parsed ``Filters``, and a message per bad field.

Design choices (checked with EXPLAIN over 100 000 maskings on SQLite and PostgreSQL):

* **Keyset pages on ``id``**, newest first: the cursor is the last row's id, so any page
  costs what the first does. The unfiltered page walks the primary key backwards.
* **Numbers by prefix** on the E.164 columns (``+919876...``) as ranges, which the indexes
  ``ix_maskings_m1``, ``ix_maskings_m2`` and ``ix_maskings_mask_number`` serve on both
  databases (``LIKE`` would need special indexes). The typed digits are tried as typed and
  behind the default region's country code, as the history does (``history.digit_prefixes``).
* **State**: "live" uses the expiry index of migration 0005 (few maskings are live at once);
  "expired" and "ended" are common and found by walking the primary key.
* **The maker** of a page's rows is loaded in two more queries, whatever the page's size:
  the accounts, and, for the dashboard's own account, the agents of the successful ``set``
  attempts that made them (``mask_attempts.masking_id``).
* **The export** reads the same statement in keyset batches of columns (not ORM objects),
  each batch with its makers in the same two queries, and writes it with the history's CSV
  helpers (``csv_cell``, ``csv_text``, the offset cache of ``local_offset``).
"""
from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, false, func, literal_column, or_, select
from sqlalchemy.orm import Session

from .history import (FULL, HIDDEN, csv_cell, csv_text, digit_prefixes, hidden_search, local_offset, prefix_upper_bound,
                      read_days, search_digits, typed_field, unindexed, utc_text)
from .models import MAX_ROW_ID, ApiAccount, AttemptAction, AttemptOutcome, Masking, MaskAttempt, MaskingStatus, User
from .phone import redact

PAGE_SIZE = 50
MAX_EVENT_ID = 255  # the column's length, and the API's limit

LIVE, EXPIRED, ENDED = MaskingStatus.ACTIVE, MaskingStatus.EXPIRED, MaskingStatus.ENDED
# The state filter's values are the API's status words (live is "active" there).
STATE_CHOICES = (("", "Any state"), (LIVE, "Live"), (EXPIRED, "Expired"), (ENDED, "Ended"))

# The form's fields, in order; everything else in the query string is ignored.
FIELDS = ("number", "account", "state", "event", "start", "end")


# ---------------------------------------------------------------- the filters

@dataclass(frozen=True)
class Filters:
    """Parsed filters; None means "any". Instants are naive UTC, ``until`` exclusive."""

    number: str | None = None  # digits of the masking number or either party
    account_id: int | None = None
    state: str | None = None  # active (live), expired, ended
    event_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class ReportQuery:
    form: dict[str, str]
    filters: Filters
    errors: dict[str, str] = field(default_factory=dict)  # field -> message
    before: int | None = None  # ids below this (older page)
    after: int | None = None  # ids above this (newer page)
    notice: str | None = None  # a problem that did not stop the search (a bad page link)
    dates_read: frozenset[str] = frozenset()  # start/end fields holding a date
    account_label: str | None = None  # the chosen account in words, for the audit log

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def filtered(self) -> bool:
        return any(self.form.values())

    def params(self, **extra) -> dict[str, str]:
        """The non-empty typed filters (for the page links), plus ``extra``."""
        values = {name: value for name, value in self.form.items() if value}
        values.update({name: str(value) for name, value in extra.items() if value})
        return values

    def describe(self) -> str:
        """The filters in words, for the audit log: 'account=2 (Acme, userId 1234), state=active'.
        The account's name too: its id alone says nothing once the account is removed."""
        parts = []
        for name, value in self.params().items():
            if name == "account" and self.account_label:
                value = f"{value} ({self.account_label})"
            elif name == "number":
                value = hidden_search(value)  # a whole number typed is personal data
            parts.append(f"{name}={value}")
        return ", ".join(parts) or "no filter"


def parse(args: Mapping[str, str], *, session: Session, zone: ZoneInfo) -> ReportQuery:
    """Read the page's query string. Never raises on bad input: it fills ``errors``."""
    form = {name: typed_field(args.get(name)) for name in FIELDS}
    # An eventId may be longer than the other fields; keep one character more than allowed to tell.
    form["event"] = str(args.get("event") or "").strip()[:MAX_EVENT_ID + 1]
    errors: dict[str, str] = {}
    values: dict = {}
    account_label = None

    if form["number"]:
        try:
            values["number"] = search_digits(form["number"])
        except ValueError as exc:
            errors["number"] = f"Number: {exc}"

    if form["account"]:
        text = form["account"]
        if not re.fullmatch(r"\d{1,10}", text) or not 1 <= int(text) <= MAX_ROW_ID:
            errors["account"] = "API account: choose one from the list."
        elif (account := session.get(ApiAccount, int(text))) is None:
            errors["account"] = f"API account: there is no account number {int(text)} (it may have been removed)."
        else:
            values["account_id"] = int(text)
            account_label = f"{account.name}, userId {account.user_id}"

    if form["state"]:
        if form["state"] not in dict(STATE_CHOICES):
            errors["state"] = "State: choose one from the list."
        else:
            values["state"] = form["state"]

    if form["event"]:
        if "\x00" in form["event"]:
            # PostgreSQL refuses NUL in any text it is given, so no eventId can be searched with one.
            errors["event"] = "eventId: remove the NUL character (shown as \ufffd)."
            form["event"] = form["event"].replace("\x00", "\ufffd")[:MAX_EVENT_ID]
        elif len(form["event"]) > MAX_EVENT_ID:
            errors["event"] = f"eventId: at most {MAX_EVENT_ID} characters."
            form["event"] = form["event"][:MAX_EVENT_ID]
        else:
            values["event_id"] = form["event"]

    days = read_days(form, errors, values, zone)

    query = ReportQuery(form=form, filters=Filters(**values), errors=errors, dates_read=frozenset(days),
                        account_label=account_label)
    before, after = typed_field(args.get("before")), typed_field(args.get("after"))
    try:
        query.before = _page_id(before)
        query.after = None if query.before else _page_id(after)
    except ValueError:
        query.notice = "That page link is not valid any more, so the newest maskings are shown."
    return query


def _page_id(token: str) -> int | None:
    if not token:
        return None
    if not re.fullmatch(r"\d{1,10}", token) or not 1 <= int(token) <= MAX_ROW_ID:
        raise ValueError("not a page cursor")
    return int(token)


# ---------------------------------------------------------------- the query

_HIGHEST = "+" + "9" * 15  # the largest E.164 number


def _prefix_condition(columns, digits: str, country_code: str):
    terms = []
    for prefix in digit_prefixes(digits, country_code):
        low, upper = "+" + prefix, prefix_upper_bound(prefix)
        for column in columns:
            # E.164 is '+' and digits: '+9198765' <= n < '+9198766' is "starts with +9198765". Both
            # ends bounded (also for '+999...'), or SQLite reads the whole table instead of the indexes.
            terms.append(and_(column >= low, column < "+" + upper) if upper else and_(column >= low, column <= _HIGHEST))
    return or_(*terms)


def conditions(filters: Filters, now: datetime, country_code: str = "", common_number: bool = False) -> list:
    """The WHERE terms of ``filters`` at ``now`` (``country_code``: the default region's, for numbers).

    ``common_number``: the number matches many rows, so walking the newest first finds a page
    sooner than the number indexes (SQLite is told so; see ``page``).
    """
    m = Masking
    where = []
    if filters.number:
        columns = (m.mask_number, m.m1, m.m2)
        if common_number:
            columns = tuple(unindexed(column) for column in columns)
        where.append(_prefix_condition(columns, filters.number, country_code))
    if filters.account_id is not None:
        where.append(m.account_id == filters.account_id)
    if filters.state == LIVE:  # Masking.live_at; few rows: the expiry index (migration 0005) finds them
        where += [m.ended_at.is_(None), m.expires_at > now]
    elif filters.state == EXPIRED:  # most rows: walk the newest first, not the expiry index
        where += [m.ended_at.is_(None), unindexed(m.expires_at) <= now]
    elif filters.state == ENDED:
        where.append(m.ended_at.is_not(None))
    elif filters.state:
        where.append(false())
    if filters.event_id is not None:
        where.append(m.event_id == filters.event_id)
    # Dates: SQLite walks the newest first. Its other plan, the time index, must sort every row
    # of the range to find the highest ids: 100 ms for a range of 100 000 rows, where the walk
    # costs 20 ms at worst (a range far in the past). PostgreSQL chooses from its statistics.
    if filters.since is not None:
        where.append(unindexed(m.created_at) >= filters.since)
    if filters.until is not None:
        where.append(unindexed(m.created_at) < filters.until)
    return where


def statement(filters: Filters, now: datetime, *, country_code: str = "", before: int | None = None,
              after: int | None = None, limit: int = PAGE_SIZE, common_number: bool = False, columns=None):
    """SELECT the maskings of ``filters``, newest first (oldest first with ``after``), at most ``limit``.

    ``columns``: select these instead of whole ``Masking`` objects (the export).
    """
    m = Masking
    where = conditions(filters, now, country_code, common_number)
    # SQLite plans without statistics: with a (rare) number prefix or "live", the few rows an
    # index finds must not be traded for a walk of the primary key (which the page bound and
    # the order invite). PostgreSQL plans from its statistics and ignores the hint.
    narrow = (bool(filters.number) and not common_number) or filters.state == LIVE
    id_ = unindexed(m.id) if narrow else m.id
    if before is not None:
        where.append(id_ < before)
    if after is not None:
        where.append(id_ > after)
    order = id_.asc() if after is not None else id_.desc()
    # The limit is written into the SQL: SQLite plans "LIMIT ?" as a large limit.
    return select(*(columns or (m,))).where(*where).order_by(order).limit(literal_column(str(int(limit))))


# ---------------------------------------------------------------- a page, with its makers

@dataclass
class Row:
    masking: Masking  # or, in the export, a row of its columns (the same attribute names)
    account: ApiAccount | None
    dashboard: bool  # made through the dashboard's own API account
    agent: str | None  # the agent who asked for it (dashboard maskings), when known

    @property
    def id(self) -> int:
        return self.masking.id

    def state(self, now: datetime) -> str:
        return self.masking.status_at(now)


@dataclass
class Page:
    rows: list[Row]
    newer: int | None = None  # cursor of the page above (None: this is the newest)
    older: int | None = None  # cursor of the page below (None: nothing older)


def page(session: Session, filters: Filters, now: datetime, *, country_code: str = "",
         dashboard_user_ids: Collection[str] = (), before: int | None = None, after: int | None = None,
         size: int = PAGE_SIZE) -> Page:
    """One page of maskings, newest first, with the cursors of its neighbours and their makers."""
    common = bool(filters.number) and _is_sqlite(session) and _common_number(session, filters, country_code)
    stmt = statement(filters, now, country_code=country_code, before=before, after=after, limit=size + 1,
                     common_number=common)
    maskings = list(session.scalars(stmt))
    more = len(maskings) > size
    maskings = maskings[:size]
    if after is not None:
        if not maskings:  # nothing newer than the link any more: the newest page
            return page(session, filters, now, country_code=country_code, dashboard_user_ids=dashboard_user_ids,
                        size=size)
        maskings.reverse()
        newer, older = (maskings[0].id if more else None), maskings[-1].id
    else:
        newer = maskings[0].id if before is not None and maskings else None
        older = maskings[-1].id if more else None
    return Page(with_makers(session, maskings, dashboard_user_ids), newer=newer, older=older)


COMMON = 2000  # a number prefix matching this many maskings is common


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _common_number(session: Session, filters: Filters, country_code: str) -> bool:
    """Does the number prefix match many maskings? Asked of the number indexes, reading at most
    COMMON entries (about a millisecond). SQLite has no statistics to know: a rare prefix is
    found at once by the indexes, a common one ('9198') by walking the newest first, while the
    indexes would sort every match (40 ms for 100 000)."""
    probe = select(Masking.id).where(_prefix_condition((Masking.mask_number, Masking.m1, Masking.m2),
                                                       filters.number, country_code)).limit(COMMON)
    return session.scalar(select(func.count()).select_from(probe.subquery())) >= COMMON


def with_makers(session: Session, maskings: list[Masking], dashboard_user_ids: Collection[str]) -> list[Row]:
    """``maskings`` as Rows with their accounts and agents: two queries at most, for any number of rows."""
    if not maskings:
        return []
    accounts, dashboard, agents = _makers(session, maskings, dashboard_user_ids)
    return [Row(m, accounts.get(m.account_id), m.account_id in dashboard, agents.get(m.id)) for m in maskings]


def _makers(session: Session, maskings, dashboard_user_ids: Collection[str]):
    """(accounts by id, ids of the dashboard's accounts, agents by masking id) of ``maskings``:
    two queries at most. Reads only ``id``, ``account_id`` and ``mask_number`` of each, so
    rows of those columns (the export) do as well as ``Masking`` objects."""
    account_ids = {m.account_id for m in maskings}
    accounts = {a.id: a for a in session.scalars(select(ApiAccount).where(ApiAccount.id.in_(account_ids)))}
    dashboard = {a.id for a in accounts.values() if a.user_id in set(dashboard_user_ids)}
    agents: dict[int, str] = {}
    ours = [m for m in maskings if m.account_id in dashboard]
    if ours:
        found = session.execute(
            select(MaskAttempt.masking_id, MaskAttempt.mask, User.username)
            .join(User, User.id == MaskAttempt.user_id)
            # By masking_id's index: SQLite would otherwise take the outcome index (every success).
            .where(MaskAttempt.masking_id.in_([m.id for m in ours]), unindexed(MaskAttempt.action) == AttemptAction.SET,
                   unindexed(MaskAttempt.outcome) == AttemptOutcome.SUCCESS)
            .order_by(MaskAttempt.id))
        numbers = {m.id: m.mask_number for m in ours}
        for masking_id, mask, username in found:
            # The same masking number too: the attempt's id is the service's, so a dashboard once
            # pointed at another service (MASKING_API_URL) cannot lend its agents to our rows.
            if mask == numbers.get(masking_id):
                agents.setdefault(masking_id, username)
    return accounts, dashboard, agents


def one(session: Session, masking_id: int, dashboard_user_ids: Collection[str] = ()) -> Row | None:
    masking = session.get(Masking, masking_id)
    if masking is None:
        return None
    return with_makers(session, [masking], dashboard_user_ids)[0]


def maker(row: Row) -> str:
    """Who made the masking, in words: 'Dashboard: asha', or the API account's name."""
    if row.dashboard:
        return f"Dashboard: {row.agent}" if row.agent else "Dashboard (agent not recorded)"
    return row.account.name if row.account else f"API account #{row.masking.account_id}"


def account_choices(session: Session) -> list[tuple[int, str, str]]:
    """(id, name, userId) of every API account, by name, for the account filter."""
    return [tuple(r) for r in session.execute(
        select(ApiAccount.id, ApiAccount.name, ApiAccount.user_id).order_by(ApiAccount.name, ApiAccount.id))]


def any_masking(session: Session) -> bool:
    return session.scalar(select(Masking.id).limit(1)) is not None


# ---------------------------------------------------------------- the export

EXPORT_BATCH = 2000  # rows per query; read at each export, so a test can make it small
EXPORT_HEADER = ("id", "made", "made_utc", "masking_number", "first_number", "second_number", "made_by",
                 "api_user_id", "event_id", "state", "expires", "ended")
_EXPORT_COLUMNS = (Masking.id, Masking.account_id, Masking.mask_number, Masking.m1, Masking.m2, Masking.event_id,
                   Masking.created_at, Masking.expires_at, Masking.ended_at)


def export_batches(session: Session, filters: Filters, now: datetime, *, country_code: str = "",
                   dashboard_user_ids: Collection[str] = (), batch_size: int | None = None) -> Iterator[list[tuple]]:
    """The maskings of ``filters``, newest first, in keyset batches by id: lists of
    ``(row of _EXPORT_COLUMNS, maker in words, the account's userId)``.

    Each batch is one query plus the two of ``_makers``; the session is closed after each, so a
    long export holds no connection while the client reads.
    """
    size = batch_size or EXPORT_BATCH
    common = bool(filters.number) and _is_sqlite(session) and _common_number(session, filters, country_code)
    makers: dict[tuple, tuple[str, str]] = {}  # (account, agent) -> (maker, userId): a few, made once
    before = None
    while True:
        stmt = statement(filters, now, country_code=country_code, before=before, limit=size,
                         common_number=common, columns=_EXPORT_COLUMNS)
        maskings = session.execute(stmt).all()
        if not maskings:
            session.close()
            return
        accounts, dashboard, agents = _makers(session, maskings, dashboard_user_ids)
        session.close()  # the accounts stay readable: close expires nothing
        batch = []
        for m in maskings:
            key = (m.account_id, agents.get(m.id))
            made_by = makers.get(key)
            if made_by is None:
                row = Row(m, accounts.get(m.account_id), m.account_id in dashboard, key[1])
                made_by = makers[key] = (maker(row), row.account.user_id if row.account else "")
            batch.append((m, *made_by))
        yield batch
        if len(maskings) < size:
            return
        before = maskings[-1].id


def export_csv(session: Session, filters: Filters, now: datetime, *, zone: ZoneInfo, numbers: str = HIDDEN,
               country_code: str = "", dashboard_user_ids: Collection[str] = (),
               batch_size: int | None = None) -> Iterator[str]:
    """The CSV text of ``filters``, a chunk per batch (header first); states at ``now``.

    ``numbers``: the parties ``hidden`` (+91 98XXXXX210, as on the page) or ``full`` (personal
    data: the caller records the export in the audit log). The masking number is always whole,
    as on the page. Local times carry their offset: '2026-11-27 11:00:00+05:30'.
    """
    show = (lambda number: number) if numbers == FULL else redact
    made, until = _LocalTimes(zone), _LocalTimes(zone)  # one each: created and expiry are far apart
    yield "\ufeff" + csv_text([EXPORT_HEADER])  # the BOM tells spreadsheets the text is UTF-8
    for batch in export_batches(session, filters, now, country_code=country_code,
                                dashboard_user_ids=dashboard_user_ids, batch_size=batch_size):
        out = []
        for (id_, _, mask, m1, m2, event_id, created, expires, ended), made_by, user_id in batch:
            # Ids, times and states cannot start with a formula character: no csv_cell for them.
            out.append((id_, made(created), utc_text(created), csv_cell(mask), csv_cell(show(m1)),
                        csv_cell(show(m2)), csv_cell(made_by), csv_cell(user_id), csv_cell(event_id),
                        Masking.status_of(ended, expires, now), until(expires),
                        until(ended) if ended is not None else ""))
        yield csv_text(out)


_DAY, _QUARTER = timedelta(days=1), timedelta(minutes=15)


class _LocalTimes:
    """Naive UTC instants as local times with their offset ('2026-11-27 11:00:00+05:30').

    Remembers a span over which the zone's offset is known not to change, so most times cost
    one comparison and ``isoformat``, no zone lookup (an export formats 100 000s of them)."""

    def __init__(self, zone: ZoneInfo):
        self.zone = zone
        self.low = self.high = datetime.min  # the known span [low, high): empty at first
        self.offset, self.suffix = timedelta(0), ""

    def __call__(self, moment: datetime) -> str:
        if not self.low <= moment < self.high:
            self._learn(moment)
        return (moment + self.offset).isoformat(" ", "seconds") + self.suffix

    def _learn(self, moment: datetime) -> None:
        quarter = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
        offset = local_offset(quarter, self.zone)
        self.low, self.high = quarter, quarter + _QUARTER  # offsets change on quarter hours only
        try:
            # No zone has changed its offset twice within a day since 1970 (tzdata's shortest gap
            # is 6.9 days), so the same offset a day before and after holds for the whole span.
            if local_offset(quarter - _DAY, self.zone) == offset == local_offset(quarter + _DAY, self.zone):
                self.low, self.high = quarter - _DAY, quarter + _DAY
        except OverflowError:  # within a day of datetime's limits: keep the quarter hour
            pass
        minutes = int(offset.total_seconds()) // 60
        self.offset = offset
        self.suffix = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
