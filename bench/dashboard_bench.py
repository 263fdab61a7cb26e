"""Benchmark of the dashboard's pages, served as `make run` serves them.

    .venv/bin/python bench/dashboard_bench.py                 # SQLite, a million attempts
    .venv/bin/python bench/dashboard_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

* A fresh database (SQLite in a temporary folder; on PostgreSQL its own database,
  ``masking_bench_dash``, dropped at the end), migrated with `flask --app app db upgrade`, seeded
  with users of each role (argon2 hashes through ``masking.users``), a pool of 200 numbers and
  ``--attempts`` (1,000,000) rows of ``mask_attempts`` bulk-inserted with SQLAlchemy Core:
  90 days of office hours (09:00-21:00 local), fewer on Sundays, agents of unequal
  busyness, 78 % sets / 14 % ends / 8 % extends, about 9 % failures with realistic codes,
  a quarter of the successful sets ended early, and a few dozen live masks of the
  measured agent. PostgreSQL is ANALYZEd afterwards (what autovacuum would do);
  SQLite is left as production leaves it.
* The app is served by gunicorn with gunicorn.conf.py (the public server of
  `python -m masking.web.serve`, what `make run` runs); the pages measured here do not
  call the masking service.
* One client on a keep-alive connection logs in through the login form (CSRF token and
  session cookie, as a browser does) and requests each page ``--requests`` times after a
  warm-up, one at a time: the latency is the server's time plus a loopback round trip.
  Pages: /healthz (the yardstick), the agent page (as the agent with live masks), the
  overview, the history page filtered (as a supervisor; when masking/web/supervisor.py
  provides it) and the CSV export of ``--export-rows`` (100,000) rows, read to the end.

Prints p50/p99 per page with PASS/FAIL against the issue's targets (pages: p50 under
100 ms; export: at least 20,000 rows/s) and the ratio to /healthz. Exits 0 whatever
the figures; 1 when something broke (a server that does not start, an error reply).
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from api_bench import PostgresDatabase, Server, log, machine, make_app, migrate, pool_numbers  # noqa: E402

TARGET_PAGE_P50_MS = 100.0
TARGET_EXPORT_ROWS_PER_S = 20_000
PASSWORD = "bench-password-123"
AGENT = "agent01"
SUPERVISOR = "supervisor1"
DAYS = 90
ERROR_CODES_SET = [(1503, 40), (1505, 20), (1000, 20), (1501, 10), (1014, 5), (1009, 5)]


# ---------------------------------------------------------------- seeding

def create_users(database_url: str, agents: int) -> dict[str, int]:
    from masking import users
    from masking.clock import utcnow
    from masking.web.extensions import db

    app = make_app(database_url)
    ids = {}
    with app.app_context():
        names = [("admin1", "admin"), (SUPERVISOR, "supervisor"), ("supervisor2", "supervisor")]
        names += [(f"agent{i:02d}", "agent") for i in range(1, agents + 1)]
        for name, role in names:
            ids[name] = users.create_user(db.session, name, PASSWORD, role, utcnow()).id
        from masking import pool

        pool.add_numbers(db.session, pool_numbers(200), utcnow(), "IN")
        db.session.commit()
        db.engine.dispose()
    return ids


def _weighted(pairs):
    values, weights = zip(*pairs)
    return list(values), list(weights)


def attempt_rows(count: int, user_ids: list[int], agent_id: int, pool: list[str], now: dt.datetime,
                 rng: random.Random):
    """Yield batches of row dicts for ``mask_attempts``, oldest first, ids 1.. in time order."""
    # Attempts per day: weekdays alike, Sundays half; office hours 09:00-21:00 IST (03:30-15:30 UTC).
    start_day = (now - dt.timedelta(days=DAYS - 1)).date()
    day_weights = [0.5 if (start_day + dt.timedelta(days=i)).weekday() == 6 else 1.0 for i in range(DAYS)]
    total_w = sum(day_weights)
    per_day = [int(count * w / total_w) for w in day_weights]
    per_day[-1] += count - sum(per_day)
    user_weights = [1 / (i + 1) ** 0.6 for i in range(len(user_ids))]
    codes, code_w = _weighted(ERROR_CODES_SET)
    next_id, masking_id, last_set = 1, 1, None
    batch = []
    for i, n in enumerate(per_day):
        day = start_day + dt.timedelta(days=i)
        opens = dt.datetime.combine(day, dt.time(3, 30))
        span = 12 * 3600
        if i == DAYS - 1:  # today: only up to now
            span = max(60, min(span, int((now - opens).total_seconds()) - 60))
        seconds = sorted(rng.random() * span for _ in range(n))
        users = rng.choices(user_ids, user_weights, k=n)
        for k in range(n):
            created = opens + dt.timedelta(seconds=seconds[k])
            r = rng.random()
            action = "set" if r < 0.78 else ("unset" if r < 0.92 else "extend")
            o = rng.random()
            if action == "set":
                outcome = "success" if o < 0.90 else ("error" if o < 0.98 else "unavailable")
            else:
                outcome = "success" if o < 0.95 else ("error" if o < 0.99 else "unavailable")
            m1 = f"+9198{rng.randrange(10**8):08d}"
            m2 = f"+9170{rng.randrange(10**8):08d}"
            row = {"id": next_id, "user_id": users[k], "created_at": created, "action": action, "m1": m1, "m2": m2,
                   "mask": None, "m1_digits": m1[1:], "m2_digits": m2[1:], "mask_digits": None,
                   "event_id": f"CRM-{rng.randrange(10**6):06d}" if rng.random() < 0.3 else None,
                   "requested_minutes": None, "expires_at": None, "outcome": outcome, "error_code": None,
                   "error_message": None, "masking_id": None, "target_id": None, "ended_at": None,
                   "ended_by_id": None, "end_note": None}
            if outcome == "error":
                row["error_code"] = rng.choices(codes, code_w)[0] if action == "set" else 1506
                row["error_message"] = f"code {row['error_code']}"
            elif outcome == "unavailable":
                row["error_message"] = "timeout: no answer within 5 s"
            if action == "set":
                minutes = rng.choice((15, 60, 60, 240, 1440))
                row["requested_minutes"] = minutes
                if outcome == "success":
                    mask = rng.choice(pool)
                    row.update(mask=mask, mask_digits=mask[1:], masking_id=masking_id,
                               expires_at=created + dt.timedelta(minutes=minutes))
                    masking_id += 1
                    if rng.random() < 0.25:
                        row["ended_at"] = created + dt.timedelta(minutes=minutes * rng.random())
                        row["ended_by_id"] = users[k]
                    last_set = next_id
            else:
                row["target_id"] = last_set
                row["mask"] = rng.choice(pool)
                row["mask_digits"] = row["mask"][1:]
                if action == "extend":
                    row["requested_minutes"] = 60
            batch.append(row)
            next_id += 1
            if len(batch) >= 20_000:
                yield batch
                batch = []
    # The measured agent's live masks (its page lists them): made in the last hours, 24 h each.
    for k in range(40):
        created = now - dt.timedelta(minutes=5 + 7 * k)
        mask = pool[k % len(pool)]
        m1, m2 = f"+9199{k:08d}", f"+9188{k:08d}"
        batch.append({"id": next_id, "user_id": agent_id, "created_at": created, "action": "set", "m1": m1,
                      "m2": m2, "mask": mask, "m1_digits": m1[1:], "m2_digits": m2[1:], "mask_digits": mask[1:],
                      "event_id": None, "requested_minutes": 1440, "expires_at": created + dt.timedelta(days=1),
                      "outcome": "success", "error_code": None, "error_message": None, "masking_id": masking_id,
                      "target_id": None, "ended_at": None, "ended_by_id": None, "end_note": None})
        next_id += 1
        masking_id += 1
    yield batch


def seed_attempts(database_url: str, count: int, user_ids: list[int], agent_id: int, seed: int = 7) -> float:
    from sqlalchemy import create_engine, insert, text

    from masking.db import engine_options, is_sqlite, normalise_database_url
    from masking.models import MaskAttempt

    url = normalise_database_url(database_url)
    engine = create_engine(url, **engine_options(url))
    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rng = random.Random(seed)
    pool = pool_numbers(200)
    table = MaskAttempt.__table__
    done = 0
    with engine.begin() as conn:
        if is_sqlite(engine):
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # ids are consistent by construction
        for batch in attempt_rows(count, user_ids, agent_id, pool, now, rng):
            conn.execute(insert(table), batch)
            done += len(batch)
            if done % 200_000 < len(batch):
                log(f"  {done:,} attempts inserted")
        if not is_sqlite(engine):
            conn.execute(text("SELECT setval(pg_get_serial_sequence('mask_attempts', 'id'), "
                              "(SELECT max(id) FROM mask_attempts))"))
    if not is_sqlite(engine):
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


# ---------------------------------------------------------------- an HTTP client that logs in like a browser

class Browser:
    """One keep-alive connection, the session cookie, the CSRF token."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                stream_to=None) -> tuple[int, bytes, float, dict]:
        """(status, body, seconds from sending to the last byte, headers)."""
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        if stream_to is not None:
            size = 0
            while True:
                chunk = response.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                stream_to(chunk)
            data = b""
        else:
            data = response.read()
        elapsed = time.perf_counter() - started
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
        return response.status, data, elapsed, dict(response.getheaders())

    def login(self, username: str) -> None:
        status, page, _, _ = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page) or re.search(
            rb'name="csrf-token" content="([^"]+)"', page)
        if status != 200 or not token:
            raise RuntimeError(f"login page: {status}")
        body = urlencode({"username": username, "password": PASSWORD, "csrf_token": token.group(1).decode()}).encode()
        status, _, _, headers = self.request("POST", "/login", body,
                                             {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 303:
            raise RuntimeError(f"login as {username} answered {status}")

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------- measurements

def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure_page(browser: Browser, path: str, requests: int, warmup: int) -> dict:
    times = []
    for i in range(warmup + requests):
        status, body, elapsed, _ = browser.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
        if i >= warmup:
            times.append(elapsed * 1000)
    return {"path": path, "requests": requests, "p50_ms": round(percentile(times, 50), 2),
            "p99_ms": round(percentile(times, 99), 2), "mean_ms": round(statistics.fmean(times), 2),
            "bytes": len(body)}


def measure_export(browser: Browser, path: str, form: dict, repeats: int) -> dict:
    results = []
    for _ in range(repeats):
        counter = {"newlines": 0, "bytes": 0, "first": None}
        started = time.perf_counter()

        def sink(chunk, counter=counter):
            if counter["first"] is None:
                counter["first"] = time.perf_counter() - started
            counter["newlines"] += chunk.count(b"\n")
            counter["bytes"] += len(chunk)

        status, _, elapsed, headers = browser.request(
            "POST", path, urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"},
            stream_to=sink)
        if status != 200:
            raise RuntimeError(f"POST {path} answered {status}")
        rows = counter["newlines"] - 1  # the header line
        results.append({"rows": rows, "seconds": elapsed, "first_byte_ms": (counter["first"] or 0) * 1000,
                        "bytes": counter["bytes"], "chunked": headers.get("Transfer-Encoding") == "chunked"})
    best = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]  # the median run
    return {"path": f"POST {path} {form.get('start')}..{form.get('end')}", "rows": best["rows"], "seconds": round(best["seconds"], 3),
            "rows_per_s": round(best["rows"] / best["seconds"]) if best["seconds"] else 0,
            "first_byte_ms": round(best["first_byte_ms"], 1), "megabytes": round(best["bytes"] / 1e6, 2),
            "streamed": best["chunked"], "runs": [round(r["seconds"], 3) for r in results]}


def export_days(database_url: str, rows: int, now: dt.datetime) -> tuple[str, str, int]:
    """The local dates (start, end) of the most recent days holding at least ``rows`` attempts."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import func, select

    from masking.models import MaskAttempt
    from masking.clock import local_midnight_utc
    from masking.web.extensions import db

    zone = ZoneInfo("Asia/Kolkata")
    app = make_app(database_url)
    with app.app_context():
        end = (now.replace(tzinfo=dt.timezone.utc).astimezone(zone)).date()
        start, found = end, 0
        while found < rows and (end - start).days < DAYS + 1:
            found = db.session.scalar(select(func.count()).select_from(MaskAttempt).where(
                MaskAttempt.created_at >= local_midnight_utc(start, zone)))
            if found < rows:
                start -= dt.timedelta(days=1)
        db.engine.dispose()
    return start.isoformat(), end.isoformat(), found


def history_paths(browser: Browser, database_url: str, export_rows: int, now: dt.datetime) -> dict | None:
    """The supervisor's history URLs and the export form, if the app has them (masking/web/supervisor.py)."""
    status, page, _, _ = browser.request("GET", "/history")
    if status != 200:
        return None
    token = re.search(rb'name="csrf-token" content="([^"]+)"', page).group(1).decode()
    local = now + dt.timedelta(hours=5, minutes=30)  # Asia/Kolkata, the default zone
    to = local.date().isoformat()
    two_weeks = (local - dt.timedelta(days=13)).date().isoformat()
    start, end, rows = export_days(database_url, export_rows, now)
    return {
        "pages": [
            ("history, no filter", "/history"),
            ("history, agent+14 d+failed", "/history?" + urlencode(
                {"agent": AGENT, "start": two_weeks, "end": to, "outcome": "failed"})),
            ("history, 1505 in 14 d", "/history?" + urlencode(
                {"start": two_weeks, "end": to, "outcome": "failed:1505"})),
            ("history, number starts", "/history?" + urlencode({"number": "98765"})),
        ],
        "export": ("/history/export", {"start": start, "end": end, "numbers": "hidden", "csrf_token": token}),
        "export_expected_rows": rows,
    }


def run(database_url: str, args, workdir: Path) -> dict:
    log("migrating a fresh database")
    migrate(database_url)
    ids = create_users(database_url, args.agents)
    agent_ids = [v for k, v in ids.items() if k.startswith("agent")]
    log(f"seeding {args.attempts:,} attempts over {DAYS} days, {len(agent_ids)} agents")
    seconds = seed_attempts(database_url, args.attempts, agent_ids, ids[AGENT])
    log(f"seeded in {seconds:.1f} s")
    out = {"seed_seconds": round(seconds, 1), "pages": {}, "export": None, "overview_queries": in_process(database_url)}
    with Server("dashboard", workdir, database_url=database_url) as server:
        log(f"app served by gunicorn on port {server.port}")
        agent, supervisor = Browser(server.port), Browser(server.port)
        agent.login(AGENT)
        supervisor.login(SUPERVISOR)
        pages = [("healthz", agent, "/healthz"), ("agent page", agent, "/"),
                 ("overview", supervisor, "/overview")]
        paths = None
        deadline = time.time() + args.wait_history
        while True:
            paths = history_paths(supervisor, database_url, args.export_rows, dt.datetime.utcnow())
            if paths or time.time() >= deadline:
                break
            log("no /history yet (masking/web/supervisor.py): waiting")
            time.sleep(30)
        if paths:
            pages += [(name, supervisor, path) for name, path in paths["pages"]]
        for round_no in range(args.rounds):
            for name, browser, path in pages:
                result = measure_page(browser, path, args.requests, args.warmup if round_no == 0 else 2)
                out["pages"].setdefault(name, []).append(result)
        if paths:
            path, form = paths["export"]
            out["export"] = measure_export(supervisor, path, form, args.export_repeats)
            out["export"]["expected_rows"] = paths["export_expected_rows"]
        out["profile_targets"] = [(name, path, None) for name, _, path in pages if name != "healthz"]
        if paths:
            out["profile_targets"].append(("CSV export", paths["export"][0], paths["export"][1]))
        agent.close()
        supervisor.close()
        out["server_problems"] = server.problems()[:10]
    return out


def in_process(database_url: str) -> dict:
    """The overview's queries timed in-process, and their plans."""
    from zoneinfo import ZoneInfo

    from masking import overview, pool
    from masking.web.extensions import db

    app = make_app(database_url)
    zone = ZoneInfo("Asia/Kolkata")
    timings = {}
    with app.app_context():
        now = dt.datetime.utcnow()
        session = db.session
        cache = overview.ClosedDays()
        for name, fn in (("overview without the closed-days cache (30 days)",
                          lambda: overview.overview(session, now, zone)),
                         ("overview, closed days cached (today only)",
                          lambda: overview.overview(session, now, zone, cache=cache)),
                         ("pool use", lambda: pool.use_by_status(session, now))):
            fn()
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                fn()
                runs.append((time.perf_counter() - t) * 1000)
                session.rollback()
            timings[name] = round(statistics.median(runs), 1)
        plans = overview.explain_all(session, now, zone)
        db.engine.dispose()
    return {"median_ms": timings, "plans": plans}


def profile_inprocess(database_url: str, paths: list[tuple[str, str, dict | None]], top: int = 18) -> None:
    """cProfile of requests through Flask's test client (no HTTP), logged in as in the measurement."""
    import cProfile
    import io
    import pstats

    from app import create_app
    from masking.web.extensions import db

    os.environ.pop("DATABASE_URL", None)
    app = create_app({"DATABASE_URL": database_url, "WTF_CSRF_ENABLED": False})
    clients = {}
    for username in (AGENT, SUPERVISOR):
        clients[username] = app.test_client()
        clients[username].post("/login", data={"username": username, "password": PASSWORD})
    for name, path, form in paths:
        client = clients[AGENT if name == "agent page" else SUPERVISOR]
        def go():
            if form is None:
                return client.get(path).get_data()
            return client.post(path, data={k: v for k, v in form.items() if k != "csrf_token"}).get_data()

        go()  # warm
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        body = go()
        profiler.disable()
        elapsed = time.perf_counter() - started
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
        print(f"\n--- profile: {name} ({path}), {elapsed * 1000:.0f} ms under cProfile, {len(body) / 1e6:.2f} MB")
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
        print("\n".join(lines[start:start + top + 1]))
    with app.app_context():
        db.engine.dispose()


def merge(results: list[dict]) -> dict:
    return {"p50_ms": round(statistics.median(r["p50_ms"] for r in results), 2),
            "p99_ms": round(max(r["p99_ms"] for r in results), 2), "requests": sum(r["requests"] for r in results),
            "path": results[0]["path"], "bytes": results[0]["bytes"]}


def report(name: str, out: dict) -> dict:
    print(f"\n{name}: {args_summary}")
    pages = {k: merge(v) for k, v in out["pages"].items()}
    base = pages["healthz"]["p50_ms"]
    verdicts = {}
    for page, r in pages.items():
        ok = r["p50_ms"] < TARGET_PAGE_P50_MS
        mark = "" if page == "healthz" else f"  {'PASS' if ok else 'FAIL'} (p50 < {TARGET_PAGE_P50_MS:g} ms)"
        print(f"  {page:<20} p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms  x{r['p50_ms'] / base:6.1f} healthz  "
              f"{r['bytes'] / 1000:7.1f} kB  {r['path']}{mark}")
        if page != "healthz":
            verdicts[page] = ok
    if out["export"]:
        e = out["export"]
        ok = e["rows_per_s"] >= TARGET_EXPORT_ROWS_PER_S
        verdicts["export"] = ok
        print(f"  {'CSV export':<20} {e['rows']:,} rows in {e['seconds']:.2f} s = {e['rows_per_s']:,} rows/s "
              f"(first byte {e['first_byte_ms']} ms, {e['megabytes']} MB, streamed: {e['streamed']}, runs {e['runs']})"
              f"  {'PASS' if ok else 'FAIL'} (>= {TARGET_EXPORT_ROWS_PER_S:,} rows/s)")
    else:
        print("  history and CSV export: not measured (no /history in this app yet)")
    print("  overview queries in-process (median of 5):")
    for q, ms in out["overview_queries"]["median_ms"].items():
        print(f"    {q:<46} {ms:8.1f} ms")
    for q, plan in out["overview_queries"]["plans"].items():
        print(f"    plan, {q}: " + " | ".join(line.strip() for line in plan[:8]))
    for line in out.get("server_problems") or []:
        print(f"  server log: {line}")
    return {"pages": pages, "export": out["export"], "verdicts": verdicts,
            "overview_queries": out["overview_queries"], "seed_seconds": out["seed_seconds"]}


args_summary = ""


def main(argv=None) -> int:
    global args_summary
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                        help="a PostgreSQL server: benchmark there instead of SQLite (its own database is created)")
    parser.add_argument("--pg-database", default="masking_bench_dash", help="the database created and dropped there")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--attempts", type=int, default=1_000_000, help="mask_attempts rows (default 1,000,000)")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="requests per page and round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all pages (default 3)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--export-repeats", type=int, default=3)
    parser.add_argument("--wait-history", type=float, default=0,
                        help="seconds to wait for /history to appear (while it is being built)")
    parser.add_argument("--profile", action="append", default=[], metavar="PAGE",
                        help="afterwards, cProfile the pages whose name contains PAGE in-process (repeatable; "
                             "e.g. --profile export --profile overview)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    args_summary = (f"{args.attempts:,} attempts, {args.agents} agents, {args.rounds} rounds x {args.requests} "
                    f"requests per page, one client")
    print(f"Dashboard benchmark, {info['date']}, {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
          f"load average {os.getloadavg()[0]:.1f}")
    workdir = Path(tempfile.mkdtemp(prefix="masking-dash-bench-"))
    broke = False
    try:
        def measure(url: str, name: str) -> dict:
            out = run(url, args, workdir)
            summary = report(name, out)
            if args.profile:
                profile_inprocess(url, [t for t in out["profile_targets"] if any(p in t[0] for p in args.profile)])
            return summary

        if args.database_url:
            with PostgresDatabase(args.database_url, args.pg_database, args.keep_database) as url:
                name = "PostgreSQL"
                summary = measure(url, name)
        else:
            name = "SQLite"
            summary = measure(f"sqlite:///{workdir / 'dashboard.db'}", name)
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
        if args.json:
            args.json.write_text(json.dumps({"machine": info, "database": name, **summary}, indent=2, default=str))
    except Exception as exc:
        broke = True
        print(f"\nThe benchmark broke: {exc}\nServer logs kept in {workdir}", file=sys.stderr)
        raise
    finally:
        if not broke:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
