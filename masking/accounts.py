"""API accounts, their tokens and the ssids of Auth/login. No Flask.

Tokens and ssids are random and shown once; only their SHA-256 is stored (they carry
256 bits of entropy, so a slow password hash would buy nothing but latency).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .driver import DriverConnection, Statement
from .errors import INVALID_PARAMETERS, INVALID_TOKEN, PERMISSION_DENIED, MaskingError, text_field
from .models import ApiAccount, ApiSession

TOKEN_PREFIX = "mtk_"
SSID_PREFIX = "mss_"
# The API account the dashboard itself masks numbers through (created at its first call).
DASHBOARD_USER_ID = "dashboard"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewAccount:
    """An account and its token, new or rotated."""

    account: ApiAccount
    token: str  # the only time the token exists in clear


def create_account(session: Session, name: str, now: datetime, *, can_write: bool = True,
                   reads_for: ApiAccount | None = None) -> NewAccount:
    """A new account. ``reads_for``: for a read-only account, the read-write account whose
    maskings it gets and lists (without it, it reads nothing)."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ValueError("the account name must be 1 to 120 characters")
    if reads_for is not None:
        if can_write:
            raise ValueError("only a read-only account reads for another account")
        if not reads_for.can_write or reads_for.revoked_at is not None:
            raise ValueError(f"{reads_for.user_id} cannot be read for: it is "
                             f"{'revoked' if reads_for.revoked_at is not None else 'read-only'}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    account = ApiAccount(
        user_id="u" + secrets.token_hex(8),
        name=name,
        token_hash=_digest(token),
        can_write=can_write,
        created_at=now,
        reads_for=reads_for,
    )
    session.add(account)
    session.flush()
    return NewAccount(account, token)


def find_account(session: Session, user_id: str) -> ApiAccount | None:
    return session.scalar(select(ApiAccount).where(ApiAccount.user_id == user_id))


