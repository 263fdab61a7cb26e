"""The tables. Plain SQLAlchemy 2 declarative models, no Flask.

Two small "lease" tables carry the invariants so that the database itself enforces them:

* ``routes``: one row per (masking number, party) of a live or cooling-off masking.
  Its unique index is invariant (R): a caller dialling a masking number reaches
  exactly one other party. It also answers the switch's routing question in one
  indexed lookup.
* ``active_pairs``: one row per unordered pair {m1, m2} with a live masking.
  Its primary key is invariant (P).

Rows whose time has passed are dead but may linger until the next allocation for the
same party or pair removes them, or a sweep does (``masking.service.sweep``, run by the
launcher of ``make run``); every reader compares with ``now``, so expiry is exact without
waiting for either.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    and_,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base

E164 = String(16)  # '+' and at most 15 digits
NEVER_ALLOCATED = datetime(1970, 1, 1)
# Ids are Integer columns: 32-bit on PostgreSQL. A larger id asked for is refused before any query,
# which PostgreSQL would answer "integer out of range".
MAX_ROW_ID = 2**31 - 1


class PoolStatus:
    ACTIVE = "active"
    RESERVED = "reserved"
    RETIRED = "retired"
    ALL = (ACTIVE, RESERVED, RETIRED)


class MaskingStatus:
    ACTIVE = "active"
    EXPIRED = "expired"
    ENDED = "ended"
    ALL = (ACTIVE, EXPIRED, ENDED)


class ApiAccount(Base):
    """An integrator's credentials for the API (the vendor's userId + token).

    A read-write account sets and unsets maskings, and gets and lists its own. A read-only
    account changes nothing; it gets and lists the maskings of ``reads_for``, a read-write
    account (a reporting tool reading what an integration made, say).
    """

    __tablename__ = "api_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64))
    can_write: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reads_for_id: Mapped[int | None] = mapped_column(ForeignKey("api_accounts.id"), nullable=True)
    # After a rotation with a grace period, the token it replaced works until previous_token_until
    # (exclusive), so an integrator can deploy the new one without downtime.
    previous_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_token_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    reads_for: Mapped["ApiAccount | None"] = relationship(remote_side=[id])

    def old_token_until(self, now: datetime) -> datetime | None:
        """Until when the token replaced by a rotation still works, if it does at ``now``
        (accounts.check_token asks the same in SQL)."""
        until = self.previous_token_until
        return until if self.revoked_at is None and until is not None and until > now else None


class ApiSession(Base):
    """An ``ssid`` handed out by Auth/login. Only its hash is stored."""

    __tablename__ = "api_sessions"

    ssid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("api_accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    account: Mapped[ApiAccount] = relationship()


class PoolNumber(Base):
    """A masking number rented from a carrier."""

    __tablename__ = "pool_numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(E164, unique=True)
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166 region code, e.g. IN
    status: Mapped[str] = mapped_column(String(10), default=PoolStatus.ACTIVE)
    # Load spreading: allocation takes the least recently given eligible number.
    # New numbers start at NEVER_ALLOCATED so they are used first.
    last_allocated_at: Mapped[datetime] = mapped_column(DateTime)
    allocation_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint("status IN ('active', 'reserved', 'retired')", name="status"),
        Index("ix_pool_numbers_pick", "status", "country", "last_allocated_at", "id"),
        Index("ix_pool_numbers_pick_any", "status", "last_allocated_at", "id"),
    )


class Masking(Base):
    """One masking: m1 and m2 joined behind ``mask_number`` until ``expires_at``.

    Its status is derived from the instants, never stored, so it cannot go stale:
    ended if ``ended_at`` is set, else expired once ``expires_at`` has passed, else active.
    """

    __tablename__ = "maskings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("api_accounts.id"))
    pool_number_id: Mapped[int] = mapped_column(ForeignKey("pool_numbers.id"))
    mask_number: Mapped[str] = mapped_column(E164)
    m1: Mapped[str] = mapped_column(E164)
    m2: Mapped[str] = mapped_column(E164)
    event_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (
        CheckConstraint("m1 <> m2", name="distinct_parties"),
        Index("ix_maskings_account_id", "account_id", "id"),
        Index("ix_maskings_m1", "m1"),
        Index("ix_maskings_m2", "m2"),
        Index("ix_maskings_mask_number", "mask_number"),
        Index("ix_maskings_event_id", "event_id"),
        Index("ix_maskings_created_at", "created_at"),
        Index("ix_maskings_expires_at", "expires_at"),  # the supervisors' "live" filter (migration 0005)
    )

    @classmethod
    def live_at(cls, now: datetime):
        """SQL condition: not ended and not yet expired at ``now`` (what status_at calls active)."""
        return and_(cls.ended_at.is_(None), cls.expires_at > now)

    def status_at(self, now: datetime) -> str:
        return self.status_of(self.ended_at, self.expires_at, now)

    @staticmethod
    def status_of(ended_at: datetime | None, expires_at: datetime, now: datetime) -> str:
        """The state of a masking with these times (also for rows read as columns, the exports)."""
        if ended_at is not None:
            return MaskingStatus.ENDED
        if expires_at <= now:
            return MaskingStatus.EXPIRED
        return MaskingStatus.ACTIVE


class Route(Base):
    """(masking number, party) -> the other party, while a masking holds it.

    ``route_until``: calls are connected before this instant (the masking's expiry or end).
    ``hold_until``: the pair is not given out again before this instant (route_until + cool-off).
    """

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mask_number: Mapped[str] = mapped_column(E164)
    party: Mapped[str] = mapped_column(E164)
    other_party: Mapped[str] = mapped_column(E164)
    masking_id: Mapped[int] = mapped_column(ForeignKey("maskings.id", ondelete="CASCADE"), index=True)
    route_until: Mapped[datetime] = mapped_column(DateTime)
    hold_until: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        # Invariant (R), and the routing lookup.
        UniqueConstraint("mask_number", "party", name="uq_routes_mask_number_party"),
        # Allocation: "which numbers does this party hold?"
        Index("ix_routes_party", "party", "mask_number"),
    )


class ActivePair(Base):
    """The unordered pair of a live masking, lower number first. Invariant (P)."""

    __tablename__ = "active_pairs"

    party_low: Mapped[str] = mapped_column(E164, primary_key=True)
    party_high: Mapped[str] = mapped_column(E164, primary_key=True)
    masking_id: Mapped[int] = mapped_column(ForeignKey("maskings.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (CheckConstraint("party_low < party_high", name="ordered"),)


# ---------------------------------------------------------------- the dashboard's tables

class Role:
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    ALL = (AGENT, SUPERVISOR, ADMIN)


class User(Base):
    """A person who logs in to the dashboard.

    ``session_epoch`` is part of the login session's identity (see ``get_id``): raising it
    (password reset, disabling) ends every session the user has open, in every worker.
    The Flask-Login protocol is implemented by duck typing, so this module needs no Flask.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # stored lower-case
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name="role"),)

    # Flask-Login's user protocol.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None

    def get_id(self) -> str:
        return f"{self.id}:{self.session_epoch}"

    def has_role(self, *roles: str) -> bool:
        return self.role in roles


