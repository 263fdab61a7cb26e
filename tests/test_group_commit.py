"""Group commit on SQLite: queued writers share a transaction, and each gets its own answer.

The jobs here write real rows through real connections of the app's engine; a job's
failure must undo that job's writes only, and a failed COMMIT must fail every job of it.
"""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from masking import driver
from masking.errors import MaskingError, NO_NUMBER
from masking.group_commit import GroupCommit, run_write
from masking.web.extensions import db

INSERT = driver.Statement("INSERT INTO pool_numbers (number, country, status, last_allocated_at, allocation_count, "
                          "created_at) VALUES (:number, 'IN', 'active', '1970-01-01 00:00:00.000000', 0, "
                          "'2026-01-01 00:00:00.000000')")


@pytest.fixture
def engine(sqlite_file_app):
    with sqlite_file_app.app_context():
        yield db.engine


def stored(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(text("SELECT number FROM pool_numbers")).scalars())


def insert(number: str, then=None):
    def job(conn):
        conn.execute(INSERT, {"number": number})
        if then:
            then()
        return number
    return job


def run_batched(engine, group: GroupCommit, jobs: dict) -> dict:
    """Run ``jobs`` (name -> job) from one thread each, queued in this order behind a first
    job that holds the write lock until they all are, so they run as one batch. Returns
    name -> result or the exception raised in that thread."""
    release = threading.Event()
    outcomes = {}

    def call(name, job):
        with driver.checkout(engine) as conn:
            try:
                outcomes[name] = group.run(conn, job)
            except Exception as exc:  # the test inspects whatever came back
                outcomes[name] = exc

    blocker = threading.Thread(target=call, args=("blocker", insert("+918041109999", then=release.wait)))
    blocker.start()
    deadline = time.monotonic() + 10  # the blocker holds the leader's lock by then
    while group.transactions == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    threads = []
    for queued, item in enumerate(jobs.items(), start=1):  # one at a time: the queue keeps this order
        threads.append(threading.Thread(target=call, args=item))
        threads[-1].start()
        deadline = time.monotonic() + 10
        while len(group._queue) < queued and time.monotonic() < deadline:
            time.sleep(0.001)
    release.set()
    for thread in [blocker, *threads]:
        thread.join(10)
    assert outcomes.pop("blocker") == "+918041109999"
    return outcomes


def test_queued_writers_share_one_transaction(engine):
    group = GroupCommit()
    numbers = [f"+9180411000{i:02d}" for i in range(6)]
    outcomes = run_batched(engine, group, {n: insert(n) for n in numbers})
    assert outcomes == {n: n for n in numbers}
    assert group.jobs == 7 and group.transactions == 2  # the blocker's, then all six together
    assert stored(engine) == sorted(numbers + ["+918041109999"])


def test_a_failing_job_undoes_only_its_own_writes(engine):
    group = GroupCommit()

    def refuse():
        raise MaskingError(NO_NUMBER, "no number for this one")

    outcomes = run_batched(engine, group, {
        "first": insert("+918041100001"),
        "refused": insert("+918041100002", then=refuse),
        "duplicate": insert("+918041100001"),  # the unique index refuses it: this job only
        "last": insert("+918041100003"),
    })
    assert outcomes["first"] == "+918041100001" and outcomes["last"] == "+918041100003"
    assert isinstance(outcomes["refused"], MaskingError) and outcomes["refused"].code == NO_NUMBER
    assert isinstance(outcomes["duplicate"], IntegrityError)
    assert group.transactions == 2
    assert stored(engine) == ["+918041100001", "+918041100003", "+918041109999"]


def test_a_failed_commit_fails_every_job_of_the_batch(engine):
    """Foreign keys checked at COMMIT (deferred) make the COMMIT itself fail."""
    group = GroupCommit()
    orphan = driver.Statement("INSERT INTO routes (mask_number, party, other_party, masking_id, route_until, "
                              "hold_until) VALUES ('+918041100000', '+919800000001', '+919800000002', 999999, "
                              "'2030-01-01 00:00:00.000000', '2030-01-01 00:00:00.000000')")

    def orphan_route(conn):
        conn.execute(driver.Statement("PRAGMA defer_foreign_keys = ON"))
        conn.execute(orphan)
        return "orphan"

    outcomes = run_batched(engine, group, {"good": insert("+918041100001"), "orphan": orphan_route})
    assert isinstance(outcomes["good"], IntegrityError) and isinstance(outcomes["orphan"], IntegrityError)
    assert stored(engine) == ["+918041109999"]


def test_a_lone_job_runs_without_savepoints_and_its_failure_rolls_back(engine):
    group = GroupCommit()

    def half_then_fail(conn):
        conn.execute(INSERT, {"number": "+918041100001"})
        raise MaskingError(NO_NUMBER, "refused after a write")

    with driver.checkout(engine) as conn:
        assert group.run(conn, insert("+918041100002")) == "+918041100002"
        with pytest.raises(MaskingError):
            group.run(conn, half_then_fail)
    assert stored(engine) == ["+918041100002"]
    assert group.transactions == 2


def test_run_write_keeps_one_group_per_engine(engine):
    with driver.checkout(engine) as conn:
        run_write(conn, insert("+918041100001"))
        run_write(conn, insert("+918041100002"))
    assert engine._masking_group_commit.jobs == 2


def test_an_unreachable_database_fails_the_job_cleanly(tmp_path):
    from sqlalchemy import create_engine

    from masking.db import configure_engine

    engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")
    configure_engine(engine)
    with pytest.raises(OperationalError):
        with driver.checkout(engine) as conn:
            run_write(conn, insert("+918041100001"))
