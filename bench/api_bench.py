"""Benchmark of the Masking API, served as `make run` serves it.

    .venv/bin/python bench/api_bench.py                  # SQLite (about 100 s)
    .venv/bin/python bench/api_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    BENCH_DATABASE_URL=postgresql://... make bench       # the same through make

Everything runs on 127.0.0.1:

* A bare JSON endpoint (bench/bare_app.py) served by gunicorn with gunicorn.conf.py: the
  yardstick (Flask + gunicorn + a JSON body in and out, nothing else).
* For SQLite (always) and PostgreSQL (when a server is given): two fresh databases,
  migrated with `flask --app app db upgrade`, each seeded with a pool of 200 Indian
  numbers and an API account; the second also gets 100,000 active maskings inserted
  straight through SQLAlchemy Core (maskings, two routes each, active_pairs). Each is
  served by the real app under gunicorn with gunicorn.conf.py, like `make run`.
* Rounds: bare, empty database, 100k database (the order reversed every other round, so
  that a change in the machine's background load falls on all three alike). On a
  database a round is a one-client Masking/set phase, then Masking/unset of every
  masking it made (mask, m1, m2, expiry_duration -1), then the same with concurrent
  clients. Every set uses two party numbers never used before.

Prints requests/s and p50/p99 latency of every phase and of the rounds together, the
set/bare throughput ratio and the set latency ratio 100k/empty, with PASS/FAIL against
the issue's targets. Exits 0 whatever the figures; 1 only when something broke (a server
that does not start, error responses).

For PostgreSQL the URL names the server: the benchmark drops and creates its own
databases there (masking_bench and masking_bench_loaded; see --pg-database) and drops
them at the end (--keep-database keeps them). It never writes to the database named
in the URL.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402  (bench/loadgen.py)

VENV_BIN = Path(sys.executable).parent
POOL_SIZE_DEFAULT = 200
SET_PATH = "/api/v2/Masking/set"
UNSET_PATH = "/api/v2/Masking/unset"
BARE_PATH = "/api/v2/bench/bare"
# Targets from issue 2.
TARGET_SET_VS_BARE = 0.50
TARGET_LATENCY_GROWTH = 1.5
# Settings the app reads from the environment; the benchmark clears them so that the
# served app runs with its defaults, as `make run` does on a fresh clone.
APP_ENV = ("DATABASE_URL", "SECRET_KEY", "API_ERROR_DETAIL", "API_MAX_BODY_BYTES", "DEFAULT_REGION",
           "TIMEZONE", "DEFAULT_EXPIRY_MINUTES", "MAX_EXPIRY_MINUTES", "COOLOFF_SECONDS", "GEO_MATCH",
           "SSID_TTL_SECONDS", "API_RATE_LIMIT", "API_RATE_LIMIT_STORAGE")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(port: int | None, database_url: str | None = None) -> dict:
    """The environment of a server on ``port`` (None: a command that serves nothing, e.g. a migration)."""
    env = {k: v for k, v in os.environ.items() if k not in APP_ENV}
    env.update(HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    if port is not None:
        env["PORT"] = str(port)
    else:
        env.pop("PORT", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


class Server:
    """gunicorn --config gunicorn.conf.py [APP], in the repository, like `make run`."""

    def __init__(self, name: str, workdir: Path, app: str | None = None, database_url: str | None = None,
                 extra_args: tuple = ()):
        self.name, self.port = name, free_port()
        self.log_path = workdir / f"gunicorn-{name}-{self.port}.log"
        args = [str(VENV_BIN / "gunicorn"), "--config", "gunicorn.conf.py", *extra_args]
        if app:
            args.append(app)
        self.args, self.env = args, server_env(self.port, database_url)
        self.proc: subprocess.Popen | None = None
        self.logfile = None

    def __enter__(self) -> "Server":
        return self.start()

    def start(self) -> "Server":
        self.logfile = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=self.logfile, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} server did not answer /healthz within 60 s:\n{self.log_tail()}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown of its workers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.logfile and not self.logfile.closed:
            self.logfile.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def problems(self) -> list[str]:
        """Lines of the server log that look like trouble (tracebacks, worker timeouts)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        words = ("Traceback", "WORKER TIMEOUT", "ERROR", "CRITICAL", "Exception")
        return [line for line in text.splitlines() if any(word in line for word in words)]


