"""The pool of masking numbers: adding, importing, reserving, retiring. No Flask.

Reserved and retired numbers are never given out automatically; maskings they already
serve run to their end (that is how a number is drained before it goes back to the carrier).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from .models import NEVER_ALLOCATED, Masking, PoolNumber, PoolStatus
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
            candidates.append((normalise(raw, default_region), status))
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
    rows = [{"number": number, "country": region_of(number) or "ZZ", "status": status, "allocation_count": 0,
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
                number = normalise(cells[0], default_region)
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


def set_status(session: Session, number: str, status: str, default_region: str) -> PoolNumber:
    """Change a pool number's status (active, reserved, retired). LookupError if unknown."""
    status = _status_of(status)
    try:
        e164 = normalise(number, default_region)
    except PhoneNumberError as exc:
        raise ValueError(f"{number!r} {exc}") from None
    row = session.scalar(select(PoolNumber).where(PoolNumber.number == e164))
    if row is None:
        raise LookupError(f"{e164} is not in the pool")
    row.status = status
    return row


@dataclass(frozen=True)
class PoolUse:
    number: PoolNumber
    active_maskings: int


def list_numbers(session: Session, now: datetime, status: str | None = None) -> list[PoolUse]:
    """Every pool number with how many live maskings it serves now."""
    live = (
        select(Masking.pool_number_id, func.count().label("n"))
        .where(Masking.live_at(now))
        .group_by(Masking.pool_number_id)
        .subquery()
    )
    query = (
        select(PoolNumber, func.coalesce(live.c.n, 0))
        .outerjoin(live, live.c.pool_number_id == PoolNumber.id)
        .order_by(PoolNumber.number)
    )
    if status:
        query = query.where(PoolNumber.status == _status_of(status))
    return [PoolUse(row, count) for row, count in session.execute(query)]
