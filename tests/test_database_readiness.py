"""A database that is down, never migrated, or behind the code (masking/readiness.py).

/healthz says 503 with what to run; dashboard pages answer a 503 page instead of a 500; the API
answers 1010; the operator commands and `flask db upgrade` end with one line, never a traceback.
Each on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app import create_app
from masking import readiness
from masking.db import normalise_database_url
from masking.web.extensions import db
from tests.conftest import BACKENDS, PARTIES, ROOT, TEST_DATABASE_URL, _worker_suffix

MIGRATIONS = ROOT / "migrations"
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"  # nothing listens on port 1
NOT_MIGRATED_LINE = ("Error: the database {url} is not migrated to this version ({what}): run "
                     "`.venv/bin/flask --app app db upgrade` (make run does it)\n")
MISSING_USERS = {"sqlite": "OperationalError SQLITE_ERROR: no such table: users",
                 "postgresql": 'UndefinedTable 42P01: relation "users" does not exist'}


@pytest.fixture(params=BACKENDS)
def empty_database_url(request, tmp_path):
    """A database that answers but holds no table: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin_url = make_url(normalise_database_url(TEST_DATABASE_URL))
    name = f"masking_empty_{os.getpid()}_{_worker_suffix()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@pytest.fixture
def empty_app(empty_database_url):
    application = create_app({"TESTING": True, "DATABASE_URL": empty_database_url, "SECRET_KEY": "readiness"})
    yield application
    with application.app_context():
        db.engine.dispose()


def stamp(app, revision: str) -> None:
    with app.app_context():
        db.session.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
        db.session.commit()


# ---------------------------------------------------------------- the rules

def test_the_revisions_are_read_from_the_migrations_folder():
    versions = readiness.SchemaVersions(MIGRATIONS)
    files = sorted(path.stem for path in (MIGRATIONS / "versions").glob("*.py"))
    assert len(versions.known) == len(files) >= 3
    (head,) = versions.heads
    assert head in versions.known
    older = versions.known - versions.heads
    assert versions.problem({head}) is None
    assert versions.problem(None) == versions.problem(set()) == readiness.NOT_MIGRATED
    for revision in older:
        assert versions.problem({revision}) == readiness.BEHIND
    # A revision this code does not know comes from a newer release that migrated first.
    assert versions.problem({"f00dfeed9999"}) is None


# ---------------------------------------------------------------- /healthz

