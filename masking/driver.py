"""SQL at the driver level, for the statements of the busy API calls.

SQLAlchemy Core costs about 0.1 ms of Python per statement on top of the driver (execution
context, events, bind processing). A ``Masking/set`` runs seven statements, six of them
inside SQLite's write lock, which every other writer waits for; so credentials, set and
unset talk to the DBAPI connection directly. Everything else uses the ORM.

The SQL is written once, with ``:name`` parameters (sqlite3's named style); for psycopg it
is rewritten to ``%(name)s`` when the statement is built. Timestamps are naive UTC: psycopg
binds them as they are, and on SQLite they are bound as the text SQLAlchemy's ``DateTime``
stores ('YYYY-MM-DD HH:MM:SS.ffffff'), which compares correctly as text. Comparisons with
``now`` are done in SQL, so ``set`` never parses a stored time (``unset`` parses those of
the maskings it returns).

Driver errors are re-raised as SQLAlchemy's exceptions (``OperationalError``,
``IntegrityError``...), so callers handle one family whichever path ran the statement.

On PostgreSQL ``checkout`` takes its connection without the pool's ping (a round trip on
every call): a connection that died in the pool (a restart, killed backends) fails the first
statement of a transaction instead, which then runs once more on a fresh connection. Nothing
of that transaction reached the database, so nothing is lost or done twice. A connection lost
later in a transaction is not retried: its error reaches the caller (1010).
"""
from __future__ import annotations

import contextlib
import logging
import re
from datetime import datetime
from typing import Iterator

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .db import is_sqlite, pooled_connection, writers_queue

log = logging.getLogger("masking.driver")

# A quoted literal (left alone), a run of whitespace, or a :name parameter (not a ::cast).
_SQL_TOKEN = re.compile(r"('(?:[^']|'')*')|(\s+)|(?<![:\w]):(\w+)")


class Statement:
    """One SQL text in both parameter styles."""

    __slots__ = ("named", "pyformat")

    def __init__(self, sql: str):
        def rewrite(match: re.Match, parameter: str) -> str:
            literal, space, name = match.groups()
            return literal if literal else " " if space else parameter.format(name)

        sql = sql.strip()
        self.named = _SQL_TOKEN.sub(lambda m: rewrite(m, ":{}"), sql)
        self.pyformat = _SQL_TOKEN.sub(lambda m: rewrite(m, "%({})s"), sql.replace("%", "%%"))

    def __repr__(self) -> str:
        return f"Statement({self.named!r})"


