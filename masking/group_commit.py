"""Group commit: the writers of one process share SQLite transactions.

SQLite has one writer at a time, and its COMMIT costs more than all the statements of an
allocation: it appends every page the transaction dirtied (about twenty) to the WAL. Under
load, writers queue for the write lock anyway. Here the thread that gets it runs the jobs
of the threads queued behind it (up to ``MAX_BATCH``) in the same transaction, each job
inside its own SAVEPOINT when there are several, so that a job's failure undoes only that
job's writes, then commits once; each thread gets back its own result or exception.

Only throughput changes. Each job still runs under ``BEGIN IMMEDIATE``, sees every
committed row and the writes of the jobs before it, and the unique indexes still refuse
whatever would break an invariant. The locks here only queue work; they guard nothing.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

from .db import sqlite_write_gate
from .driver import DriverConnection, Statement

T = TypeVar("T")

# Enough to drain the queue of a busy worker; a bound keeps one transaction short.
MAX_BATCH = 32


class _Ticket:
    __slots__ = ("job", "done", "result", "error")

    def __init__(self, job: Callable[[DriverConnection], T]):
        self.job = job
        self.done = False
        self.result = None
        self.error: BaseException | None = None

    def finish(self, result=None, error: BaseException | None = None) -> None:
        self.result, self.error, self.done = result, error, True


class GroupCommit:
    """One per SQLite engine and process; see the module's docstring."""

    def __init__(self, max_batch: int = MAX_BATCH):
        self.max_batch = max_batch
        self._leader = threading.Lock()  # held by the thread running a batch
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self.transactions = 0  # for tests: jobs per transaction = jobs / this
        self.jobs = 0

    def run(self, conn: DriverConnection, job: Callable[[DriverConnection], T]) -> T:
        """Run ``job(connection)`` in a committed write transaction, perhaps with others' jobs."""
        ticket = _Ticket(job)
        with self._queue_lock:
            self._queue.append(ticket)
        with self._leader:
            # Whoever held the lock before us may have run our job already. Our ticket stays
            # queued until a batch run under this lock takes it, so a batch is never empty.
            while not ticket.done:
                self._run_batch(conn)
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def _run_batch(self, conn: DriverConnection) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
        self.transactions += 1
        self.jobs += len(batch)
        try:
            with conn.write_transaction():
                if len(batch) == 1:
                    ticket = batch[0]
                    ticket.finish(result=ticket.job(conn))  # an error rolls the transaction back
                else:
                    for ticket in batch:
                        self._run_in_savepoint(conn, ticket)
        except BaseException as exc:
            # The transaction is rolled back: whatever the jobs wrote is gone, so none succeeded.
            for ticket in batch:
                if ticket.error is None:
                    ticket.finish(error=exc)
            if not isinstance(exc, Exception):
                raise

    @staticmethod
    def _run_in_savepoint(conn: DriverConnection, ticket: _Ticket) -> None:
        conn.execute(_SAVEPOINT)
        try:
            result = ticket.job(conn)
        except Exception as exc:
            # Undo this job's writes only. If even that fails the transaction is broken:
            # that error propagates and the whole batch is rolled back.
            conn.execute(_ROLLBACK_TO_SAVEPOINT)
            conn.execute(_RELEASE_SAVEPOINT)
            ticket.finish(error=exc)
            return
        conn.execute(_RELEASE_SAVEPOINT)
        ticket.finish(result=result)


_SAVEPOINT = Statement("SAVEPOINT job")
_ROLLBACK_TO_SAVEPOINT = Statement("ROLLBACK TO job")
_RELEASE_SAVEPOINT = Statement("RELEASE job")
_groups_lock = threading.Lock()


def run_write(conn: DriverConnection, job: Callable[[DriverConnection], T]) -> T:
    """``job(conn)`` in a committed write transaction: on a SQLite file, through the
    process's group commit; elsewhere in a transaction of its own."""
    engine = conn.engine
    if sqlite_write_gate(engine) is None:  # PostgreSQL (or in-memory) writers run side by side
        with conn.write_transaction():
            return job(conn)
    group = getattr(engine, "_masking_group_commit", None)
    if group is None:
        with _groups_lock:
            group = getattr(engine, "_masking_group_commit", None)
            if group is None:
                group = engine._masking_group_commit = GroupCommit()
    return group.run(conn, job)