def test_the_migrations_build_exactly_the_models_schema(app):
    """What `db upgrade` builds and what masking/models.py declares agree, column types and indexes
    included: a model change without its migration (or the reverse) fails here, on each backend."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from masking.db import Base

    with app.app_context(), db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert differences == []


def test_healthz_is_503_on_a_database_never_migrated(empty_app):
    reply = empty_app.test_client().get("/healthz")
    assert reply.status_code == 503
    assert reply.get_json() == {"status": "error", "message": "database not migrated", "detail": readiness.NOT_MIGRATED}


def test_healthz_follows_the_stamped_revision(app):
    client = app.test_client()
    versions = readiness.SchemaVersions(MIGRATIONS)
    (head,) = versions.heads
    try:
        stamp(app, sorted(versions.known - versions.heads)[0])
        reply = client.get("/healthz")
        assert reply.status_code == 503
        assert reply.get_json() == {"status": "error", "message": "database not migrated", "detail": readiness.BEHIND}
        stamp(app, "f00dfeed9999")  # a newer release's revision: ready
        assert client.get("/healthz").status_code == 200
    finally:
        stamp(app, head)
    assert client.get("/healthz").get_json() == {"status": "ok"}


# ---------------------------------------------------------------- dashboard and API

def test_a_dashboard_page_on_a_database_never_migrated_is_a_503_page(empty_app, caplog):
    caplog.set_level(logging.ERROR, logger="masking.dashboard")
    reply = empty_app.test_client().get("/login")
    assert reply.status_code == 503
    page = reply.get_data(as_text=True)
    assert "<h1>The database is not available</h1>" in page
    assert "Try again in a minute" in page and "Log out" not in page
    (line,) = [r.getMessage() for r in caplog.records if r.name == "masking.dashboard"]
    assert line.startswith("page /login not served: the database is not migrated to this version (")
    assert MISSING_USERS[backend_of(str(empty_app.config["SQLALCHEMY_DATABASE_URI"]))] in line


def test_a_dashboard_page_on_an_unreachable_database_is_a_503_page():
    application = create_app({"TESTING": True, "DATABASE_URL": UNREACHABLE, "SECRET_KEY": "readiness"})
    reply = application.test_client().get("/login")
    assert reply.status_code == 503
    assert "<h1>The database is not available</h1>" in reply.get_data(as_text=True)


def test_an_api_call_on_a_database_never_migrated_is_1010(empty_app, caplog):
    caplog.set_level(logging.ERROR, logger="masking.api")
    reply = empty_app.test_client().post("/api/v2/Masking/set",
                                         json={"userId": "u1", "token": "t1", "m1": PARTIES[0], "m2": PARTIES[1]})
    assert reply.status_code == 503
    assert reply.get_json()["code"] == 1010
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "masking.api"]
    assert "database unavailable on masking/set: the database is not migrated to this version" in line


# ---------------------------------------------------------------- operator commands

@pytest.mark.parametrize("command, table", [
    (["pool", "list"], "pool_numbers"),
    (["pool", "add", "+918041234500"], "pool_numbers"),
    (["api-user", "list"], "api_accounts"),
    (["api-user", "create", "crm"], "api_accounts"),
    (["users", "list"], "users"),
    (["sweep"], "routes"),
])
def test_an_operator_command_on_a_database_never_migrated_says_so_in_one_line(empty_app, command, table):
    result = empty_app.test_cli_runner().invoke(args=command)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    url = empty_app.config["SQLALCHEMY_DATABASE_URI"]
    what = MISSING_USERS[backend_of(url)].replace("users", table)
    assert result.stderr == NOT_MIGRATED_LINE.format(url=url, what=what)


def test_an_operator_command_on_an_unreachable_database_says_so_in_one_line():
    application = create_app({"TESTING": True, "DATABASE_URL": UNREACHABLE, "SECRET_KEY": "readiness"})
    result = application.test_cli_runner().invoke(args=["pool", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot use the database postgresql+psycopg://postgres@127.0.0.1:1/x "
                                    "(OperationalError: connection failed: ")
    assert result.stderr.endswith("Connection refused): check DATABASE_URL and that the database is up\n")
    assert result.stderr.count("\n") == 1


def test_db_upgrade_on_an_unreachable_database_says_so_in_one_line(tmp_path):
    env = {**os.environ, "DATABASE_URL": UNREACHABLE.replace("postgres@", "postgres:hunter2@"), "SECRET_KEY": "readiness"}
    result = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "app", "db", "upgrade"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "Error: cannot use the database postgresql+psycopg://postgres:***@127.0.0.1:1/x (OperationalError: ")
    assert "hunter2" not in result.stderr


def test_the_launcher_says_why_it_could_not_look_for_users(empty_app, capsys):
    from masking.web import serve

    serve._first_run_hint(empty_app, "http://127.0.0.1:5000/")
    url = empty_app.config["SQLALCHEMY_DATABASE_URI"]
    what = MISSING_USERS[backend_of(url)]
    assert capsys.readouterr().err == f"serve: could not check for users: {NOT_MIGRATED_LINE.format(url=url, what=what)[7:]}"


def test_a_sqlite_database_kept_locked_is_busy_not_down(tmp_path):
    """SQLite gives up after its busy timeout; that is not a database to check the URL of."""
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        waiter = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError) as caught:
            waiter.execute("BEGIN IMMEDIATE")
        wrapped = OperationalError("BEGIN IMMEDIATE", {}, caught.value)
        assert readiness.problem_of(wrapped, f"sqlite:///{path}") == (
            f"the database sqlite:///{path} is busy: another process kept its write lock too long; try again")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
