"""The audit log: who did what to whom. No Flask.

Admin actions (users, pool, API credentials) and the reveal of a hidden number each add
one entry. ``actor`` is a dashboard user, or None for the command line.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from .models import AuditEntry, User

CLI_ACTOR = "command line"


def record(session: Session, actor: User | None, action: str, now: datetime, *, target: str | None = None,
           detail: str | None = None) -> AuditEntry:
    entry = AuditEntry(
        at=now,
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else CLI_ACTOR,
        action=action[:40],
        target=target[:200] if target else None,
        detail=detail[:1000] if detail else None,
    )
    session.add(entry)
    return entry