class DriverConnection:
    """A DBAPI connection with the two differences between our drivers smoothed over:
    the parameter style and how a timestamp is bound."""

    def __init__(self, dbapi_connection, engine: Engine, *, owns_transaction: bool, on_disconnect=None,
                 reconnect=None):
        self.raw = dbapi_connection
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self.owns_transaction = owns_transaction
        self._dbapi_error = engine.dialect.loaded_dbapi.Error
        self._cursor = dbapi_connection.cursor()
        self._on_disconnect = on_disconnect
        # PostgreSQL, own connection: () -> a fresh DBAPI connection, for a dead one (see the module).
        self._reconnect = reconnect
        self._idle = None if reconnect is None else engine.dialect.loaded_dbapi.pq.TransactionStatus.IDLE

    def timestamp(self, moment: datetime | None):
        """``moment`` (naive UTC) as this driver binds it."""
        if moment is None or not self.sqlite:
            return moment
        return moment.isoformat(" ", "microseconds")

    def execute(self, statement: Statement, params: dict | None = None):
        """Run ``statement``; returns the cursor (fetch from it before the next execute)."""
        sql = statement.named if self.sqlite else statement.pyformat
        first = self._reconnect is not None and self.raw.info.transaction_status == self._idle
        try:
            return self._cursor.execute(sql, params or {})
        except self._dbapi_error as exc:
            error = self._wrap(exc, statement.named, params)
            if not (first and error.connection_invalidated):
                raise error from exc
        # The transaction's first statement met a dead connection: nothing of the transaction
        # reached the database, so it starts again, once, on a connection checked to be alive.
        log.warning("database connection lost before its transaction began (%s); reconnecting",
                    describe_error(error))
        self.raw = self._reconnect()
        self._cursor = self.raw.cursor()
        try:
            return self._cursor.execute(sql, params or {})
        except self._dbapi_error as exc:
            raise self._wrap(exc, statement.named, params) from exc

    def rows(self, statement: Statement, params: dict | None = None) -> list[tuple]:
        """All rows. Reading to the end also ends SQLite's implicit read transaction."""
        cursor = self.execute(statement, params)
        try:
            return cursor.fetchall()
        except self._dbapi_error as exc:
            raise self._wrap(exc, statement.named, params) from exc

    def first(self, statement: Statement, params: dict | None = None) -> tuple | None:
        rows = self.rows(statement, params)
        return rows[0] if rows else None

    def _wrap(self, exc: Exception, sql: str, params) -> DBAPIError:
        invalidated = self.engine.dialect.is_disconnect(exc, self.raw, self._cursor)
        if invalidated and self._on_disconnect is not None:
            self._on_disconnect(exc)
        # hide_parameters: the phone numbers bound to a statement never reach a log.
        return DBAPIError.instance(sql, params, exc, self._dbapi_error, hide_parameters=True,
                                   connection_invalidated=invalidated, dialect=self.engine.dialect)

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[None]:
        """Commit on success, roll back on any error.

        On SQLite, writers first queue on the machine's write gate, then take the write
        lock up front (``BEGIN IMMEDIATE``) so the reads that decide the write see every
        committed row. On PostgreSQL the transaction is the one already open (psycopg begins
        one with the first statement, the credentials' SELECT on the API's paths).
        """
        if not self.owns_transaction:
            raise RuntimeError("a session's connection: its transaction belongs to the session")
        with writers_queue(self.engine):
            try:
                if self.sqlite:
                    self._cursor.execute("BEGIN IMMEDIATE")
                yield
                self.commit()
            except self._dbapi_error as exc:
                self._rollback_quietly()
                raise self._wrap(exc, "BEGIN/COMMIT", None) from exc
            except BaseException:
                self._rollback_quietly()
                raise

    def commit(self) -> None:
        self.raw.commit()

    def _rollback_quietly(self) -> None:
        try:
            self.raw.rollback()
        except self._dbapi_error:
            pass  # the connection is gone; the pool will find out on its own


def _pooled(engine: Engine, *, ping: bool):
    dbapi_error = engine.dialect.loaded_dbapi.Error
    try:
        return pooled_connection(engine, ping=ping)
    except dbapi_error as exc:  # could not connect: the same exception a Session would raise
        raise DBAPIError.instance(None, None, exc, dbapi_error, dialect=engine.dialect) from exc


@contextlib.contextmanager
def checkout(engine: Engine) -> Iterator[DriverConnection]:
    """A connection of its own from the engine's pool; back to the pool afterwards, where
    whatever it left open is rolled back. Not pinged: see the module's docstring."""
    proxied = _pooled(engine, ping=False)

    def reconnect():
        nonlocal proxied
        proxied.close()  # already invalidated (on_disconnect)
        # Pinged: a dead one makes the pool retire every connection as old (pool_pre_ping's way).
        proxied = _pooled(engine, ping=True)
        return proxied.driver_connection

    connection = DriverConnection(proxied.driver_connection, engine, owns_transaction=True,
                                  on_disconnect=lambda _exc: proxied.invalidate(),
                                  reconnect=None if is_sqlite(engine) else reconnect)
    try:
        yield connection
    finally:
        try:
            connection._cursor.close()
        except connection._dbapi_error:
            pass
        proxied.close()


def of_session(session: Session) -> DriverConnection:
    """The session's own connection, inside the session's transaction."""
    connection = session.connection()
    return DriverConnection(connection.connection.driver_connection, connection.engine, owns_transaction=False,
                            on_disconnect=lambda _exc: connection.invalidate())


def read_timestamp(value) -> datetime | None:
    """A stored timestamp as the driver returns it (SQLite: text) -> naive datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def describe_error(exc: BaseException) -> str:
    """A database error as the log may show it: its kind and primary message only.

    PostgreSQL's DETAIL ("Key (party)=(+9198...) already exists", "Failing row contains
    ...") and the bound parameters would put phone numbers in the log.
    """
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    lines = str(orig).splitlines()
    message = getattr(diag, "message_primary", None) or (lines[0] if lines else "")
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    return f"{type(orig).__name__}{f' {code}' if code else ''}: {message}"
