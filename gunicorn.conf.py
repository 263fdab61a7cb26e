"""Gunicorn settings for `make run` and the benchmarks. Every value can be set from the environment."""
import os

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