class AttemptAction:
    SET = "set"
    UNSET = "unset"  # end now
    EXTEND = "extend"
    ALL = (SET, UNSET, EXTEND)


class AttemptOutcome:
    SUCCESS = "success"
    ERROR = "error"  # the service answered with an error code
    UNAVAILABLE = "unavailable"  # no usable answer: unreachable, timed out, or not the API
    ALL = (SUCCESS, ERROR, UNAVAILABLE)


class MaskAttempt(Base):
    """The dashboard's own record of every call an agent made to the masking service.

    One row per attempt (set, end now, extend), failed ones included: this is the
    supervisors' history. A successful ``set`` row also follows its masking afterwards:
    ``expires_at`` moves when it is extended, ``ended_at``/``ended_by_id`` say who ended it.
    Numbers are E.164 when they could be normalised, else what was typed (at most 40
    characters); the ``*_digits`` columns hold only the digits, for partial-number search.
    """

    __tablename__ = "mask_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    action: Mapped[str] = mapped_column(String(10))
    m1: Mapped[str | None] = mapped_column(String(40), nullable=True)
    m2: Mapped[str | None] = mapped_column(String(40), nullable=True)
    mask: Mapped[str | None] = mapped_column(String(40), nullable=True)
    m1_digits: Mapped[str | None] = mapped_column(String(40), nullable=True)
    m2_digits: Mapped[str | None] = mapped_column(String(40), nullable=True)
    mask_digits: Mapped[str | None] = mapped_column(String(40), nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    requested_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    outcome: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    masking_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the service's id
    # unset/extend rows: the set row they acted on.
    target_id: Mapped[int | None] = mapped_column(ForeignKey("mask_attempts.id"), nullable=True)
    # How a successful set ended (both NULL while live or once it simply expired).
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    end_note: Mapped[str | None] = mapped_column(String(120), nullable=True)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    ended_by: Mapped[User | None] = relationship(foreign_keys=[ended_by_id])
    target_attempt: Mapped["MaskAttempt | None"] = relationship(foreign_keys=[target_id], remote_side=[id])

    __table_args__ = (
        CheckConstraint("action IN ('set', 'unset', 'extend')", name="action"),
        CheckConstraint("outcome IN ('success', 'error', 'unavailable')", name="outcome"),
        # History, newest first (keyset on id), by agent, by time, by outcome and code.
        Index("ix_mask_attempts_created_at", "created_at", "id"),
        Index("ix_mask_attempts_user_created", "user_id", "created_at", "id"),
        Index("ix_mask_attempts_outcome", "outcome", "error_code", "created_at", "id"),
        # An agent's live masks: successful sets not ended, by expiry.
        Index("ix_mask_attempts_user_live", "user_id", "action", "outcome", "expires_at"),
        Index("ix_mask_attempts_m1_digits", "m1_digits"),
        Index("ix_mask_attempts_m2_digits", "m2_digits"),
        Index("ix_mask_attempts_mask_digits", "mask_digits"),
        Index("ix_mask_attempts_masking_id", "masking_id"),
        Index("ix_mask_attempts_target_id", "target_id"),
        # The history's "active" filter: few rows are live at once (migration 0003).
        Index("ix_mask_attempts_expires_at", "expires_at"),
    )


class AuditEntry(Base):
    """Who did what to whom: admin actions, number reveals. ``actor_name`` survives the user."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)  # NULL: the CLI
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(1000), nullable=True)

    __table_args__ = (
        Index("ix_audit_log_at", "at", "id"),
        Index("ix_audit_log_actor", "actor_id", "at"),
        Index("ix_audit_log_action", "action", "at"),
    )


class LoginAttempt(Base):
    """Failed dashboard logins, kept a short while for the rate limit (shared by all workers)."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_login_attempts_username_ip", "username", "ip", "at"),
        Index("ix_login_attempts_ip", "ip", "at"),
    )
