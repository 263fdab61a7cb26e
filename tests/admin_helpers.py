"""Helpers for the admin pages' tests: the audit entries, users and pool rows as the database has them."""
from __future__ import annotations

from sqlalchemy import select

from masking.models import AuditEntry, PoolNumber, User
from masking.web.extensions import db


def audit_entries(app, action: str | None = None) -> list[AuditEntry]:
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        return db.session.scalars(query).all()


def audit_trail(app) -> list[tuple[str, str, str]]:
    """Every audit entry as (actor, action, target), oldest first."""
    return [(entry.actor_name, entry.action, entry.target) for entry in audit_entries(app)]


def user_row(app, username: str) -> User | None:
    with app.app_context():
        return db.session.scalar(select(User).where(User.username == username))


def pool_rows(app) -> dict[str, PoolNumber]:
    with app.app_context():
        return {row.number: row for row in db.session.scalars(select(PoolNumber))}
