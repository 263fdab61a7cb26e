"""The supervisors' history of every attempt: filters, keyset pages, the CSV export. No Flask.

What a supervisor types (a query string) becomes ``HistoryQuery``: the values as typed (kept
for the form), the parsed ``Filters``, and a message per field that could not be read. The
rules here build one SQLAlchemy ``select`` for any combination of filters, newest first.

Design choices (with a million rows in mind):

* **Keyset pages** on ``(created_at, id)``, newest first: the cursor is the last row's key,
  so page 1 000 costs what page 1 costs. The bound is written
  ``created_at <= :t AND (created_at < :t OR id < :id)``: its first half is a range on every
  history index (``(created_at, id)``, ``(user_id, created_at, id)``,
  ``(outcome, error_code, created_at, id)``) on both SQLite and PostgreSQL; the second half
  only skips rows sharing the cursor's instant.
* **Numbers by partial digits**, on the ``*_digits`` columns (digits only, indexed):
  - ``starts`` (the default) is an *indexed range*: ``m1_digits >= '9198' AND m1_digits < '9199'``
    (a range rather than ``LIKE '9198%'``, which needs a ``text_pattern_ops`` index on
    PostgreSQL and a NOCASE index on SQLite). The digits are tried as typed and behind the
    default region's country code with a national trunk ``0`` dropped, so ``98765``,
    ``098765``, ``+91 98765`` and ``9198765`` all find ``+91 98765 43210``.
  - ``contains`` (``LIKE '%43210%'``) cannot use a B-tree: it walks the newest-first index and
    stops after one page, so it is quick for common matches and bounded by the other filters
    (dates, agent); rare matches over the whole table read the whole table. The page says so.
* **Outcome**: ``failed:CODE`` (``outcome = 'error' AND error_code = CODE``) and
  ``unavailable`` (``outcome = 'unavailable' AND error_code IS NULL``) use the outcome index
  in time order; ``active`` uses the expiry index of migration 0003 (few rows are live at
  once); ``expired``/``ended``/``failed`` are common and found by walking the newest-first index.
* **SQLite plans without statistics**, so two hints steer it (PostgreSQL ignores both and
  plans from its statistics): ``unindexed(column)`` renders ``+column`` (SQLite's documented
  way to keep a term off an index) and the LIMIT is written into the SQL (with ``LIMIT ?``
  SQLite walks the time index instead of sorting the few rows a digit index finds).
  Checked with EXPLAIN over a million rows on both (``tests/test_history_rules.py`` pins
  the SQLite plans): every filter and combination answers a page in under 20 ms, except
  ``contains`` over the whole table (150-500 ms).
* **The export** reads the same query in keyset batches (``export_batches``), each a short
  query of its own, so 100 000 rows stream without holding them, a cursor or a snapshot
  (about 20 000 rows a second on this machine). Cells are made formula-safe (``csv_cell``).
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import and_, false, literal_column, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.orm import Session, selectinload

from .attempts import ACTIVE, ENDED, EXPIRED, FAILED
from .attempts import status as attempt_status
from .clock import local_midnight_utc
from .explain import SHORT, code_label, short_label
from .humanize import to_local
from .models import MAX_ROW_ID, AttemptAction, AttemptOutcome, MaskAttempt, User
from .phone import ascii_digits, redact

PAGE_SIZE = 50
EXPORT_BATCH = 2000
MAX_SEARCH_DIGITS = 15  # E.164 has at most 15 digits
MIN_SEARCH_DIGITS = 4  # fewer would match a large part of the table (and read it all to sort it)

UNAVAILABLE = "unavailable"  # ACTIVE ... FAILED: the attempt statuses of masking.attempts
FAILED_CODE_PREFIX = "failed:"
MATCH_STARTS, MATCH_CONTAINS = "starts", "contains"

# The form's fields, in order; everything else in the query string is ignored.
FIELDS = ("agent", "start", "end", "outcome", "number", "mask", "match")
_MAX_TYPED = 64


def outcome_choices() -> list[tuple[str, str]]:
    """(value, label) for the outcome filter: states, then failures by code."""
    choices = [("", "Any outcome"), (ACTIVE, "Active"), (EXPIRED, "Expired"), (ENDED, "Ended early"),
               (FAILED, "Failed (any reason)"), (UNAVAILABLE, f"Failed: {SHORT[None]}")]
    for code in sorted(code for code in SHORT if code is not None):
        choices.append((f"{FAILED_CODE_PREFIX}{code}", f"Failed: {code_label(code)}"))
    return choices


# ---------------------------------------------------------------- the filters

@dataclass(frozen=True)
class Filters:
    """Parsed filters; None means "any". Instants are naive UTC, ``until`` exclusive."""

    user_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None  # active, expired, ended, failed, unavailable, failed:CODE
    number: str | None = None  # digits of m1 or m2
    mask: str | None = None  # digits of the masking number
    match: str = MATCH_STARTS


@dataclass(frozen=True)
class Cursor:
    """A row's place in the newest-first order; in a URL as ``20261127T134500.123456_42``."""

    created_at: datetime
    id: int

    def token(self) -> str:
        return f"{self.created_at:%Y%m%dT%H%M%S.%f}_{self.id}"

    @classmethod
    def parse(cls, token: str | None) -> "Cursor | None":
        """The cursor of ``token``; None when it is missing; ValueError when it is not one of ours."""
        if not token:
            return None
        match = re.fullmatch(r"(\d{8}T\d{6}\.\d{6})_(\d{1,10})", token.strip())
        if not match or int(match.group(2)) > MAX_ROW_ID:
            raise ValueError("not a page cursor")
        return cls(datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%f"), int(match.group(2)))

    @classmethod
    def of(cls, row) -> "Cursor":
        return cls(row.created_at, row.id)


@dataclass
class HistoryQuery:
    """A request for the history: the values as typed, what they mean, and what is wrong."""

    form: dict[str, str]
    filters: Filters
    errors: dict[str, str] = field(default_factory=dict)  # field -> message
    before: Cursor | None = None  # older than this (next page)
    after: Cursor | None = None  # newer than this (previous page)
    notice: str | None = None  # a problem that did not stop the search (a bad page link)
    dates_read: frozenset[str] = frozenset()  # start/end fields holding a date (their pickers can show it)

    @property
    def ok(self) -> bool:
        return not self.errors

    def params(self, **extra) -> dict[str, str]:
        """The non-empty typed filters (for links and the export), plus ``extra``."""
        values = {name: value for name, value in self.form.items() if value and not (
            name == "match" and value == MATCH_STARTS)}
        values.update({name: value for name, value in extra.items() if value})
        return values

    def describe(self) -> str:
        """The filters in words, for the audit log: 'agent=asha, start=2026-11-01', a whole
        party number partly hidden ('number=91XXXXXXX210'), as everywhere else it is logged."""
        return ", ".join(f"{name}={hidden_search(value) if name == 'number' else value}"
                         for name, value in self.params().items()) or "no filter"


def country_code_of(region: str) -> str:
    code = phonenumbers.country_code_for_region(region.upper())
    return str(code) if code else ""


def parse(args: Mapping[str, str], *, session: Session, zone: ZoneInfo) -> HistoryQuery:
    """Read the history's query string. Never raises on bad input: it fills ``errors``."""
    form = {name: typed_field(args.get(name)) for name in FIELDS}
    errors: dict[str, str] = {}
    values: dict = {}

    if form["agent"]:
        user_id = session.scalar(select(User.id).where(User.username == form["agent"].lower()))
        if user_id is None:
            errors["agent"] = f"There is no user called “{form['agent']}”."
        values["user_id"] = user_id

    days = read_days(form, errors, values, zone)

    outcome = form["outcome"]
    if outcome:
        if outcome not in dict(outcome_choices()) and not re.fullmatch(rf"{FAILED_CODE_PREFIX}\d{{1,5}}", outcome):
            errors["outcome"] = "Outcome: choose one from the list."
        values["outcome"] = outcome

    match = form["match"] or MATCH_STARTS
    if match not in (MATCH_STARTS, MATCH_CONTAINS):
        errors["match"] = "Number search: choose “starts with” or “contains”."
        match = MATCH_STARTS
    form["match"] = match
    values["match"] = match
    for name, label in (("number", "Number"), ("mask", "Masking number")):
        if form[name]:
            try:
                values[name] = search_digits(form[name])
            except ValueError as exc:
                errors[name] = f"{label}: {exc}"

    query = HistoryQuery(form=form, filters=Filters(**values), errors=errors, dates_read=frozenset(days))
    try:
        query.before = Cursor.parse(typed_field(args.get("before")))
        query.after = None if query.before else Cursor.parse(typed_field(args.get("after")))
    except (ValueError, OverflowError):
        query.notice = "That page link is not valid any more, so the newest results are shown."
    return query


def typed_field(value) -> str:
    """A query-string value as typed, trimmed and cut to a sane length."""
    return str(value or "").strip()[:_MAX_TYPED]


def read_days(form: Mapping[str, str], errors: dict[str, str], values: dict, zone: ZoneInfo) -> dict[str, date]:
    """The form's "start" and "end" local days: a message in ``errors`` for each bad one, and in
    ``values`` the UTC instants ``since`` (start's midnight) and ``until`` (the midnight after end).
    Returns the days that were read."""
    days = {}
    for name, label in (("start", "From"), ("end", "To")):
        if form[name]:
            try:
                days[name] = _parse_day(form[name])
            except ValueError:
                errors[name] = f"{label} date: enter a date as YYYY-MM-DD, for example 2026-11-27."
    if "start" in days and "end" in days and days["start"] > days["end"]:
        errors["end"] = "To date: it is before the From date."
    if "start" in days:
        values["since"] = local_midnight_utc(days["start"], zone)
    if "end" in days:
        values["until"] = local_midnight_utc(days["end"] + timedelta(days=1), zone)
    return days


def _parse_day(text: str) -> date:
    """A local day typed as YYYY-MM-DD; ValueError otherwise."""
    day = date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    if day is None or not 1900 <= day.year <= 9000:
        raise ValueError(text)
    return day


SEARCH_SHOWN_WHOLE = 7  # digits a number search may have and still be written whole: a prefix, nobody's number


def hidden_search(text: str) -> str:
    """A typed number search for the audit log: its digits, the middle hidden once there are
    enough of them to be someone's number ('+91 98765 43210' -> '91XXXXXXX210'); a short
    prefix ('98765') names nobody and is kept as typed."""
    digits = ascii_digits(text)
    if len(digits) <= SEARCH_SHOWN_WHOLE:
        return text
    return digits[:2] + "X" * (len(digits) - 5) + digits[-3:]


def search_digits(text: str) -> str:
    """The digits to search for: '+91 98765-43' -> '919876543'. ValueError in words otherwise."""
    if re.search(r"[^\d\s+\-().]", text):
        raise ValueError("use digits only (spaces, +, - and brackets are ignored).")
    digits = ascii_digits(text)  # '٩٨٧' (any script) -> '987', as stored
    if not digits:
        raise ValueError("enter some digits.")
    if len(digits) > MAX_SEARCH_DIGITS:
        raise ValueError(f"a phone number has at most {MAX_SEARCH_DIGITS} digits.")
    if len(digits) < MIN_SEARCH_DIGITS:
        raise ValueError(f"enter at least {MIN_SEARCH_DIGITS} digits.")
    return digits


# ---------------------------------------------------------------- the query

class unindexed(FunctionElement):
    """``column`` in a term SQLite must not answer from an index (rendered ``+column``, SQLite's
    documented way to disqualify a term); plain ``column`` elsewhere.

    SQLite plans without statistics and takes any index on an equality (``outcome = 'success'``)
    over the newest-first index, then sorts 900 000 rows for one page. PostgreSQL plans from
    statistics and needs no such help.
    """

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column):
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed_default(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw):
    return "+" + compiler.process(element.clauses, **kw)


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest digit string above every string starting with ``prefix`` ('9199' -> '92')."""
    head = prefix.rstrip("9")
    if not head:
        return None
    return head[:-1] + str(int(head[-1]) + 1)


def digit_prefixes(digits: str, country_code: str) -> list[str]:
    """The stored-digit prefixes a typed search can mean: as typed, and behind the country code."""
    found = [digits]
    national = digits.lstrip("0")  # a national trunk prefix ('098765' dialled in India)
    if country_code and national:
        found.append(country_code + national)
    return list(dict.fromkeys(found))


def _digits_condition(columns, digits: str, match: str, country_code: str):
    terms = []
    if match == MATCH_CONTAINS:
        terms = [column.like(f"%{digits}%") for column in columns]  # digits only: no wildcard to escape
    else:
        for prefix in digit_prefixes(digits, country_code):
            upper = prefix_upper_bound(prefix)
            for column in columns:
                terms.append(and_(column >= prefix, column < upper) if upper else column >= prefix)
    return or_(*terms)


def conditions(filters: Filters, now: datetime, country_code: str = "") -> list:
    """The WHERE terms of ``filters`` at ``now`` (``country_code``: the default region's, for numbers)."""
    a = MaskAttempt
    where = []
    if filters.user_id is not None:
        where.append(a.user_id == filters.user_id)
    if filters.since is not None:
        where.append(a.created_at >= filters.since)
    if filters.until is not None:
        where.append(a.created_at < filters.until)
    outcome = filters.outcome
    # Most rows are successful sets: walk the newest-first index rather than the outcome index.
    live_set = (unindexed(a.action) == AttemptAction.SET, unindexed(a.outcome) == AttemptOutcome.SUCCESS)
    if outcome == ACTIVE:  # few rows: the expiry index (migration 0003) finds them
        where += [*live_set, a.ended_at.is_(None), a.expires_at > now]
    elif outcome == EXPIRED:  # most rows: not the expiry index
        where += [*live_set, a.ended_at.is_(None), unindexed(a.expires_at) <= now]
    elif outcome == ENDED:
        where += [*live_set, a.ended_at.is_not(None)]
    elif outcome == FAILED:  # two outcomes: one index range cannot give them in time order
        where.append(unindexed(a.outcome).in_((AttemptOutcome.ERROR, AttemptOutcome.UNAVAILABLE)))
    elif outcome == UNAVAILABLE:  # no answer, so never a code: both equalities keep the index in time order
        where += [a.outcome == AttemptOutcome.UNAVAILABLE, a.error_code.is_(None)]
    elif outcome and outcome.startswith(FAILED_CODE_PREFIX):
        where += [a.outcome == AttemptOutcome.ERROR, a.error_code == int(outcome[len(FAILED_CODE_PREFIX):])]
    elif outcome:
        where.append(false())
    if filters.number:
        where.append(_digits_condition((a.m1_digits, a.m2_digits), filters.number, filters.match, country_code))
    if filters.mask:
        where.append(_digits_condition((a.mask_digits,), filters.mask, filters.match, country_code))
    return where


def older_than(cursor: Cursor, unindexed_time: bool = False):
    a = MaskAttempt
    created_at = unindexed(a.created_at) if unindexed_time else a.created_at
    return and_(created_at <= cursor.created_at, or_(a.created_at < cursor.created_at, a.id < cursor.id))


def newer_than(cursor: Cursor, unindexed_time: bool = False):
    a = MaskAttempt
    created_at = unindexed(a.created_at) if unindexed_time else a.created_at
    return and_(created_at >= cursor.created_at, or_(a.created_at > cursor.created_at, a.id > cursor.id))


def statement(filters: Filters, now: datetime, *, country_code: str = "", before: Cursor | None = None,
              after: Cursor | None = None, limit: int = PAGE_SIZE, columns=None):
    """SELECT the rows of ``filters``, newest first (oldest first with ``after``), at most ``limit``."""
    a = MaskAttempt
    where = conditions(filters, now, country_code)
    # With a number prefix, the digit indexes find the few rows; the page bound must not lure
    # SQLite onto the time index (reading every older row to find none).
    # "active": few rows are live, and the expiry index finds them; SQLite cannot know that
    # (PostgreSQL's statistics say so), so the time index is kept out of its choice.
    live = filters.outcome == ACTIVE
    by_digits = bool(filters.number or filters.mask) and filters.match == MATCH_STARTS
    if before is not None:
        where.append(older_than(before, by_digits or live))
    if after is not None:
        where.append(newer_than(after, by_digits or live))
    created_at, id_ = (unindexed(a.created_at), unindexed(a.id)) if live else (a.created_at, a.id)
    order = (created_at.asc(), id_.asc()) if after is not None else (created_at.desc(), id_.desc())
    # The limit is written into the SQL: SQLite plans "LIMIT ?" as a large limit and would
    # rather walk the time index than sort the few rows a digit index finds.
    return select(*(columns or (a,))).where(*where).order_by(*order).limit(literal_column(str(int(limit))))


@dataclass
class Page:
    rows: list[MaskAttempt]
    newer: Cursor | None = None  # link to the page above (None: this is the newest)
    older: Cursor | None = None  # link to the page below (None: nothing older)


def page(session: Session, filters: Filters, now: datetime, *, country_code: str = "",
         before: Cursor | None = None, after: Cursor | None = None, size: int = PAGE_SIZE) -> Page:
    """One page of the history, newest first, with the cursors of its neighbours."""
    stmt = statement(filters, now, country_code=country_code, before=before, after=after, limit=size + 1)
    stmt = stmt.options(selectinload(MaskAttempt.user), selectinload(MaskAttempt.ended_by),
                        selectinload(MaskAttempt.target_attempt))  # "of the mask made at 10:42"
    rows = list(session.scalars(stmt))
    more = len(rows) > size
    rows = rows[:size]
    if after is not None:
        if not rows:  # nothing newer than the link any more: the newest page
            return page(session, filters, now, country_code=country_code, size=size)
        rows.reverse()
        return Page(rows, newer=Cursor.of(rows[0]) if more else None, older=Cursor.of(rows[-1]))
    newer = Cursor.of(rows[0]) if before is not None and rows else None
    older = Cursor.of(rows[-1]) if more else None
    return Page(rows, newer=newer, older=older)


# ---------------------------------------------------------------- a row in words

def failure_label(attempt: MaskAttempt) -> str:
    if attempt.outcome == AttemptOutcome.UNAVAILABLE:
        return code_label(None)
    return code_label(attempt.error_code) if attempt.error_code else "refused"


# ---------------------------------------------------------------- the export

EXPORT_HEADER = ("id", "time", "time_utc", "agent", "action", "result", "error_code", "error", "first_number",
                 "second_number", "masking_number", "reference", "expires", "ended", "ended_by", "note",
                 "acted_on_id")
FULL, HIDDEN = "full", "hidden"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """Text a spreadsheet shows as it is: a leading =, +, -, @, tab or CR (a formula to Excel,
    LibreOffice and Google Sheets) gets an apostrophe first. E.164 numbers start with '+', so
    they come out as '+919876543210: text, never a formula."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


_EXPORT_COLUMNS = (MaskAttempt.id, MaskAttempt.created_at, MaskAttempt.user_id, MaskAttempt.action,
                   MaskAttempt.outcome, MaskAttempt.error_code, MaskAttempt.error_message, MaskAttempt.m1,
                   MaskAttempt.m2, MaskAttempt.mask, MaskAttempt.event_id, MaskAttempt.expires_at,
                   MaskAttempt.ended_at, MaskAttempt.ended_by_id, MaskAttempt.end_note, MaskAttempt.target_id)


def export_batches(session: Session, filters: Filters, now: datetime, *, country_code: str = "",
                   batch_size: int = EXPORT_BATCH) -> Iterator[list]:
    """The rows of ``filters``, newest first, in lists of at most ``batch_size`` (keyset batches).

    Each batch is its own short query; the session is closed between batches so a long
    export holds no connection while the client reads.
    """
    cursor = None
    while True:
        stmt = statement(filters, now, country_code=country_code, before=cursor, limit=batch_size,
                         columns=_EXPORT_COLUMNS)
        rows = session.execute(stmt).all()
        session.close()
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        cursor = Cursor(rows[-1].created_at, rows[-1].id)


def csv_text(rows) -> str:
    """CSV lines of ``rows`` (cells already made safe with ``csv_cell``), CRLF-terminated."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def export_csv(session: Session, filters: Filters, now: datetime, *, zone: ZoneInfo, numbers: str = HIDDEN,
               country_code: str = "", batch_size: int = EXPORT_BATCH) -> Iterator[str]:
    """The CSV text of ``filters``, a chunk per batch (header first). Times in ``zone`` and UTC.

    ``numbers``: ``hidden`` (as on the page, +91 98XXXXX210) or ``full`` (personal data: the
    caller records the export in the audit log).
    """
    names = dict(session.execute(select(User.id, User.username)).all())
    session.close()
    show = (lambda number: number) if numbers == FULL else redact
    yield "\ufeff" + csv_text([EXPORT_HEADER])  # the BOM tells spreadsheets the text is UTF-8
    for rows in export_batches(session, filters, now, country_code=country_code, batch_size=batch_size):
        out = []
        for row in rows:
            result = attempt_status(row, now)
            failed = result == FAILED
            out.append([
                row.id, _local(row.created_at, zone), utc_text(row.created_at), csv_cell(names.get(row.user_id)),
                row.action, result, row.error_code if row.error_code is not None else "",
                csv_cell((short_label(row.error_code) if row.outcome == AttemptOutcome.ERROR else SHORT[None])
                         if failed else ""),
                csv_cell(show(row.m1)), csv_cell(show(row.m2)), csv_cell(row.mask), csv_cell(row.event_id),
                _local(row.expires_at, zone), _local(row.ended_at, zone),
                csv_cell(names.get(row.ended_by_id)), csv_cell(row.end_note or (row.error_message if failed else None)),
                row.target_id or "",
            ])
        yield csv_text(out)


_OFFSETS: dict[tuple[str, datetime], timedelta] = {}


def local_offset(moment: datetime, zone: ZoneInfo) -> timedelta:
    """``zone``'s UTC offset at ``moment`` (naive UTC), looked up once per quarter hour (no zone
    changes its offset between quarter hours): exports format 100 000s of times."""
    quarter = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    key = (zone.key, quarter)
    offset = _OFFSETS.get(key)
    if offset is None:
        if len(_OFFSETS) > 100_000:
            _OFFSETS.clear()
        offset = _OFFSETS[key] = to_local(quarter, zone).utcoffset()
    return offset


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    """'2026-11-27 19:15:00' in ``zone``."""
    if not moment:
        return ""
    return (moment + local_offset(moment, zone)).isoformat(" ", "seconds")


def utc_text(moment: datetime | None) -> str:
    """'2026-11-27T13:45:00Z'."""
    return moment.isoformat("T", "seconds") + "Z" if moment else ""
