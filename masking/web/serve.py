"""``python -m masking.web.serve``: what ``make run`` runs. Two gunicorn masters, one command.

* public:   HOST:PORT (127.0.0.1:5000), everything: the dashboard, the API, /healthz.
* internal: 127.0.0.1:INTERNAL_API_PORT (PORT+1), only the API (``internal_api_app``).

The dashboard calls the masking service over HTTP; by default that service is this app.
If it called its own public server, a burst of agents could occupy every public thread
while each waits for an API call that needs a free public thread: a deadlock until the
timeouts fire. The internal server's threads only ever serve API calls, which never call
out, so they always make progress and every agent gets an answer.

Both masters read gunicorn.conf.py (workers, threads, timeouts from the environment); the
launcher only sets HOST and PORT for each. It forwards SIGINT/SIGTERM to both and exits
(stopping the other) as soon as either one exits.

The launcher also sweeps every SWEEP_INTERVAL_SECONDS (600; 0: never): it deletes the leases
whose cool-off is over (``masking.service.sweep``), which keeps the routes table, read by every
allocation and counted by the pool pages, about as small as the live maskings. Correctness
never waits for it; a failed sweep is reported and tried again at the next interval.

Before it starts anything it checks every setting it and the two masters read
(``masking.server_settings``) and every setting the app reads (``masking.settings``): a bad
one is refused with one line and exit status 2. ``--check`` does only that (``make run`` runs
it before the migration). The app it builds for the hint and the sweeper is checked again by
``create_app``; a database that is down does not stop the launch (the servers report it).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from masking.server_settings import for_launcher
from masking.settings import SettingsError, check_environment

ROOT = Path(__file__).resolve().parents[2]
API_PREFIXES = ("/api/", "/healthz")


def internal_api_app():
    """The app with every path but the API and /healthz answered 404 (for the internal server)."""
    from app import create_app

    app = create_app()
    inner = app.wsgi_app

    def only_api(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.lower().startswith(API_PREFIXES):
            return inner(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"The internal server serves only the API.\n"]

    app.wsgi_app = only_api
    return app


def _load_app():
    """The app, for the first-run hint and the sweeper; None (reported) when it cannot be built.
    SettingsError (a setting the app refuses) goes to the caller: it must stop the launch."""
    try:
        from app import create_app

        return create_app()
    except SettingsError:
        raise
    except Exception as exc:  # the servers report a broken setup themselves (the message may hold a password)
        print(f"serve: could not load the app ({exc.__class__.__name__}): no first-run check, no sweeping",
              file=sys.stderr)
        return None


def _first_run_hint(app, url: str) -> None:
    try:
        from masking import users
        from masking.web.extensions import db

        with app.app_context():
            empty = users.count(db.session()) == 0
            db.engine.dispose()
    except Exception as exc:  # the servers report a broken setup too; say here what it is
        from masking.readiness import problem_of

        problem = problem_of(exc, app.config.get("SQLALCHEMY_DATABASE_URI"))
        print(f"serve: could not check for users: {problem or exc.__class__.__name__}", file=sys.stderr)
        return
    print(f"\n  Dashboard: {url}", file=sys.stderr)
    if empty:
        same_database = "DATABASE_URL='...' " if os.environ.get("DATABASE_URL", "").strip() else ""
        print("  No users yet. Create the first admin (it asks for a password), in a second terminal\n"
              f"  {'with the same DATABASE_URL' if same_database else 'in this folder'}:\n"
              f"      {same_database}.venv/bin/flask --app app users create admin --role admin\n", file=sys.stderr)


def _sweep_every(app, interval: int, stop: threading.Event) -> None:
    from masking import service
    from masking.driver import describe_error
    from masking.web.extensions import db, now

    while not stop.wait(interval):
        try:
            with app.app_context():
                removed = service.sweep(db.session(), now())
        except Exception as exc:  # the database is down or locked: the next round tries again
            print(f"serve: sweep failed ({describe_error(exc)}); next try in {interval} s", file=sys.stderr)
            continue
        if removed["routes"] or removed["pairs"]:
            print(f"serve: swept {removed['routes']} leases and {removed['pairs']} pairs", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--check"]):
        print("usage: python -m masking.web.serve [--check]", file=sys.stderr)
        return 2
    try:
        settings = for_launcher(os.environ)
        check_environment(os.environ)  # the app's settings
    except SettingsError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    if args == ["--check"]:
        return 0
    server, internal_port = settings.server, str(settings.internal_port)
    base_env = {**os.environ, "INTERNAL_API_PORT": internal_port}
    gunicorn = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]

    try:
        app = _load_app()  # built once, for the hint now and the sweeper later
    except SettingsError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    if app is not None:
        _first_run_hint(app, server.url)
    children = [
        subprocess.Popen(gunicorn + ["masking.web.serve:internal_api_app()"], cwd=ROOT,
                         env={**base_env, "HOST": "127.0.0.1", "PORT": internal_port}),
        subprocess.Popen(gunicorn, cwd=ROOT, env={**base_env, "HOST": server.host, "PORT": str(server.port)}),
    ]
    stopping = {"signal": None}

    def forward(signum, _frame):
        stopping["signal"] = signum
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    stop_sweeping = threading.Event()
    if settings.sweep_interval and app is not None:
        threading.Thread(target=_sweep_every, args=(app, settings.sweep_interval, stop_sweeping), name="sweeper",
                         daemon=True).start()

    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        stop_sweeping.set()
        for child in children:  # one exited (or we were told to stop): stop the other too
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if stopping["signal"] is not None:
        return 0
    codes = [child.returncode for child in children]
    return next((code for code in codes if code), 1)


if __name__ == "__main__":
    sys.exit(main())
