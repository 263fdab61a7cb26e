"""Where does the time of one Masking/set (and unset) go? In-process, no HTTP server.

    .venv/bin/python bench/profile_set.py                      # SQLite, empty database
    .venv/bin/python bench/profile_set.py --preload 100000     # with 100k active maskings
    .venv/bin/python bench/profile_set.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Calls the app through Flask's test client (the same WSGI stack gunicorn calls, minus
the socket), one request at a time, and reports:

* the mean wall time per request, and how much of it the database driver took
  (per SQL statement: count, mean time, and the query plan on SQLite);
* a cProfile of the requests, by cumulative and by own time.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import api_bench  # noqa: E402
import loadgen  # noqa: E402


class StatementTimer:
    """Time spent running SQL, per statement text: the ORM's statements (cursor.execute, via
    SQLAlchemy's events) and the driver-level ones of set and unset (masking.driver, their
    execute step; COMMIT is counted under "COMMIT")."""

    def __init__(self, engine):
        from sqlalchemy import event

        from masking.driver import DriverConnection

        self.stats = defaultdict(lambda: [0, 0.0])
        self.on = False
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        timer = self
        execute = DriverConnection.execute

        def timed_execute(conn, statement, params=None):
            started = time.perf_counter()
            try:
                return execute(conn, statement, params)
            finally:
                timer._count(statement.named, time.perf_counter() - started)

        DriverConnection.execute = timed_execute
        commit = DriverConnection.commit

        def timed_commit(conn):
            started = time.perf_counter()
            try:
                return commit(conn)
            finally:
                timer._count("COMMIT", time.perf_counter() - started)

        DriverConnection.commit = timed_commit

    def _count(self, statement: str, seconds: float) -> None:
        if self.on:
            entry = self.stats[re.sub(r"\s+", " ", statement).strip()]
            entry[0] += 1
            entry[1] += seconds

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self._count(statement, time.perf_counter() - conn.info.pop("t0", time.perf_counter()))

    def report(self, requests: int) -> float:
        total = sum(t for _, t in self.stats.values())
        for statement, (count, seconds) in sorted(self.stats.items(), key=lambda kv: -kv[1][1]):
            print(f"  {count / requests:4.1f}/req {seconds / count * 1e3:7.3f} ms each "
                  f"{seconds / requests * 1e3:7.3f} ms/req  {statement[:150]}")
        return total


class Sections:
    """Wall time inside chosen functions of the app, without a profiler's overhead."""

    # (module, name): the name is replaced in that module, so callers reaching it through
    # the module's globals (or as module.name) are timed.
    TARGETS = [
        ("masking.web.api", "read_body"),
        ("masking.web.api", "envelope"),
        ("masking.web.api", "log_call"),
        ("masking.web.api", "redact"),
        ("masking.accounts", "authenticate"),
        ("masking.service", "read_set_request"),
        ("masking.service", "read_selector"),
        ("masking.phone", "normalise"),
        ("masking.service", "region_of"),
        ("masking.service", "create_masking"),
        ("masking.service", "run_write"),
        ("masking.service", "_allocate"),
        ("masking.service", "update_maskings"),
        ("masking.service", "_update"),
        ("masking.service", "masking_view"),
    ]

    def __init__(self):
        import importlib

        self.stats = defaultdict(lambda: [0, 0.0])
        for module_name, attr in self.TARGETS:
            module = importlib.import_module(module_name)
            setattr(module, attr, self._wrap(f"{module_name}.{attr}", getattr(module, attr)))
        # the ORM's commits (get, list, the dashboard), wherever they are called from
        from sqlalchemy.orm import Session

        Session.commit = self._wrap("Session.commit", Session.commit)

    def _wrap(self, name, fn):
        import functools

        stats = self.stats

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                entry = stats[name]
                entry[0] += 1
                entry[1] += time.perf_counter() - t0
        return wrapper

    def report(self, requests: int, per_request_s: float) -> None:
        for name, (count, seconds) in sorted(self.stats.items(), key=lambda kv: -kv[1][1]):
            print(f"  {name:<34} {count / requests:4.1f}/req {seconds / requests * 1e3:7.3f} ms/req "
                  f"({seconds / requests / per_request_s * 100:3.0f}%)")


