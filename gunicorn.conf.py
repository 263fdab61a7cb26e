"""Gunicorn settings for `make run` and the benchmarks. Every value can be set from the environment.

HOST, PORT, WEB_CONCURRENCY, WEB_THREADS and WEB_TIMEOUT are checked (masking/server_settings.py),
and so are the app's own settings (masking/settings.py, as create_app checks them in every worker):
a bad one stops gunicorn with one line and exit status 2, before any worker starts. gunicorn lets
SystemExit from a config file through (it prints a traceback only for an Exception).
"""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)
from masking import server_settings as _server_settings, settings as _app_settings  # noqa: E402

try:
    _server = _server_settings.for_gunicorn(os.environ)
    _app_settings.check_environment(os.environ)
except _server_settings.SettingsError as _refusal:
    print(f"gunicorn.conf.py: {_refusal}", file=sys.stderr)
    raise SystemExit(2) from None

bind = _server.bind
wsgi_app = "app:create_app()"
worker_class = "gthread"
workers = _server.workers
threads = _server.threads
timeout = _server.timeout
keepalive = 5
accesslog = None  # the API logs one line per call itself, with phone numbers hidden
errorlog = "-"
loglevel = _app_settings.log_level(os.environ.get("LOG_LEVEL")).lower()

# The vendor's client examples send an empty `Content-Length:` header with their body;
# gunicorn alone answers those 400. The shim (masking/gunicorn_compat.py, no Flask) reads
# such a body as sent and closes the connection after it. Installed here, in the master,
# so every worker inherits it.
from masking import gunicorn_compat  # noqa: E402 (after the check: it reads API_MAX_BODY_BYTES)

gunicorn_compat.install()
# No runtime control socket: its default path is shared, and several servers (tests,
# benchmarks, the dashboard's internal API server) run side by side on one machine.
control_socket_disable = True
