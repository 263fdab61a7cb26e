"""Gunicorn settings for `make run` and the benchmarks. Every value can be set from the environment."""
import os
import sys

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
wsgi_app = "app:create_app()"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "16"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
keepalive = 5
accesslog = None  # the API logs one line per call itself, with phone numbers hidden
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# The vendor's client examples send an empty `Content-Length:` header with their body;
# gunicorn alone answers those 400. The shim (masking/gunicorn_compat.py, no Flask) reads
# such a body as sent and closes the connection after it. Installed here, in the master,
# so every worker inherits it.
_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)
from masking import gunicorn_compat  # noqa: E402

gunicorn_compat.install()
# No runtime control socket: its default path is shared, and several servers (tests,
# benchmarks, the dashboard's internal API server) run side by side on one machine.
control_socket_disable = True
