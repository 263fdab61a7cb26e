"""The pool of masking numbers: adding, importing, reserving, retiring. No Flask.

Reserved and retired numbers are never given out automatically; maskings they already
serve run to their end (that is how a number is drained before it goes back to the carrier).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, exists, func, insert, select
from sqlalchemy.orm import Session

from .models import NEVER_ALLOCATED, PoolNumber, PoolStatus, Route
from .phone import PhoneNumberError, normalise, region_of

MAX_IMPORT_LINE = 200


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def as_dict(self) -> dict:
        return {
            "added": len(self.added),
            "already_present": len(self.already_present),
            "rejected": [{"line": line, "reason": reason} for line, reason in self.rejected],
        }


def pool_number(raw, default_region: str) -> str:
    """``raw`` in E.164 if it can serve as a masking number, else PhoneNumberError in words.
    A number of no one country (+800 freephone, +882 networks...) has no country to match, and
    the ``country`` column holds a two-letter region."""
    number = normalise(raw, default_region)
    region = region_of(number)
    if region is None or len(region) != 2 or not region.isalpha():
        raise PhoneNumberError("is not a number of any one country (such as +800 or +882), so it cannot be a "
                               "masking number")
    return number


def _status_of(raw: str | None) -> str:
    status = (raw or PoolStatus.ACTIVE).strip().lower() or PoolStatus.ACTIVE
    if status not in PoolStatus.ALL:
        raise ValueError(f"status must be one of {', '.join(PoolStatus.ALL)}, got {raw!r}")
    return status


def add_numbers(session: Session, raw_numbers, now: datetime, default_region: str,
                status: str = PoolStatus.ACTIVE) -> ImportReport:
    """Add each number not already pooled. Bad ones are reported (position from 1), good ones kept."""
    report = ImportReport()
    status = _status_of(status)
    candidates = []
    for position, raw in enumerate(raw_numbers, start=1):
        try:
            candidates.append((pool_number(raw, default_region), status))
        except PhoneNumberError as exc:
            report.rejected.append((position, f"{str(raw)[:MAX_IMPORT_LINE]!r} {exc}"))
    _add_all(session, candidates, now, report)
    return report


_BATCH = 500


def _add_all(session: Session, candidates: list[tuple[str, str]], now: datetime, report: ImportReport) -> None:
    """Insert the (number, status) pairs not already pooled, in batches: a file of 100,000
    lines is a few hundred statements, not 200,000, so the write is short."""
    fresh: dict[str, str] = {}
    for start in range(0, len(candidates), _BATCH):
        batch = candidates[start:start + _BATCH]
        pooled = set(session.scalars(select(PoolNumber.number)
                                     .where(PoolNumber.number.in_([number for number, _ in batch]))))
        for number, status in batch:
            if number in pooled or number in fresh:
                report.already_present.append(number)
            else:
                fresh[number] = status
                report.added.append(number)
    rows = [{"number": number, "country": region_of(number), "status": status, "allocation_count": 0,
             "created_at": now, "last_allocated_at": NEVER_ALLOCATED} for number, status in fresh.items()]
    for start in range(0, len(rows), _BATCH):
        session.execute(insert(PoolNumber.__table__), rows[start:start + _BATCH])


def import_csv(session: Session, data: bytes | str, now: datetime, default_region: str) -> ImportReport:
    """Import a CSV of numbers: one per line, optional columns ``number,status``.

    The first row (after blank and comment lines) is a header if its first cell is 'number'
    (any case). Blank lines and lines starting with '#' are skipped. Each bad line is reported
    with its line number; the good ones are added; numbers already pooled are left as they are.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("the file is not UTF-8 text; save it as CSV (UTF-8)") from None
    if "\x00" in data:
        raise ValueError("the file is not a text CSV file")
    report = ImportReport()
    candidates = []
    reader = csv.reader(io.StringIO(data, newline=""))
    first_row = True
    try:
        for row in reader:
            line = reader.line_num
            cells = [cell.strip() for cell in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            header = first_row and cells[0].lower() in ("number", "numbers", "phone", "mask", "masking number")
            first_row = False
            if header:
                continue
            if len(cells) > 2:
                report.rejected.append((line, "too many columns; expected number[,status]"))
                continue
            try:
                number = pool_number(cells[0], default_region)
            except PhoneNumberError as exc:
                report.rejected.append((line, f"{cells[0][:MAX_IMPORT_LINE]!r} {exc}"))
                continue
            try:
                status = _status_of(cells[1] if len(cells) > 1 else None)
            except ValueError as exc:
                report.rejected.append((line, str(exc)))
                continue
            candidates.append((number, status))
    except csv.Error as exc:
        report.rejected.append((reader.line_num, f"unreadable CSV: {exc}"))
    _add_all(session, candidates, now, report)
    return report


def find(session: Session, number: str, default_region: str) -> PoolNumber:
    """The pool number ``number``, written in any notation. ValueError when it is not a phone
    number, LookupError when it is not in the pool."""
    try:
        e164 = normalise(number, default_region)
    except PhoneNumberError as exc:
        raise ValueError(f"{number!r} {exc}") from None
    row = session.scalar(select(PoolNumber).where(PoolNumber.number == e164))
    if row is None:
        raise LookupError(f"{e164} is not in the pool")
    return row


@dataclass(frozen=True)
class PoolUse:
    number: PoolNumber
    active_maskings: int


# "In use" is read from the leases (``routes``), never from the maskings' history: a lease row
# lives until its cool-off is over and it is swept (by the next allocation for one of its
# parties, the launcher's periodic sweep, or ``flask sweep``), so the table stays far smaller
# than the history. A lease is live while ``route_until`` is in the future, which is exactly
# when its masking is (service.py keeps the two in step); each masking has two, (low, high)
# and (high, low).

def live_maskings_by_number(session: Session, now: datetime, numbers: list[str] | None = None) -> dict[str, int]:
    """number -> how many live maskings it serves at ``now`` (numbers serving none left out)."""
    query = (select(Route.mask_number, func.count())
             .where(Route.route_until > now, Route.party < Route.other_party)  # one of a masking's two leases
             .group_by(Route.mask_number))
    if numbers is not None:
        query = query.where(Route.mask_number.in_(numbers))
    return dict(session.execute(query).all())


def list_numbers(session: Session, now: datetime, status: str | None = None, *, digits: str | None = None,
                 after: str | None = None, limit: int | None = None) -> list[PoolUse]:
    """Pool numbers in order, each with how many live maskings it serves now: all of them, or
    one status, or those containing ``digits``; ``limit`` at most, after the number ``after``."""
    query = select(PoolNumber).order_by(PoolNumber.number)
    if status:
        query = query.where(PoolNumber.status == _status_of(status))
    if digits:
        query = query.where(PoolNumber.number.contains(digits, autoescape=True))
    if after:
        query = query.where(PoolNumber.number > after)
    if limit is not None:
        query = query.limit(limit)
    rows = session.scalars(query).all()
    # A page asks for its own numbers' counts; the whole list counts once, without a long IN list.
    counts = live_maskings_by_number(session, now, None if limit is None else [r.number for r in rows]) if rows else {}
    return [PoolUse(row, counts.get(row.number, 0)) for row in rows]


@dataclass(frozen=True)
class StatusUse:
    """Pool numbers of one status: how many, and how many serve at least one live masking."""
    status: str
    total: int
    in_use: int

    @property
    def free(self) -> int:
        return self.total - self.in_use


def use_by_status_query(now: datetime):
    """Pool numbers per status, each probed with EXISTS on the routes' (mask_number, party) index."""
    in_use = exists().where(Route.mask_number == PoolNumber.number, Route.route_until > now)
    return (
        select(PoolNumber.status, func.count().label("total"),
               func.sum(case((in_use, 1), else_=0)).label("in_use"))
        .group_by(PoolNumber.status)
    )


def use_by_status(session: Session, now: datetime) -> list[StatusUse]:
    """Numbers in use now and free, per status (active, reserved, retired; empty ones left out)."""
    found = {status: (total, int(in_use or 0)) for status, total, in_use in session.execute(use_by_status_query(now))}
    return [StatusUse(status, *found[status]) for status in PoolStatus.ALL if status in found]
