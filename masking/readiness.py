"""Can the database serve this code: is it reachable, and migrated to a schema the code knows?

/healthz asks it before answering 200, and the dashboard and the operator commands use it to
turn a database that is down or was never migrated into one plain sentence, instead of a
traceback or a bare 500. No Flask here.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from .driver import describe_error

MIGRATE_COMMAND = ".venv/bin/flask --app app db upgrade"
RUN_MIGRATE = f"run `{MIGRATE_COMMAND}` (make run does it)"
NOT_MIGRATED = f"the database has not been migrated: {RUN_MIGRATE}"
BEHIND = f"the database's schema is older than this code: {RUN_MIGRATE}"

# What PostgreSQL and SQLite say when a query names a table or column the schema lacks.
_MISSING_SQLSTATES = ("42P01", "42703")  # undefined_table, undefined_column
_MISSING_SQLITE = ("no such table", "no such column")


class SchemaVersions:
    """The revisions of ``migrations/``: which are current (the heads) and which are known."""

    def __init__(self, migrations_dir: str | Path):
        from alembic.script import ScriptDirectory  # local: imports every migration script once

        script = ScriptDirectory(str(migrations_dir))
        self.heads = frozenset(script.get_heads())
        self.known = frozenset(revision.revision for revision in script.walk_revisions())

    def problem(self, stamped: set[str] | None) -> str | None:
        """What is wrong with a database stamped with these revisions (None: no table at all).

        A revision we do not know is newer than this code (a later release migrated first, as a
        rolling deploy does): the schema is a superset of ours, so it is not a problem.
        """
        if not stamped:
            return NOT_MIGRATED
        if any(revision in self.known and revision not in self.heads for revision in stamped):
            return BEHIND
        return None


def is_missing_schema(exc: BaseException) -> bool:
    """Did a query fail because the schema lacks a table or column it names?"""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    return getattr(orig, "sqlstate", None) in _MISSING_SQLSTATES or str(orig).startswith(_MISSING_SQLITE)


def problem_of(exc: BaseException, database_url: str | None = None) -> str | None:
    """One line for an error that means the database is unreachable or not migrated; None when
    the error is about something else (a constraint, a bug), which the caller handles as before.
    With ``database_url`` the line names the database (without its password): an operator whose
    terminal lacks the server's DATABASE_URL sees at once that it is another database."""
    database = "the database"
    if database_url:
        database += f" {make_url(database_url).render_as_string(hide_password=True)}"
    if is_missing_schema(exc):
        return f"{database} is not migrated to this version ({describe_error(exc)}): {RUN_MIGRATE}"
    if getattr(getattr(exc, "orig", None), "sqlite_errorname", None) == "SQLITE_BUSY":
        return f"{database} is busy: another process kept its write lock too long; try again"
    if isinstance(exc, (OperationalError, InterfaceError)):  # refused, unknown host, cannot open, locked
        return f"cannot use {database} ({describe_error(exc)}): check DATABASE_URL and that the database is up"
    return None
