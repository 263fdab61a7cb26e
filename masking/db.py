"""Engine set-up shared by the app, the CLI, the tests and the benchmarks.

SQLite is the embedded default, PostgreSQL the scale-out store. Both hold the masking
invariants through unique indexes; SQLite additionally serialises every allocation with
``BEGIN IMMEDIATE`` because its driver would otherwise delay the write lock until the
first INSERT, after our reads (see SQLAlchemy's pysqlite notes on transactions).
"""
from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import threading

from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, Session

# Constraint names are fixed so Alembic migrations and error mapping can rely on them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option read by the "begin" hook below: the transaction's SQLite BEGIN mode.
SQLITE_BEGIN = "sqlite_begin"
# Read by the PostgreSQL "checkout" hook below: False while masking.driver checks out a connection
# whose first statement it retries on a dead connection, so the ping would only cost a round trip.
_PING_AT_CHECKOUT = contextvars.ContextVar("masking_ping_at_checkout", default=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def normalise_database_url(url: str) -> str:
    """Accept the URL forms operators paste and pick our drivers.

    ``postgres://`` and ``postgresql://`` (libpq style) both mean psycopg 3 here.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def is_sqlite(url_or_engine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else make_url(str(url_or_engine))
    return url.get_backend_name() == "sqlite"


def engine_options(url: str) -> dict:
    """Keyword arguments for ``create_engine`` suited to the backend.

    No ``pool_pre_ping`` on PostgreSQL: ``configure_engine`` pings at checkout itself, so that
    the API's busy calls (``masking.driver.checkout``) can skip it.
    """
    if is_sqlite(url):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    return {"pool_size": 10, "max_overflow": 20, "pool_recycle": 1800}


def configure_engine(engine: Engine) -> None:
    """Install the SQLite pragmas and BEGIN handling, or PostgreSQL's ping at checkout. Idempotent."""
    if getattr(engine, "_masking_configured", False):
        return
    engine._masking_configured = True
    if not is_sqlite(engine):
        _ping_at_checkout(engine)
        return
    if engine.url.database and engine.url.database != ":memory:":
        engine._masking_write_gate = SqliteWriteGate(engine.url.database)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let us issue BEGIN ourselves (the driver's implicit BEGIN is deferred and late).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database and engine.url.database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _ping_at_checkout(engine: Engine) -> None:
    """What ``pool_pre_ping`` does, for every checkout but ``pooled_connection(ping=False)``'s:
    after a restart, or once our backends were killed, the pooled connections are dead, and
    the ORM's pages and calls would fail on them."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, _record, _proxy):
        if not _PING_AT_CHECKOUT.get():
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            # The pool reconnects, and retires the connections as old as this one: a restart
            # killed them all.
            raise InvalidatePoolError(f"dead connection at checkout: {type(exc).__name__}") from exc


def pooled_connection(engine: Engine, *, ping: bool = True):
    """A connection from the engine's pool (``engine.raw_connection()``). ``ping=False`` skips
    the check that it is alive on PostgreSQL: for callers that cope with a dead one."""
    token = _PING_AT_CHECKOUT.set(ping)
    try:
        return engine.raw_connection()
    finally:
        _PING_AT_CHECKOUT.reset(token)


class SqliteWriteGate:
    """Queues one machine's writers to a SQLite file in the kernel.

    SQLite's own wait for the write lock (busy_timeout) sleeps and retries, up to 100 ms
    between tries, so under load writers mostly sleep while the lock is free and the tail
    latency explodes. Taking an ``flock`` on a file beside the database first makes every
    writer of every process on this machine wait in line and wake the moment the lock is
    released. It is only a queue: the invariants stay with the database (BEGIN IMMEDIATE
    and the unique indexes), which still guard writers that don't pass here (the CLI).
    """

    def __init__(self, database_path: str):
        self.path = database_path + "-writegate"
        self._thread_lock = threading.Lock()  # flock is per process; threads queue here first
        self._fd = None
        self._pid = None

    def _descriptor(self) -> int:
        if self._pid != os.getpid():  # a forked worker opens its own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextlib.contextmanager
    def held(self):
        with self._thread_lock:
            try:
                fd = self._descriptor()
            except OSError:
                # No gate beside an unreachable database: the database itself will say what is wrong.
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


def sqlite_write_gate(engine: Engine) -> SqliteWriteGate | None:
    """The write gate of a SQLite file database (None on PostgreSQL and in memory)."""
    return getattr(engine, "_masking_write_gate", None)


def writers_queue(engine: Engine):
    """``with writers_queue(engine): ...``: in line behind this machine's other writers of a
    SQLite file (its write gate); nothing to wait for on PostgreSQL or in memory."""
    gate = sqlite_write_gate(engine)
    return gate.held() if gate is not None else contextlib.nullcontext()


@contextlib.contextmanager
def write_transaction(session: Session):
    """``with write_transaction(session): ...`` commits on success, rolls back on any error.

    The transaction takes SQLite's write lock up front (BEGIN IMMEDIATE), so the reads that
    decide the write happen under it. On PostgreSQL it is a plain BEGIN; there the unique
    indexes and row locks keep concurrent writers honest.
    """
    if session.in_transaction():
        session.commit()  # end the read transaction before queueing for the write lock
    with writers_queue(session.get_bind()):
        session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
        try:
            yield
            session.commit()
        except BaseException:
            session.rollback()
            raise
