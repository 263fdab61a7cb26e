"""PostgreSQL: the pool's connections die when the server restarts or kills our backends.

Set and unset take their connection without the pool's ping (masking.driver.checkout) and run
a transaction whose first statement meets a dead connection once more on a fresh one; the
ORM's paths (get, list, login, the dashboard) keep a ping at checkout (masking.db). Each test
kills the app's backends between two calls, as a restart does, and checks that the next call
succeeds and that every successful set stored exactly one masking.
"""
from __future__ import annotations

import contextlib

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from masking import accounts, driver
from masking.models import ActivePair, Masking, Route
from masking.web.extensions import db
from tests.api_helpers import GET, LIST, LOGIN, SET, UNSET, check_invariants, count, err, ok, set_masking
from tests.conftest import PARTIES, POOL, TEST_DATABASE_URL, add_pool

pytestmark = [
    pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL only: TEST_DATABASE_URL is not set"),
    pytest.mark.postgresql,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

_CHECK_ALIVE = driver.Statement("SELECT 1")


def kill_backends(app) -> int:
    """End every backend of the app's database but this one, as a restart would; returns how
    many. pg_terminate_backend waits (up to 5 s) until each is gone, so none is half-dead
    when the next call comes."""
    with app.app_context():
        url = db.engine.url
    admin = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return conn.execute(text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    finally:
        admin.dispose()


def hold_connections(app, n: int) -> None:
    """Leave ``n`` used connections idle in the app's pool (a server that served calls in parallel)."""
    with app.app_context():
        with contextlib.ExitStack() as stack:
            for _ in range(n):
                conn = stack.enter_context(driver.checkout(db.engine))
                assert conn.first(_CHECK_ALIVE) == (1,)
                conn.commit()
        assert db.engine.pool.checkedin() >= n


def stored(app) -> tuple[int, int, int]:
    return count(app, Masking), count(app, Route), count(app, ActivePair)


def test_a_set_after_the_backends_were_killed_succeeds_and_stores_one_masking(app, client, account, pool_of_three,
                                                                              clock, caplog):
    set_masking(client, account, PARTIES[0], PARTIES[1])
    assert kill_backends(app) >= 1
    second = set_masking(client, account, PARTIES[2], PARTIES[3])
    assert "connection lost before its transaction began" in caplog.text  # retried, not pinged
    assert stored(app) == (2, 4, 2)
    assert kill_backends(app) >= 1
    ended = ok(client, UNSET, {**account, "mask": second["mask"], "m1": PARTIES[2], "expiry_duration": -1})
    assert ended["count"] == 1
    check_invariants(app, clock())


def test_every_dead_connection_in_the_pool_is_replaced(app, client, account, pool_of_three):
    """Three dead connections in the pool: the first set's retry finds a second one dead at its
    ping, which retires all three; no set fails."""
    hold_connections(app, 3)
    assert kill_backends(app) >= 3
    for k in range(4):
        set_masking(client, account, PARTIES[2 * k], PARTIES[2 * k + 1])
    assert stored(app) == (4, 8, 4)


def lose_connection_after_credentials(app, monkeypatch) -> None:
    """Kill the backends once the next call has read its credentials: its transaction is open."""
    authenticate = accounts.authenticate

    def authenticate_then_lose_the_connection(*args, **kwargs):
        monkeypatch.setattr(accounts, "authenticate", authenticate)  # once
        principal = authenticate(*args, **kwargs)
        assert kill_backends(app) >= 1
        return principal

    monkeypatch.setattr(accounts, "authenticate", authenticate_then_lose_the_connection)


def test_a_set_losing_its_connection_inside_the_transaction_is_not_retried(app, client, account, pool_of_three,
                                                                          monkeypatch):
    """The set may not start again: it fails with 1010 (the database went away; it refused
    nothing, which would be 1504), and nothing of it is stored. The next set succeeds."""
    lose_connection_after_credentials(app, monkeypatch)
    err(client, SET, {**account, "m1": PARTIES[0], "m2": PARTIES[1]}, 1010)
    assert stored(app) == (0, 0, 0)
    set_masking(client, account, PARTIES[0], PARTIES[1])
    assert stored(app) == (1, 2, 1)


def test_an_unset_losing_its_connection_inside_the_transaction_is_not_retried(app, client, account, pool_of_three,
                                                                             monkeypatch):
    made = set_masking(client, account, PARTIES[0], PARTIES[1])
    unset = {**account, "mask": made["mask"], "m1": PARTIES[0], "expiry_duration": -1}
    lose_connection_after_credentials(app, monkeypatch)
    err(client, UNSET, unset, 1010)
    assert ok(client, GET, {**account, "id": made["id"]})["status"] == "active"  # the lost call ended nothing
    assert ok(client, UNSET, unset)["count"] == 1


def test_a_database_still_down_at_the_retry_is_1010(app, client, account, pool_of_three, monkeypatch, caplog):
    set_masking(client, account, PARTIES[0], PARTIES[1])
    pooled_connection = driver.pooled_connection

    def cannot_reconnect(engine, *, ping=True):
        if ping:  # the retry's checkout; the first one takes the dead connection from the pool
            raise psycopg.OperationalError("connection refused (the server is still starting)")
        return pooled_connection(engine, ping=ping)

    assert kill_backends(app) >= 1
    monkeypatch.setattr(driver, "pooled_connection", cannot_reconnect)
    err(client, SET, {**account, "m1": PARTIES[2], "m2": PARTIES[3]}, 1010)
    assert "reconnecting" in caplog.text
    assert stored(app) == (1, 2, 1)


def test_the_orm_calls_after_the_backends_were_killed_succeed(app, client, account, pool_of_three):
    """Get, list and login run on the ORM's session, which keeps the ping at checkout."""
    first = set_masking(client, account, PARTIES[0], PARTIES[1])
    assert kill_backends(app) >= 1
    assert ok(client, GET, {**account, "id": first["id"]})["id"] == first["id"]
    assert kill_backends(app) >= 1
    assert [m["id"] for m in ok(client, LIST, dict(account))["maskings"]] == [first["id"]]
    assert kill_backends(app) >= 1
    assert ok(client, LOGIN, dict(account))["ssid"]


def test_only_the_drivers_checkout_skips_the_ping(app, monkeypatch):
    pings = []
    with app.app_context():
        dialect = db.engine.dialect
        do_ping = dialect.do_ping
        monkeypatch.setattr(dialect, "do_ping", lambda dbapi_connection: pings.append(1) or do_ping(dbapi_connection))
        with driver.checkout(db.engine) as conn:
            conn.first(_CHECK_ALIVE)
        assert pings == []
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        assert pings == [1]


def test_a_set_on_a_pool_number_added_after_a_restart(app, client, account):
    """The dashboard's writes (here the pool, through the ORM) and the API's share the pool of
    connections: both work on after the backends are killed."""
    hold_connections(app, 2)
    assert kill_backends(app) >= 2
    add_pool(app, POOL[0])
    assert set_masking(client, account, PARTIES[0], PARTIES[1])["mask"] == POOL[0]
    assert stored(app) == (1, 2, 1)
