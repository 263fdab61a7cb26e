"""A bad server setting given to `make run` (the launcher) or to gunicorn with gunicorn.conf.py
(as the launcher starts it, and the benchmarks and tests use it) stops the process with one
line on stderr and a non-zero status: never a traceback. The values themselves are tested
in test_server_settings.py; these two only prove the real processes behave."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SETTINGS = ("HOST", "PORT", "INTERNAL_API_PORT", "WEB_CONCURRENCY", "WEB_THREADS", "WEB_TIMEOUT",
            "SWEEP_INTERVAL_SECONDS")


def run(command: list[str], **bad: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS}
    return subprocess.run([sys.executable, *command], cwd=ROOT, env={**env, **bad}, capture_output=True,
                          text=True, timeout=60)


def test_the_launcher_refuses_a_bad_port_with_one_line():
    done = run(["-m", "masking.web.serve"], PORT="abc")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout == ""
    assert done.stderr == "serve: PORT must be a port number from 1 to 65535, got 'abc'\n"


def test_gunicorn_refuses_bad_threads_with_one_line():
    done = run(["-m", "gunicorn", "--config", "gunicorn.conf.py"], WEB_THREADS="abc")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr == "gunicorn.conf.py: WEB_THREADS must be a whole number of threads per worker from 1 to 256, " \
                          "got 'abc'\n"