def _revoke_sessions(session: Session, account: ApiAccount, now: datetime) -> None:
    session.execute(
        update(ApiSession)
        .where(ApiSession.account_id == account.id, ApiSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_account(session: Session, account: ApiAccount, now: datetime) -> ApiAccount:
    """End ``account``'s token and every ssid it opened (nothing changes if it is revoked already)."""
    if account.revoked_at is None:
        account.revoked_at = now
        _revoke_sessions(session, account, now)
    return account


MAX_GRACE_MINUTES = 7 * 24 * 60


def rotate_token(session: Session, account: ApiAccount, now: datetime, grace_minutes: int = 0) -> NewAccount:
    """Give ``account`` a new token (returned in clear, stored as its hash); its maskings stay its own.

    With ``grace_minutes`` the old token keeps working that long (whole seconds, like an ssid's
    expiry), and the ssids already open run to their own expiry. With 0 the old token stops at once
    and every open ssid is revoked: a leaked token may have been used to log in. Only the token
    just replaced is kept: rotating again during a grace ends the one before it.
    """
    if isinstance(grace_minutes, bool) or not isinstance(grace_minutes, int) \
            or not 0 <= grace_minutes <= MAX_GRACE_MINUTES:
        raise ValueError(f"the old token may keep working for 0 to {MAX_GRACE_MINUTES} minutes (7 days), "
                         f"not {grace_minutes!r}")
    # Locked and read afresh: two rotations at once must not both hand out a token that works,
    # and a revocation committed meanwhile must be seen.
    session.refresh(account, with_for_update=True)
    if account.revoked_at is not None:
        raise ValueError(f"a revoked account cannot be given a new token, and {account.user_id} is revoked; "
                         "create a new account instead")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if grace_minutes:
        account.previous_token_hash = account.token_hash
        account.previous_token_until = now.replace(microsecond=0) + timedelta(minutes=grace_minutes)
    else:
        account.previous_token_hash = account.previous_token_until = None
        _revoke_sessions(session, account, now)
    account.token_hash = _digest(token)
    session.flush()
    return NewAccount(account, token)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the few account fields a request needs, read without the ORM."""

    id: int
    user_id: str
    can_write: bool
    reads_id: int  # whose maskings it gets and lists: its own, or the account a read-only one reads for


# Credentials are checked on every API call: driver-level SQL (see masking.driver), with the
# time comparisons done in SQL.
# A read-only account whose owner (reads_for) was revoked reads nothing more: revoking an
# integration ends every access to its maskings (the owner's row: one primary-key lookup).
# The previous token's hash comes back only while its grace period lasts (NULL after, or never set).
_ACCOUNT_BY_USER_ID = Statement("""
    SELECT a.id, a.user_id, a.can_write, a.token_hash, a.revoked_at IS NOT NULL, coalesce(a.reads_for_id, a.id),
           o.revoked_at IS NOT NULL, CASE WHEN a.previous_token_until > :now THEN a.previous_token_hash END
    FROM api_accounts a LEFT JOIN api_accounts o ON o.id = a.reads_for_id
    WHERE a.user_id = :user_id
""")
_ACCOUNT_BY_SSID = Statement("""
    SELECT a.id, a.user_id, a.can_write, a.revoked_at IS NOT NULL,
           s.expires_at <= :now, s.revoked_at IS NOT NULL, coalesce(a.reads_for_id, a.id), o.revoked_at IS NOT NULL
    FROM api_sessions s JOIN api_accounts a ON a.id = s.account_id LEFT JOIN api_accounts o ON o.id = a.reads_for_id
    WHERE s.ssid_hash = :ssid_hash
""")
_OWNER_REVOKED = "the account this one reads for was revoked, so it reads nothing more"


def check_token(conn: DriverConnection, user_id: str, token: str, now: datetime) -> Principal:
    """The account whose current token, or previous one during its grace period, this is."""
    if "\x00" in user_id:  # no userId holds one, and PostgreSQL cannot even be asked (Auth/login's path)
        raise MaskingError(INVALID_TOKEN, "userId and token do not match an account")
    row = conn.first(_ACCOUNT_BY_USER_ID, {"user_id": user_id, "now": conn.timestamp(now)})
    digest = _digest(token)
    # Both compared whatever the first answers, so the time taken says nothing about which matched.
    if row is None or not (hmac.compare_digest(row[3], digest) | hmac.compare_digest(row[7] or "", digest)):
        raise MaskingError(INVALID_TOKEN, "userId and token do not match an account")
    account_id, user_id, can_write, _token_hash, revoked, reads_id, owner_revoked, _previous_hash = row
    if revoked:
        raise MaskingError(INVALID_TOKEN, "this account's credentials were revoked")
    if owner_revoked:
        raise MaskingError(INVALID_TOKEN, _OWNER_REVOKED)
    return Principal(account_id, user_id, bool(can_write), reads_id)


def authenticate(conn: DriverConnection, body: dict, now: datetime, *, write: bool) -> Principal:
    """The account behind the body's credentials: ``ssid``, or ``userId`` with ``token``.

    1000 when they are missing or mixed, 1014 when wrong, expired or revoked, 1015 when the
    account may not write and ``write`` is asked.
    """
    ssid, user_id, token = text_field(body, "ssid"), text_field(body, "userId"), text_field(body, "token")
    if ssid and (user_id or token):
        raise MaskingError(INVALID_PARAMETERS, "send either ssid, or userId with token, not both")
    if ssid:
        row = conn.first(_ACCOUNT_BY_SSID, {"ssid_hash": _digest(ssid), "now": conn.timestamp(now)})
        if row is None:
            raise MaskingError(INVALID_TOKEN, "ssid is not valid")
        (account_id, account_user_id, can_write, account_revoked, ssid_expired, ssid_revoked, reads_id,
         owner_revoked) = row
        if ssid_revoked:
            raise MaskingError(INVALID_TOKEN, "ssid is not valid")
        if ssid_expired:
            raise MaskingError(INVALID_TOKEN, "ssid has expired; log in again")
        if account_revoked:
            raise MaskingError(INVALID_TOKEN, "this account's credentials were revoked")
        if owner_revoked:
            raise MaskingError(INVALID_TOKEN, _OWNER_REVOKED)
        account = Principal(account_id, account_user_id, bool(can_write), reads_id)
    elif user_id and token:
        account = check_token(conn, user_id, token, now)
    elif user_id or token:
        missing = "token" if user_id else "userId"
        raise MaskingError(INVALID_PARAMETERS, f"{missing} is required with {'userId' if user_id else 'token'}")
    else:
        raise MaskingError(INVALID_PARAMETERS, "credentials are required: ssid, or userId with token")
    if write and not account.can_write:
        raise MaskingError(PERMISSION_DENIED, "this account may read maskings but not change them")
    return account


def open_session(session: Session, account: Principal, now: datetime, ttl_seconds: int) -> tuple[str, ApiSession]:
    """A new ssid for ``account``; returns (ssid in clear, its row)."""
    ssid = SSID_PREFIX + secrets.token_urlsafe(32)
    row = ApiSession(
        ssid_hash=_digest(ssid),
        account_id=account.id,
        created_at=now,
        expires_at=now.replace(microsecond=0) + timedelta(seconds=ttl_seconds),
    )
    session.add(row)
    session.flush()
    return ssid, row


def close_session(session: Session, ssid: str, now: datetime) -> bool:
    """Revoke an ssid. True if it was live."""
    row = session.get(ApiSession, _digest(ssid))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return False
    row.revoked_at = now
    return True
