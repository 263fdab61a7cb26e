"""The launcher of `make run` sweeps dead leases on its own every SWEEP_INTERVAL_SECONDS, and
refuses a setting that is not a whole number of seconds before it starts anything."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import requests

from masking.models import ActivePair, Route
from tests.api_helpers import count
from tests.conftest import PARTIES, ROOT, LiveStack


def test_the_launcher_sweeps_leases_whose_cool_off_is_over(app, database_url, account, pool_of_three):
    stack = LiveStack(database_url, {"SWEEP_INTERVAL_SECONDS": "1", "COOLOFF_SECONDS": "0"})
    try:
        def call(path: str, body: dict) -> dict:
            reply = requests.post(f"{stack.url}/api/v2/Masking/{path}", json={**account, **body}, timeout=30).json()
            assert reply["status"] == "success", reply
            return reply["data"]

        ended = call("set", {"m1": PARTIES[0], "m2": PARTIES[1]})
        call("set", {"m1": PARTIES[2], "m2": PARTIES[3]})
        call("unset", {"mask": ended["mask"], "m1": PARTIES[0], "m2": PARTIES[1]})  # no cool-off: dead at once
        deadline = time.monotonic() + 20
        while count(app, Route) > 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count(app, Route) == 2 and count(app, ActivePair) == 1  # the live masking's leases stay
        call("set", {"m1": PARTIES[0], "m2": PARTIES[1]})  # and it still allocates
    finally:
        stack.stop()


def test_a_bad_sweep_interval_stops_the_launcher_with_one_line():
    """The real process; every kind of bad value is in test_server_settings.py."""
    bad = "ten"
    env = {**os.environ, "SWEEP_INTERVAL_SECONDS": bad, "PORT": "1"}  # nothing may start
    done = subprocess.run([sys.executable, "-m", "masking.web.serve"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("serve: SWEEP_INTERVAL_SECONDS must be a whole number of seconds from 0 (never) "
                                   f"to 604800, got {bad!r}")
