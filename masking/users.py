"""Dashboard users: creation, passwords (argon2id), roles, disabling, the login rate limit. No Flask.

Passwords are hashed with argon2id (argon2-cffi) at OWASP's minimum profile (19 MiB,
2 passes, 1 lane): a login costs tens of milliseconds and a gunicorn worker with 16
threads logging people in at once stays well under half a gigabyte. Hashes made with
older parameters are upgraded on the next successful login.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .models import LoginAttempt, Role, User

ROLES = Role.ALL
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")

# Login rate limit: failures per (username, address), and per address across usernames.
LOGIN_WINDOW = timedelta(minutes=5)
LOGIN_MAX_FAILURES = 5
LOGIN_MAX_FAILURES_PER_IP = 50

hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hasher.hash("not a password of anyone")


class UserError(ValueError):
    """A request about users that cannot be done; the message says why, for people."""


def normalise_username(username: str) -> str:
    return (username or "").strip().lower()


def check_username(username: str) -> str:
    name = normalise_username(username)
    if not USERNAME_PATTERN.match(name):
        raise UserError("a username is 2 to 64 characters: letters, digits and . _ @ -, starting with a "
                        "letter or digit")
    return name


def check_password(password: str, username: str = "") -> None:
    """Refuse passwords that are too short, too long or trivially guessable."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise UserError("the password must not start or end with a space")
    if len(set(password)) < 4:
        raise UserError("the password needs more different characters")
    if username and normalise_username(username) in password.lower():
        raise UserError("the password must not contain the username")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"the role must be one of {', '.join(ROLES)}")
    return role


def find(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == normalise_username(username)))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User))


def create_user(session: Session, username: str, password: str, role: str, now: datetime) -> User:
    name = check_username(username)
    check_role(role)
    check_password(password, name)
    if find(session, name) is not None:
        raise UserError(f"a user named {name!r} already exists")
    user = User(username=name, password_hash=hasher.hash(password), role=role, session_epoch=0, created_at=now)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this username and password, or None (same cost either way). Reads only."""
    user = find(session, username)
    if user is None:
        _verify(_DUMMY_HASH, password)
        return None
    if not _verify(user.password_hash, password) or not user.is_active:
        return None
    return user


def note_login(session: Session, user: User, password: str, ip: str, now: datetime) -> None:
    """After a successful login: remember when, upgrade an old hash, forget earlier failures.
    Call inside a write transaction (``masking.db.write_transaction``)."""
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = now
    clear_login_failures(session, user.username, ip)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


def set_password(session: Session, user: User, password: str) -> None:
    """New password; every open session of the user ends."""
    check_password(password, user.username)
    user.password_hash = hasher.hash(password)
    user.session_epoch += 1


def set_role(session: Session, user: User, role: str) -> None:
    user.role = check_role(role)


def disable(session: Session, user: User, now: datetime) -> None:
    """The user can no longer log in, and every open session of theirs ends."""
    if user.disabled_at is None:
        user.disabled_at = now
        user.session_epoch += 1


def enable(session: Session, user: User) -> None:
    user.disabled_at = None


def load_session_user(session: Session, session_id: str) -> User | None:
    """The user behind Flask-Login's stored id ('<id>:<epoch>'), if that session is still valid."""
    user_id, _, epoch = (session_id or "").partition(":")
    if not user_id.isdecimal() or not epoch.isdecimal():
        return None
    user = session.get(User, int(user_id))
    if user is None or not user.is_active or user.session_epoch != int(epoch):
        return None
    return user


# ---------------------------------------------------------------- login rate limit

def _attempt_key(username: str, ip: str) -> tuple[str, str]:
    """(username, ip) as a login attempt stores them (the columns' lengths)."""
    return normalise_username(username)[:64], ip[:45]


def login_blocked_for(session: Session, username: str, ip: str, now: datetime) -> int:
    """Seconds until this username may try again from this address (0: not blocked).

    Two limits: failures for this username from this address, and failures from this address
    for any username (someone trying many names)."""
    name, ip = _attempt_key(username, ip)
    limits = [((LoginAttempt.username == name, LoginAttempt.ip == ip), LOGIN_MAX_FAILURES),
              ((LoginAttempt.ip == ip,), LOGIN_MAX_FAILURES_PER_IP)]
    for conditions, limit in limits:
        failures, oldest = session.execute(select(func.count(), func.min(LoginAttempt.at))
                                           .where(*conditions, LoginAttempt.at > now - LOGIN_WINDOW)).one()
        if failures >= limit:
            return max(1, int((oldest + LOGIN_WINDOW - now).total_seconds()) + 1)
    return 0


def record_login_failure(session: Session, username: str, ip: str, now: datetime) -> None:
    name, ip = _attempt_key(username, ip)
    session.execute(delete(LoginAttempt).where(LoginAttempt.at <= now - LOGIN_WINDOW))
    session.add(LoginAttempt(username=name, ip=ip, at=now))


def clear_login_failures(session: Session, username: str, ip: str) -> None:
    name, ip = _attempt_key(username, ip)
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == name, LoginAttempt.ip == ip))
