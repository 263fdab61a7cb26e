"""What admins do to users, the pool and API credentials, each with its audit entry. No Flask.

Every function changes rows and adds the audit entry (``masking.audit``) in the caller's
transaction; the dashboard and the command line wrap each call in
``masking.db.write_transaction``, so the change and its audit entry are written together or
not at all. Refusals are ``AdminError`` (a ``ValueError``) with a message for people.

The last-admin guard: disabling or demoting an active admin is refused when no other
active admin would remain. The active admins' rows are locked first (``FOR UPDATE`` on
PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so two admins demoting
themselves at the same moment cannot both succeed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from . import accounts, audit, pool, users
from .clock import iso_utc
from .humanize import count, minutes_label
from .models import ApiAccount, AuditEntry, PoolNumber, PoolStatus, Role, User


class AdminError(ValueError):
    """An admin action that cannot be done; the message says why, in plain words."""


# Audit actions (``AuditEntry.action``).
USER_CREATE = "user.create"
USER_DISABLE = "user.disable"
USER_ENABLE = "user.enable"
USER_SET_PASSWORD = "user.set_password"
USER_SET_ROLE = "user.set_role"
POOL_ADD = "pool.add"
POOL_IMPORT = "pool.import"
POOL_STATUS = {PoolStatus.ACTIVE: "pool.activate", PoolStatus.RESERVED: "pool.reserve",
               PoolStatus.RETIRED: "pool.retire"}
API_ACCOUNT_CREATE = "api_account.create"
API_ACCOUNT_REVOKE = "api_account.revoke"
API_ACCOUNT_ROTATE = "api_account.rotate"


def _sentence(error: Exception) -> str:
    text = str(error)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# ---------------------------------------------------------------- users

def lock_user(session: Session, user_id: int) -> User | None:
    """The user, freshly read and locked for this transaction."""
    return session.get(User, user_id, populate_existing=True, with_for_update=True)


def _ensure_another_admin(session: Session, user: User) -> None:
    if user.role != Role.ADMIN or not user.is_active:
        return
    admins = session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.disabled_at.is_(None)).with_for_update()).all()
    if not any(admin_id != user.id for admin_id in admins):
        raise AdminError(f"{user.username} is the last active admin. Make another user an admin first, "
                         "so that someone can still run the dashboard.")


def create_user(session: Session, actor: User | None, username: str, password: str, role: str,
                now: datetime) -> User:
    try:
        user = users.create_user(session, username, password, role, now)
    except users.UserError as exc:
        raise AdminError(_sentence(exc)) from None
    audit.record(session, actor, USER_CREATE, now, target=user.username, detail=f"role {role}")
    return user


def disable_user(session: Session, actor: User | None, user: User, now: datetime) -> None:
    if actor is not None and user.id == actor.id:
        raise AdminError("You cannot disable your own account. Another admin can do it.")
    if not user.is_active:
        raise AdminError(f"{user.username} is already disabled.")
    _ensure_another_admin(session, user)
    users.disable(session, user, now)  # raises session_epoch: their open sessions end
    audit.record(session, actor, USER_DISABLE, now, target=user.username)


def enable_user(session: Session, actor: User | None, user: User, now: datetime) -> None:
    if user.is_active:
        raise AdminError(f"{user.username} is already enabled.")
    users.enable(session, user)
    audit.record(session, actor, USER_ENABLE, now, target=user.username)


def reset_password(session: Session, actor: User | None, user: User, password: str, now: datetime) -> None:
    try:
        users.set_password(session, user, password)  # raises session_epoch: their open sessions end
    except users.UserError as exc:
        raise AdminError(_sentence(exc)) from None
    audit.record(session, actor, USER_SET_PASSWORD, now, target=user.username)


def change_role(session: Session, actor: User | None, user: User, role: str, now: datetime) -> str:
    """Give ``user`` ``role``; returns the role they had."""
    try:
        users.check_role(role)
    except users.UserError as exc:
        raise AdminError(_sentence(exc)) from None
    old = user.role
    if old == role:
        raise AdminError(f"{user.username} is already {_article(role)} {role}.")
    if old == Role.ADMIN:
        _ensure_another_admin(session, user)
    users.set_role(session, user, role)
    audit.record(session, actor, USER_SET_ROLE, now, target=user.username, detail=f"{old} -> {role}")
    return old


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


# ---------------------------------------------------------------- the pool

# An audit entry names at most this many numbers or lines of a list (an import may add 100,000).
AUDIT_LIST_LIMIT = 50


def _some(items: list) -> str:
    shown = " ".join(str(item) for item in items[:AUDIT_LIST_LIMIT])
    return shown + (f" and {len(items) - AUDIT_LIST_LIMIT} more" if len(items) > AUDIT_LIST_LIMIT else "")


def _report_detail(report: pool.ImportReport, position: str = "line") -> str:
    """'2 added (+91… +91…), 1 already in the pool, 2 rejected (lines 4 6)': which list is which."""
    added = f"{len(report.added)} added" + (f" ({_some(report.added)})" if report.added else "")
    rejected = f"{len(report.rejected)} rejected"
    if report.rejected:
        rejected += f" ({position}{'s' if len(report.rejected) > 1 else ''} {_some([at for at, _ in report.rejected])})"
    return f"{added}, {len(report.already_present)} already in the pool, {rejected}"


def add_numbers(session: Session, actor: User | None, numbers: list[str], now: datetime, default_region: str,
                status: str = PoolStatus.ACTIVE, *, positions: list[int] | None = None,
                position: str = "argument") -> pool.ImportReport:
    """``pool.add_numbers`` with its audit entry. Rejections are reported at ``positions[i]`` for
    the i-th number when given (the line it was typed on), else at i + 1."""
    report = pool.add_numbers(session, numbers, now, default_region, status)
    if positions is not None:
        report.rejected = [(positions[at - 1], reason) for at, reason in report.rejected]
    if report.added or report.already_present:
        audit.record(session, actor, POOL_ADD, now, target=count(len(report.added), "number"),
                     detail=_report_detail(report, position))
    return report


def add_typed_numbers(session: Session, actor: User | None, lines: list[str], now: datetime, default_region: str,
                      status: str = PoolStatus.ACTIVE) -> pool.ImportReport:
    """The dashboard's box: one number per line, blank lines skipped, rejections by line number."""
    numbered = [(line_number, line.strip()) for line_number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise AdminError("Type at least one number, one per line.")
    return add_numbers(session, actor, [text for _, text in numbered], now, default_region, status,
                       positions=[line_number for line_number, _ in numbered], position="line")


def import_numbers(session: Session, actor: User | None, data: bytes, filename: str, now: datetime,
                   default_region: str) -> pool.ImportReport:
    """``pool.import_csv`` with an audit entry; a file that is not text is an AdminError."""
    if not data:
        raise AdminError("The file is empty.")
    try:
        report = pool.import_csv(session, data, now, default_region)
    except ValueError as exc:
        raise AdminError(_sentence(exc)) from None
    audit.record(session, actor, POOL_IMPORT, now, target=(filename or "upload")[:200],
                 detail=_report_detail(report))
    return report


def set_number_status(session: Session, actor: User | None, number: PoolNumber, status: str,
                      now: datetime) -> PoolNumber:
    if status not in PoolStatus.ALL:
        raise AdminError(f"The status must be one of {', '.join(PoolStatus.ALL)}.")
    old = number.status
    if old == status:
        raise AdminError(f"{number.number} is already {status}.")
    number.status = status
    audit.record(session, actor, POOL_STATUS[status], now, target=number.number, detail=f"{old} -> {status}")
    return number


@dataclass
class PoolPage:
    numbers: list[pool.PoolUse]  # as ``pool.list_numbers`` gives them, one page at a time
    next_after: str | None  # cursor of the next page (the last number shown), None on the last page


def pool_page(session: Session, now: datetime, *, status: str | None = None, digits: str | None = None,
              after: str | None = None, limit: int = 100) -> PoolPage:
    """``pool.list_numbers`` by pages: numbers in order, ``limit`` at a time after the number
    ``after`` (keyset), optionally only one status or numbers containing ``digits``."""
    rows = pool.list_numbers(session, now, status, digits=digits, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return PoolPage(rows, rows[-1].number.number if more else None)


def pool_summary(session: Session, now: datetime) -> dict[str, int]:
    """How many numbers per status, and how many serve at least one live masking now."""
    use = pool.use_by_status(session, now)
    summary = {status: 0 for status in PoolStatus.ALL}
    summary.update({each.status: each.total for each in use})
    summary["in_use"] = sum(each.in_use for each in use)
    return summary


# ---------------------------------------------------------------- API credentials

class ReadsForError(AdminError):
    """What a read-only account is to read for is missing or unusable; callers say where to choose it."""


def create_api_account(session: Session, actor: User | None, name: str, can_write: bool,
                       now: datetime, reads_for_user_id: str | None = None) -> accounts.NewAccount:
    """A new API account. A read-only one needs ``reads_for_user_id``, the active read-write
    account whose maskings it gets and lists: on its own it would read nothing."""
    reads_for = None
    if reads_for_user_id and can_write:
        raise ReadsForError("Only a read-only account reads for another account.")
    if not can_write:
        if not reads_for_user_id:
            raise ReadsForError("Choose the read-write account whose masks it reads: a read-only account "
                                "makes none of its own.")
        # A userId is printable text: one that is not (a control character, a lone surrogate from
        # a terminal's bad bytes) names no account, and the database would refuse to look it up.
        reads_for = accounts.find_account(session, reads_for_user_id) if reads_for_user_id.isprintable() else None
        if reads_for is None:
            raise ReadsForError(f"There is no API account {reads_for_user_id!r} to read for.")
        if not reads_for.can_write or reads_for.revoked_at is not None:
            state = "revoked" if reads_for.revoked_at is not None else "read-only itself"
            raise ReadsForError(f"{reads_for.user_id} is {state}: choose an active read-write account.")
    try:
        created = accounts.create_account(session, name, now, can_write=can_write, reads_for=reads_for)
    except ValueError as exc:
        raise AdminError(_sentence(exc)) from None
    access = "read-write" if can_write else f"read-only, reads for {reads_for.user_id}"
    audit.record(session, actor, API_ACCOUNT_CREATE, now, target=created.account.user_id,
                 detail=f"{created.account.name} ({access})")
    return created


class DashboardAccountError(AdminError):
    """A change that would stop the dashboard's agents from masking numbers, unconfirmed; callers
    add how to confirm."""


# The userIds the dashboard masks through when the caller does not say (the command line and
# the pages pass the configured one too: ``service_client.dashboard_user_ids``).
BUILTIN_ONLY = frozenset({accounts.DASHBOARD_USER_ID})


def _dashboards(account: ApiAccount) -> str:
    if account.user_id == accounts.DASHBOARD_USER_ID:
        return f"{account.user_id} is the dashboard's own account"
    return f"{account.user_id} is the account the dashboard masks through (MASKING_API_USER_ID)"


def readers_of(session: Session, account: ApiAccount) -> list[str]:
    """The userIds of the active read-only accounts that read ``account``'s maskings, in order."""
    return list(session.scalars(select(ApiAccount.user_id).where(ApiAccount.reads_for_id == account.id,
                                                                 ApiAccount.revoked_at.is_(None))
                                .order_by(ApiAccount.user_id)))


def revoke_api_account(session: Session, actor: User | None, account: ApiAccount, now: datetime, *,
                       dashboard_user_ids: frozenset[str] | set[str] = BUILTIN_ONLY,
                       dashboard_confirmed: bool = False) -> list[str]:
    """Revoke ``account``; the answer is its readers' userIds: they read nothing from now on. One of
    ``dashboard_user_ids`` only with ``dashboard_confirmed``: without it, no agent can mask a number."""
    if account.revoked_at is not None:
        raise AdminError(f"{account.user_id} is already revoked.")
    if account.user_id in dashboard_user_ids and not dashboard_confirmed:
        raise DashboardAccountError(f"{_dashboards(account)}: revoking it stops every agent from masking numbers.")
    readers = readers_of(session, account)
    accounts.revoke_account(session, account, now)
    detail = account.name
    if readers:
        detail += f"; its readers read nothing more: {', '.join(readers)}"
    audit.record(session, actor, API_ACCOUNT_REVOKE, now, target=account.user_id, detail=detail)
    return readers


def rotate_api_account(session: Session, actor: User | None, account: ApiAccount, now: datetime,
                       grace_minutes: int = 0, *, dashboard_user_ids: frozenset[str] | set[str] = BUILTIN_ONLY,
                       dashboard_confirmed: bool = False) -> accounts.NewAccount:
    """A new token for ``account`` (see ``accounts.rotate_token``); the audit entry says how long
    the old one works, never either token. The old token of one of ``dashboard_user_ids`` stops
    at once only with ``dashboard_confirmed``: the dashboard sends it until its setting changes."""
    if account.user_id == accounts.DASHBOARD_USER_ID:
        raise AdminError(f"{_dashboards(account)}: its token is derived from SECRET_KEY, "
                         "so it cannot be given a new one here (a new SECRET_KEY gives it a new token).")
    if account.user_id in dashboard_user_ids and not grace_minutes and not dashboard_confirmed:
        raise DashboardAccountError(
            f"{_dashboards(account)}: if its old token stops at once, no agent can mask a number until "
            "MASKING_API_TOKEN holds the new one and the app is restarted. Choose a time for the old token "
            "to stop, and change MASKING_API_TOKEN before then.")
    try:
        rotated = accounts.rotate_token(session, account, now, grace_minutes)
    except ValueError as exc:
        raise AdminError(_sentence(exc)) from None
    if grace_minutes:
        old = (f"the old token works {minutes_label(grace_minutes)} more, "
               f"until {iso_utc(account.previous_token_until)}")
    else:
        old = "the old token stopped at once and its open sessions were revoked"
    audit.record(session, actor, API_ACCOUNT_ROTATE, now, target=account.user_id, detail=f"{account.name}: {old}")
    return rotated


def list_api_accounts(session: Session) -> list[ApiAccount]:
    return list(session.scalars(select(ApiAccount).order_by(ApiAccount.created_at.desc(), ApiAccount.id.desc())))


def readable_api_accounts(session: Session) -> list[ApiAccount]:
    """The accounts a new read-only account may read for: active and read-write, by name."""
    return list(session.scalars(select(ApiAccount).where(ApiAccount.can_write.is_(True), ApiAccount.revoked_at.is_(None))
                                .order_by(ApiAccount.name, ApiAccount.id)))


# ---------------------------------------------------------------- reading the audit log

@dataclass
class AuditPage:
    entries: list[AuditEntry]
    next_before: int | None  # cursor of the next (older) page, None on the last page


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def audit_page(session: Session, *, actor: str | None = None, action: str | None = None,
               before: int | None = None, limit: int = 50) -> AuditPage:
    """Entries newest first (by ``at``, then ``id``), ``limit`` at a time (keyset pagination:
    ``before`` is the id of the last entry of the previous page).

    ``actor``: a username, or ``audit.CLI_ACTOR`` for the command line.
    """
    query = select(AuditEntry)
    if actor:
        name = users.normalise_username(actor)
        if name == audit.CLI_ACTOR:
            query = query.where(AuditEntry.actor_id.is_(None))
        else:
            user = users.find(session, name)
            query = query.where(AuditEntry.actor_id == user.id) if user else query.where(AuditEntry.actor_name == name)
    if action:
        query = query.where(AuditEntry.action == action)
    if before is not None:
        anchor = session.execute(select(AuditEntry.at, AuditEntry.id).where(AuditEntry.id == before)).first()
        if anchor is not None:
            query = query.where(or_(AuditEntry.at < anchor.at, and_(AuditEntry.at == anchor.at,
                                                                    AuditEntry.id < anchor.id)))
    rows = list(session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, rows[-1].id if more and rows else None)