# ---------------------------------------------------------------- databases

def migrate(database_url: str) -> None:
    env = server_env(None, database_url)
    result = subprocess.run([str(VENV_BIN / "flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{result.stdout}\n{result.stderr}")


def make_app(database_url: str):
    os.environ.pop("DATABASE_URL", None)
    from app import create_app

    return create_app({"DATABASE_URL": database_url})


def pool_numbers(size: int) -> list[str]:
    import phonenumbers

    numbers = [f"+918041{n:06d}" for n in range(100000, 100000 + size)]
    for number in numbers:
        if not phonenumbers.is_valid_number(phonenumbers.parse(number)):
            raise RuntimeError(f"pool number {number} is not valid for phonenumbers")
    return numbers


def seed(database_url: str, pool_size: int) -> dict:
    """A pool and an API account; returns the account's credentials."""
    from masking import accounts, pool
    from masking.clock import utcnow
    from masking.web.extensions import db

    app = make_app(database_url)
    with app.app_context():
        report = pool.add_numbers(db.session, pool_numbers(pool_size), utcnow(), "IN")
        if report.rejected or len(report.added) != pool_size:
            raise RuntimeError(f"pool seeding went wrong: {report.as_dict()}")
        new = accounts.create_account(db.session, "bench", utcnow())
        creds = {"userId": new.account.user_id, "token": new.token}
        db.session.commit()
        db.engine.dispose()
    return creds


def preload(database_url: str, count: int, user_id: str, cooloff_seconds: int = 300) -> float:
    """Insert ``count`` live maskings of the bench account, spread over the pool, with distinct
    parties, straight through SQLAlchemy Core. Returns the seconds it took."""
    from sqlalchemy import func, select, text, update

    from masking.db import is_sqlite
    from masking.models import ActivePair, ApiAccount, Masking, PoolNumber, Route
    from masking.web.extensions import db

    app = make_app(database_url)
    started = time.perf_counter()
    maskings, routes, pairs = Masking.__table__, Route.__table__, ActivePair.__table__
    with app.app_context():
        engine = db.engine
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
        expires = now + dt.timedelta(days=1)
        hold = expires + dt.timedelta(seconds=cooloff_seconds)
        with engine.begin() as conn:
            account_id = conn.scalar(select(ApiAccount.id).where(ApiAccount.user_id == user_id))
            pool = conn.execute(select(PoolNumber.id, PoolNumber.number).order_by(PoolNumber.id)).all()
            first_id = (conn.scalar(select(func.max(maskings.c.id))) or 0) + 1
            batch = 5000
            for start in range(0, count, batch):
                m_rows, r_rows, p_rows = [], [], []
                for i in range(start, min(count, start + batch)):
                    pool_id, mask = pool[i % len(pool)]
                    # Parties outside the ranges the HTTP clients use (98..., 99...).
                    m1, m2 = f"+9170{i:08d}", f"+9180{i:08d}"
                    masking_id = first_id + i
                    created = now - dt.timedelta(seconds=count - i)
                    m_rows.append({"id": masking_id, "account_id": account_id, "pool_number_id": pool_id,
                                   "mask_number": mask, "m1": m1, "m2": m2, "event_id": f"preload-{i}",
                                   "created_at": created, "expires_at": expires, "ended_at": None})
                    for a, b in sorted(((m1, m2), (m2, m1))):
                        r_rows.append({"mask_number": mask, "party": a, "other_party": b, "masking_id": masking_id,
                                       "route_until": expires, "hold_until": hold})
                    p_rows.append({"party_low": min(m1, m2), "party_high": max(m1, m2), "masking_id": masking_id,
                                   "expires_at": expires})
                conn.execute(maskings.insert(), m_rows)
                conn.execute(routes.insert(), r_rows)
                conn.execute(pairs.insert(), p_rows)
            # Pool bookkeeping as if these had been allocated through the API.
            per_number = count // len(pool)
            conn.execute(update(PoolNumber).values(allocation_count=PoolNumber.allocation_count + per_number,
                                                   last_allocated_at=now - dt.timedelta(seconds=1)))
            if not is_sqlite(engine):
                # Explicit ids bypassed the id sequence; move it past them.
                conn.execute(text("SELECT setval(pg_get_serial_sequence('maskings', 'id'), "
                                  "(SELECT max(id) FROM maskings))"))
        if not is_sqlite(engine):
            # What autovacuum's ANALYZE would do soon after such a load in production.
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        with engine.connect() as conn:
            live = conn.scalar(select(func.count()).select_from(pairs).where(pairs.c.expires_at > now))
        engine.dispose()
    if live < count:
        raise RuntimeError(f"preload: expected at least {count} live pairs, found {live}")
    return time.perf_counter() - started


class PostgresDatabase:
    """A throw-away database on the server named by ``url``."""

    def __init__(self, url: str, name: str, keep: bool):
        from sqlalchemy.engine import make_url

        from masking.db import normalise_database_url

        if "bench" not in name:
            raise SystemExit("--pg-database must contain 'bench' (the benchmark drops and recreates it)")
        self.admin_url = make_url(normalise_database_url(url))
        if self.admin_url.database == name:
            self.admin_url = self.admin_url.set(database="postgres")
        self.name, self.keep = name, keep
        self.url = self.admin_url.set(database=name).render_as_string(hide_password=False)

    def _admin(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def __enter__(self) -> str:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self.url

    def __exit__(self, *exc) -> None:
        if not self.keep:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# ---------------------------------------------------------------- phases

def show(result: loadgen.PhaseResult, indent: str = "    ") -> None:
    s = result.summary()
    errors = f"  ERRORS {result.error_count}" if result.error_count else ""
    print(f"{indent}{s['name']:<30} {s['clients']:>3} clients {s['requests']:>7} ok {s['seconds']:>6.1f} s "
          f"{s['rps']:>8.1f} req/s  p50 {s['p50_ms']:>7.2f} ms  p99 {s['p99_ms']:>7.2f} ms{errors}", flush=True)
    for key, count in sorted(result.errors.items(), key=lambda kv: -kv[1])[:5]:
        print(f"{indent}    {count} x {key}")


class Target:
    """One served database (empty or preloaded) and the phases measured on it."""

    def __init__(self, label: str, server: Server, creds: dict):
        self.label, self.server, self.creds = label, server, creds
        self.phases: dict[str, list[loadgen.PhaseResult]] = {}

    def record(self, key: str, result: loadgen.PhaseResult, verbose: bool) -> loadgen.PhaseResult:
        self.phases.setdefault(key, []).append(result)
        if verbose:
            show(result, "      ")
        return result

    def set_then_unset(self, key: str, clients: int, tag: int, duration: float, verbose: bool = True) -> None:
        port = self.server.port
        made = self.record(f"{key}set", loadgen.run_phase(
            f"{self.label} set", "set", port, SET_PATH, clients=clients, creds=self.creds, tag=tag,
            duration=duration), verbose)
        self.record(f"{key}unset", loadgen.run_phase(
            f"{self.label} unset", "unset", port, UNSET_PATH, clients=clients, creds=self.creds,
            items=made.created), verbose)

    def merged(self, key: str) -> loadgen.PhaseResult:
        return loadgen.merge(f"{self.label} {key}", self.phases.get(key, []))


def prepare(database_url: str, args, preload_count: int, label: str) -> dict:
    migrate(database_url)
    creds = seed(database_url, args.pool_size)
    if preload_count:
        seconds = preload(database_url, preload_count, creds["userId"])
        log(f"{label}: {preload_count:,} active maskings inserted in {seconds:.1f} s")
    return creds


def bench_backend(backend: str, urls: tuple[str, str], bare_server: Server, workdir: Path, args) -> dict:
    """Rounds of bare / empty database / preloaded database, in alternating order, so that a
    change of background load on the machine hits all three alike."""
    empty_url, loaded_url = urls
    log(f"{backend}: migrating two fresh databases, seeding a pool of {args.pool_size} and an API account in each")
    creds_empty = prepare(empty_url, args, 0, backend)
    creds_loaded = prepare(loaded_url, args, args.preload, backend)
    k = f"{args.preload // 1000}k" if args.preload >= 1000 else str(args.preload)
    servers = []
    try:
        empty = Target(f"{backend} empty", Server(f"{backend.lower()}-empty", workdir, database_url=empty_url).start(),
                       creds_empty)
        servers.append(empty.server)
        loaded = Target(f"{backend} {k}", Server(f"{backend.lower()}-{k}", workdir, database_url=loaded_url).start(),
                        creds_loaded)
        servers.append(loaded.server)
        log(f"{backend}: app served by gunicorn on ports {empty.server.port} (empty) and {loaded.server.port} "
            f"({args.preload:,} active maskings)")
        for target in (empty, loaded):
            target.set_then_unset("warmup_", args.clients, 0, args.warmup, verbose=False)
        bare = []
        for round_no in range(args.rounds):
            print(f"    round {round_no + 1}/{args.rounds} (load average {os.getloadavg()[0]:.1f})", flush=True)
            order = ["bare", empty, loaded]
            if round_no % 2:
                order.reverse()
            for item in order:
                if item == "bare":
                    result = loadgen.run_phase("bare", "bare", bare_server.port, BARE_PATH, clients=args.clients,
                                               duration=args.duration)
                    bare.append(result)
                    show(result, "      ")
                    continue
                if args.serial > 0:
                    item.set_then_unset("serial_", 1, 2 + 2 * round_no, args.serial)
                item.set_then_unset("", args.clients, 1 + 2 * round_no, args.duration)
    finally:
        for server in servers:
            server.stop()
    out = {"database": backend, "bare": loadgen.merge("bare", bare), "empty": empty, "loaded": loaded,
           "server_problems": [line for s in servers for line in s.problems()]}
    for line in out["server_problems"][:10]:
        print(f"    server log: {line}")
    return out


# ---------------------------------------------------------------- verdicts

def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(backends: list[dict], args) -> list[dict]:
    print()
    print(f"Summary ({args.rounds} rounds of {args.duration:g} s per phase, {args.clients} clients; "
          f"one-client phases {args.serial:g} s)")
    verdicts = []
    k = f"{args.preload // 1000}k" if args.preload >= 1000 else str(args.preload)
    for out in backends:
        name, bare, empty, loaded = out["database"], out["bare"], out["empty"], out["loaded"]
        rows = [("bare", "-", bare)]
        for key in ("set", "unset", "serial_set", "serial_unset"):
            for state, target in (("empty", empty), (f"{k} active", loaded)):
                if target.phases.get(key):
                    rows.append((key.replace("serial_", "") + (" (1 client)" if key.startswith("serial") else ""),
                                 state, target.merged(key)))
        print(f"  {name}:")
        for label, state, r in rows:
            print(f"    {label:<18} {state:<11} {r.ok:>7} ok {r.rps:8.0f} req/s  p50 {r.percentile(50):7.2f} ms  "
                  f"p99 {r.percentile(99):7.2f} ms")
        set0, set1 = empty.merged("set"), loaded.merged("set")
        ratio = set0.rps / bare.rps if bare.rps else 0.0
        growth50 = set1.percentile(50) / set0.percentile(50)
        growth99 = set1.percentile(99) / set0.percentile(99)
        print(f"    set/bare throughput: {ratio:.3f} (target >= {TARGET_SET_VS_BARE:.2f}"
              f"{'' if name == 'SQLite' else ', set for SQLite'}) {verdict(ratio >= TARGET_SET_VS_BARE)}")
        print(f"    set latency {k}/empty: p50 x{growth50:.2f}, p99 x{growth99:.2f} "
              f"(target p50 <= x{TARGET_LATENCY_GROWTH}) {verdict(growth50 <= TARGET_LATENCY_GROWTH)}")
        entry = {"database": name, "set_vs_bare": round(ratio, 3), "set_vs_bare_pass": ratio >= TARGET_SET_VS_BARE,
                 "latency_growth_p50": round(growth50, 3), "latency_growth_p99": round(growth99, 3),
                 "latency_growth_pass": growth50 <= TARGET_LATENCY_GROWTH,
                 "phases": {f"{label} {state}": r.summary() for label, state, r in rows}}
        if empty.phases.get("serial_set") and loaded.phases.get("serial_set"):
            g = loaded.merged("serial_set").percentile(50) / empty.merged("serial_set").percentile(50)
            print(f"    set latency {k}/empty with one client: p50 x{g:.2f} (for information)")
            entry["latency_growth_serial_p50"] = round(g, 3)
        verdicts.append(entry)
    return verdicts


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                        help="a PostgreSQL server to benchmark as well (env BENCH_DATABASE_URL)")
    parser.add_argument("--pg-database", default="masking_bench",
                        help="databases the benchmark creates and drops on that server: NAME and NAME_loaded")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the PostgreSQL databases at the end")
    parser.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client connections (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of bare / empty / preloaded phases (default 3)")
    parser.add_argument("--duration", type=float, default=4.0,
                        help="seconds of each concurrent set or bare phase in a round (default 4)")
    parser.add_argument("--serial", type=float, default=1.0,
                        help="seconds of the one-client set phase in a round (0 to skip; default 1)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before measuring (default 2)")
    parser.add_argument("--pool-size", type=int, default=POOL_SIZE_DEFAULT, help="pool numbers (default 200)")
    parser.add_argument("--preload", type=int, default=100_000, help="active maskings for the second figure")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 45 or not 1 <= args.clients <= 100:
        parser.error("--rounds must be 1..45 and --clients 1..100")
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql")):
        parser.error("--database-url must be a PostgreSQL URL (SQLite is always benchmarked unless --skip-sqlite)")

    info = machine()
    print(f"Masking API benchmark, {info['date']}, {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"gunicorn.conf.py: WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', '2')} workers x "
          f"WEB_THREADS={os.environ.get('WEB_THREADS', '16')} threads; {args.clients} client processes")
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="masking-bench-"))
    broke = False
    backends = []
    try:
        with Server("bare", workdir, app="bare_app:create_app()", extra_args=("--pythonpath", str(BENCH))) as bare:
            log(f"bare JSON endpoint served by gunicorn on port {bare.port}")
            loadgen.run_phase("bare warm-up", "bare", bare.port, BARE_PATH, clients=args.clients, duration=args.warmup)
            if not args.skip_sqlite:
                urls = (f"sqlite:///{workdir / 'empty.db'}", f"sqlite:///{workdir / 'loaded.db'}")
                backends.append(bench_backend("SQLite", urls, bare, workdir, args))
            if args.database_url:
                with PostgresDatabase(args.database_url, args.pg_database, args.keep_database) as empty_url, \
                        PostgresDatabase(args.database_url, f"{args.pg_database}_loaded", args.keep_database) as loaded_url:
                    backends.append(bench_backend("PostgreSQL", (empty_url, loaded_url), bare, workdir, args))
            for line in bare.problems()[:10]:
                print(f"    bare server log: {line}")
        verdicts = report(backends, args)
        errors = sum(out["bare"].error_count for out in backends) + sum(
            r.error_count for out in backends for target in (out["empty"], out["loaded"])
            for results in target.phases.values() for r in results)
        if errors:
            print(f"\n{errors} requests failed: the figures above are suspect.")
            broke = True
        print(f"\nTotal time {time.perf_counter() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f}.")
        if args.json:
            args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()
                                                                         if k != "database_url"},
                                             "verdicts": verdicts}, indent=2))
    except Exception as exc:
        broke = True
        print(f"\nThe benchmark broke: {exc}", file=sys.stderr)
        print(f"Server logs kept in {workdir}", file=sys.stderr)
        raise
    finally:
        if not broke:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