def run(label, client, bodies, path):
    started = time.perf_counter()
    replies = []
    for body in bodies:
        response = client.post(path, data=body, content_type="application/json")
        replies.append(response.get_json())
    elapsed = time.perf_counter() - started
    bad = [r for r in replies if r.get("status") != "success"]
    if bad:
        raise SystemExit(f"{label}: {len(bad)} failures, first {bad[0]}")
    return elapsed, replies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="PostgreSQL server (a masking_bench database is recreated)")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--preload", type=int, default=0)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--no-cprofile", action="store_true")
    parser.add_argument("--sections", action="store_true", help="time chosen app functions (no cProfile)")
    args = parser.parse_args()
    if args.sections:
        args.no_cprofile = True

    workdir = Path(tempfile.mkdtemp(prefix="masking-profile-"))
    pg = None
    try:
        if args.database_url:
            pg = api_bench.PostgresDatabase(args.database_url, "masking_bench", keep=False)
            url = pg.__enter__()
        else:
            url = f"sqlite:///{workdir / 'masking.db'}"
        api_bench.migrate(url)
        creds = api_bench.seed(url, 200)
        if args.preload:
            print(f"preloaded {args.preload} in {api_bench.preload(url, args.preload, creds['userId']):.1f} s")
        app = api_bench.make_app(url)
        from masking.web.extensions import db

        with app.app_context():
            timer = StatementTimer(db.engine)
        client = app.test_client()
        sections = None
        if args.sections:
            sections = Sections()
            # the after_request hook was registered before wrapping: re-point it

            for funcs in app.after_request_funcs.values():
                funcs[:] = [getattr(sys.modules["masking.web.api"], "log_call") if f.__name__ == "log_call" else f
                            for f in funcs]
        warm = [loadgen.set_body(creds, 1, 0, k) for k in range(200)]
        _, replies = run("warm-up set", client, [b for b, _ in warm], api_bench.SET_PATH)
        run("warm-up unset", client, [loadgen.unset_body(creds, r["data"]["mask"], r["data"]["m1"], r["data"]["m2"])
                                      for r in replies], api_bench.UNSET_PATH)

        sets = [loadgen.set_body(creds, 2, 0, k) for k in range(args.requests)]
        for name, path, make_bodies in (
            ("set", api_bench.SET_PATH, lambda: [b for b, _ in sets]),
            ("unset", api_bench.UNSET_PATH, lambda: [loadgen.unset_body(creds, r["data"]["mask"], r["data"]["m1"],
                                                                        r["data"]["m2"]) for r in replies]),
        ):
            bodies = make_bodies()
            timer.stats.clear()
            if sections:
                sections.stats.clear()
            timer.on = True
            elapsed, replies_now = run(name, client, bodies, path)
            timer.on = False
            print(f"\n== {name}: {len(bodies)} requests, {elapsed / len(bodies) * 1e3:.3f} ms each (wall, one at a time)")
            sql = timer.report(len(bodies))
            print(f"  database driver time: {sql / len(bodies) * 1e3:.3f} ms/req "
                  f"({sql / elapsed * 100:.0f}% of the request)")
            if sections:
                print("  -- time inside app functions (nested: create_masking includes _allocate, ...) --")
                sections.report(len(bodies), elapsed / len(bodies))
            if name == "set":
                replies = replies_now
            if not args.no_cprofile:
                more = [loadgen.set_body(creds, 3 if name == "set" else 4, 0, k) for k in range(args.requests)]
                if name == "set":
                    bodies = [b for b, _ in more]
                else:
                    # fresh maskings to unset, made outside the profile
                    _, made = run("set for unset", client, [b for b, _ in more], path.replace("unset", "set"))
                    bodies = [loadgen.unset_body(creds, r["data"]["mask"], r["data"]["m1"], r["data"]["m2"])
                              for r in made]
                profiler = cProfile.Profile()
                profiler.enable()
                run(name, client, bodies, path)
                profiler.disable()
                for order in ("cumulative", "tottime"):
                    stream = io.StringIO()
                    pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(args.top)
                    print(f"\n-- cProfile of {name}, by {order} --")
                    print("\n".join(stream.getvalue().splitlines()[4:]))
        if url.startswith("sqlite"):
            show_plans(app)
        with app.app_context():
            db.engine.dispose()
    finally:
        if pg:
            pg.__exit__(None, None, None)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def show_plans(app):
    """SQLite's query plans for the driver-level statements of set and unset."""
    from masking import service
    from masking.web.extensions import db

    params = {"m1": "+919800000000", "m2": "+919900000000", "low": "+919800000000", "high": "+919900000000",
              "party": "+919800000000", "mask": "+918041100000", "country": "IN", "account_id": 1,
              "now": "2030-01-01 00:00:00.000000"}
    queries = {
        "find the pair": service._FIND_PAIR,
        "take a number (GEO_MATCH=prefer, in country)": service._TAKE_NUMBER_STATEMENTS["prefer", False][0],
        "unset: matching maskings (mask, m1, m2)": service._matching_statement(frozenset({"mask", "m1", "m2"}),
                                                                               False),
        "unset: matching maskings (mask alone)": service._matching_statement(frozenset({"mask"}), False),
    }
    with app.app_context():
        conn = db.engine.raw_connection()
        cursor = conn.cursor()
        print("\n-- SQLite query plans --")
        for name, statement in queries.items():
            print(f"  {name}:")
            for row in cursor.execute("EXPLAIN QUERY PLAN " + statement.named, params):
                print(f"    {row[-1]}")
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
