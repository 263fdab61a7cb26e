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
"""
from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, false, func, literal_column, or_, select
from sqlalchemy.orm import Session

from .history import digit_prefixes, prefix_upper_bound, read_days, search_digits, typed_field, unindexed
from .models import MAX_ROW_ID, ApiAccount, AttemptAction, AttemptOutcome, Masking, MaskAttempt, MaskingStatus, User

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


def parse(args: Mapping[str, str], *, session: Session, zone: ZoneInfo) -> ReportQuery:
    """Read the page's query string. Never raises on bad input: it fills ``errors``."""
    form = {name: typed_field(args.get(name)) for name in FIELDS}
    # An eventId may be longer than the other fields; keep one character more than allowed to tell.
    form["event"] = str(args.get("event") or "").strip()[:MAX_EVENT_ID + 1]
    errors: dict[str, str] = {}
    values: dict = {}

    if form["number"]:
        try:
            values["number"] = search_digits(form["number"])
        except ValueError as exc:
            errors["number"] = f"Number: {exc}"

    if form["account"]:
        text = form["account"]
        if not re.fullmatch(r"\d{1,10}", text) or not 1 <= int(text) <= MAX_ROW_ID:
            errors["account"] = "API account: choose one from the list."
        elif session.get(ApiAccount, int(text)) is None:
            errors["account"] = f"API account: there is no account number {int(text)} (it may have been removed)."
        else:
            values["account_id"] = int(text)

    if form["state"]:
        if form["state"] not in dict(STATE_CHOICES):
            errors["state"] = "State: choose one from the list."
        else:
            values["state"] = form["state"]

    if form["event"]:
        if len(form["event"]) > MAX_EVENT_ID:
            errors["event"] = f"eventId: at most {MAX_EVENT_ID} characters."
            form["event"] = form["event"][:MAX_EVENT_ID]
        else:
            values["event_id"] = form["event"]

    days = read_days(form, errors, values, zone)

    query = ReportQuery(form=form, filters=Filters(**values), errors=errors, dates_read=frozenset(days))
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
              after: int | None = None, limit: int = PAGE_SIZE, common_number: bool = False):
    """SELECT the maskings of ``filters``, newest first (oldest first with ``after``), at most ``limit``."""
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
    return select(m).where(*where).order_by(order).limit(literal_column(str(int(limit))))


# ---------------------------------------------------------------- a page, with its makers

@dataclass
class Row:
    masking: Masking
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
    return [Row(m, accounts.get(m.account_id), m.account_id in dashboard, agents.get(m.id)) for m in maskings]


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
