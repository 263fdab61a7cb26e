"""Fixtures shared by the whole suite.

Every test that takes ``app`` (or anything built on it) runs on SQLite, and again on
PostgreSQL when TEST_DATABASE_URL is set (CI sets it; there it must never be skipped).
Each test gets an empty, migrated database: SQLite copies a migrated template file;
PostgreSQL migrates one database per test worker once and truncates it between tests.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from masking.clock import utcnow
from masking.db import normalise_database_url
from masking.web.extensions import db

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])

if os.environ.get("CI") == "true" and not TEST_DATABASE_URL:
    raise pytest.UsageError("CI must set TEST_DATABASE_URL: the PostgreSQL tests may not be skipped")


class FrozenClock:
    """A clock tests move by hand: ``clock.advance(seconds=61)``."""

    def __init__(self, start: datetime | None = None):
        self.current = start or utcnow()

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta) -> datetime:
        self.current += timedelta(**delta)
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment


def _migrate(url: str) -> None:
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrate(f"sqlite:///{path}")
    return str(path)


def _worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@contextlib.contextmanager
def migrated_postgresql_database(purpose: str):
    """A fresh, migrated database on TEST_DATABASE_URL's server, dropped afterwards.

    Its name carries the pid and the xdist worker, so two pytest runs on one server (a
    developer's and CI's) and the workers of one run stay out of each other's way.
    """
    admin_url = make_url(normalise_database_url(TEST_DATABASE_URL))
    name = f"masking_{purpose}_{os.getpid()}_{_worker_suffix()}"

    def run(statement: str) -> None:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(statement))
        engine.dispose()

    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run(f'CREATE DATABASE "{name}"')
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    _migrate(url)
    try:
        yield url
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgresql_database():
    """A migrated database of this test worker's own, truncated between tests."""
    with migrated_postgresql_database("test") as url:
        yield url


def _truncate_postgresql(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = [row[0] for row in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))]
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    """An empty, migrated database for one test."""
    if request.param == "sqlite":
        path = tmp_path / "masking.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgresql_database")
    _truncate_postgresql(url)
    return url


@pytest.fixture
def sqlite_file_app(sqlite_template, tmp_path):
    """An app on a migrated SQLite file of its own, for the tests about SQLite itself (its
    query plans, its write lock): no PostgreSQL twin."""
    path = tmp_path / "sqlite-only.db"
    shutil.copyfile(sqlite_template, path)
    application = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "sqlite-only"})
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def app(database_url, clock, tmp_path):
    application = create_app({
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret",
        "CLOCK": clock,
        "COOLOFF_SECONDS": 300,
    })
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def make_account(app, name: str = "integrator", can_write: bool = True, reads_for: dict | None = None) -> dict:
    """A fresh API account: {"userId": ..., "token": ...}. ``reads_for``: the account (as returned
    here) whose maskings a read-only account reads."""
    from masking import accounts

    with app.app_context():
        owner = accounts.find_account(db.session(), reads_for["userId"]) if reads_for else None
        created = accounts.create_account(db.session(), name, utcnow(), can_write=can_write, reads_for=owner)
        db.session.commit()
        return {"userId": created.account.user_id, "token": created.token}


def add_pool(app, *numbers: str) -> None:
    from masking import pool

    with app.app_context():
        report = pool.add_numbers(db.session(), numbers, utcnow(), "IN")
        db.session.commit()
        assert not report.rejected, report.rejected


# A few valid Indian numbers for tests: mobiles for parties, Bengaluru landlines for the pool.
PARTIES = [f"+9198765432{i:02d}" for i in range(100)]
POOL = [f"+9180412345{i:02d}" for i in range(100)]


@pytest.fixture
def account(app) -> dict:
    return make_account(app)


@pytest.fixture
def pool_of_three(app) -> list[str]:
    add_pool(app, *POOL[:3])
    return POOL[:3]


# ---------------------------------------------------------------- real servers, as `make run` serves them

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (and is closed now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _free_port_pair() -> int:
    """A port whose next one is free too (PORT and INTERNAL_API_PORT = PORT + 1)."""
    while True:
        port = free_port()
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


class _Launched:
    """A server command in a subprocess over ``database_url``, waited for until every one of its
    ``/healthz`` answers 200; its output is kept and shown only when it fails to start."""

    def __init__(self, command: list[str], port: int, health_urls: list[str], database_url: str, secret: str,
                 extra_env: dict | None = None):
        self.port = port
        self.url = health_urls[0]
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": database_url,
               "SECRET_KEY": secret, "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING", **(extra_env or {})}
        for inherited in ("INTERNAL_API_PORT", "MASKING_API_URL"):  # derived from PORT unless a test sets them
            if inherited not in (extra_env or {}):
                env.pop(inherited, None)
        self.log_file = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env,
                                        stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self._log_tail()
                self.log_file.close()
                raise RuntimeError(f"{command} exited with {self.process.returncode}:\n{tail}")
            try:
                if all(requests.get(url + "/healthz", timeout=1).status_code == 200 for url in health_urls):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        tail = self._log_tail()
        self.stop()
        raise RuntimeError(f"{command} did not become healthy within 30 s:\n{tail}")

    def _log_tail(self, lines: int = 40) -> str:
        self.log_file.flush()
        self.log_file.seek(0)
        return "\n".join(self.log_file.read().splitlines()[-lines:])

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode


class LiveServer(_Launched):
    """gunicorn with gunicorn.conf.py (the public server of `make run`) on a free port."""

    def __init__(self, database_url: str, extra_env: dict | None = None):
        port = free_port()
        super().__init__(["-m", "gunicorn", "--config", "gunicorn.conf.py"], port, [f"http://127.0.0.1:{port}"],
                         database_url, "live-test-secret", extra_env)


@pytest.fixture
def live_server(app, database_url):
    """The app served by gunicorn (as `make run` serves it) over this test's database.

    Depends on ``app`` so tests can seed the same database through app fixtures first.
    """
    server = LiveServer(database_url)
    yield server
    server.stop()


class LiveStack(_Launched):
    """`python -m masking.web.serve` (what `make run` runs): the public server on ``url`` and the
    internal API server on ``internal_url``, on free ports."""

    SECRET = "live-stack-secret"  # the servers' SECRET_KEY (browser tests forge a session with it)

    def __init__(self, database_url: str, extra_env: dict | None = None):
        port = _free_port_pair()
        self.internal_url = f"http://127.0.0.1:{port + 1}"
        super().__init__(["-m", "masking.web.serve"], port, [f"http://127.0.0.1:{port}", self.internal_url],
                         database_url, self.SECRET, extra_env)
