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
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from masking.clock import utcnow
from masking.db import normalise_database_url
from masking.web.extensions import db

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


def make_account(app, name: str = "integrator", can_write: bool = True) -> dict:
    """A fresh API account: {"userId": ..., "token": ...}."""
    from masking import accounts

    with app.app_context():
        created = accounts.create_account(db.session(), name, utcnow(), can_write=can_write)
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


# ---------------------------------------------------------------- a real server, as `make run` serves it

class LiveServer:
    """gunicorn with gunicorn.conf.py in a subprocess, on a free port, over ``database_url``."""

    def __init__(self, database_url: str, extra_env: dict | None = None):
        import socket
        import subprocess
        import sys
        import time
        from pathlib import Path

        import requests

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "DATABASE_URL": database_url,
               "SECRET_KEY": "live-test-secret", "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING",
               **(extra_env or {})}
        self.log_file = open(os.devnull, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
            cwd=root, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not become healthy within 30 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except Exception:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


@pytest.fixture
def live_server(app, database_url):
    """The app served by gunicorn (as `make run` serves it) over this test's database.

    Depends on ``app`` so tests can seed the same database through app fixtures first.
    """
    server = LiveServer(database_url)
    yield server
    server.stop()


# ---------------------------------------------------------------- the whole stack, as `make run` serves it

class LiveStack:
    """`python -m masking.web.serve` (what `make run` runs): the public server on ``url`` and the
    internal API server on ``internal_url``, over ``database_url``, on free ports."""

    def __init__(self, database_url: str, extra_env: dict | None = None):
        import socket
        import subprocess
        import sys
        import time
        from pathlib import Path

        import requests

        while True:  # two consecutive free ports: PORT and INTERNAL_API_PORT = PORT + 1
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", self.port + 1))
                break
            except OSError:
                continue
        self.url = f"http://127.0.0.1:{self.port}"
        self.internal_url = f"http://127.0.0.1:{self.port + 1}"
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "DATABASE_URL": database_url,
               "SECRET_KEY": "live-stack-secret", "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING",
               **(extra_env or {})}
        env.pop("INTERNAL_API_PORT", None)
        env.pop("MASKING_API_URL", None)
        import tempfile

        # The launcher's output, shown when it fails to start (only then: it is otherwise noise).
        self.log_file = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, "-m", "masking.web.serve"],
                                        cwd=Path(__file__).resolve().parent.parent, env=env,
                                        stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self._log_tail()
                self.log_file.close()
                raise RuntimeError(f"the launcher exited with {self.process.returncode}:\n{tail}")
            try:
                if all(requests.get(u + "/healthz", timeout=1).status_code == 200
                       for u in (self.url, self.internal_url)):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        tail = self._log_tail()
        self.stop()
        raise RuntimeError(f"the launcher's servers did not become healthy within 30 s:\n{tail}")

    def _log_tail(self, lines: int = 40) -> str:
        self.log_file.flush()
        self.log_file.seek(0)
        return "\n".join(self.log_file.read().splitlines()[-lines:])

    def stop(self) -> int | None:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except Exception:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode


@pytest.fixture
def live_stack(app, database_url):
    """Public + internal API servers as `make run` starts them (the dashboard uses its built-in
    API account on the internal server). Seed the database through ``app`` first."""
    stack = LiveStack(database_url)
    yield stack
    stack.stop()
