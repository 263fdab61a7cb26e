"""The masking invariants under real concurrency: several OS processes call the live server
(gunicorn as `make run` serves it: 2 worker processes x 16 threads) at once, on a pool of
three numbers and a handful of parties, so they fight over the same numbers and pairs.
Then the database itself is read back and checked:

(R) no (party, masking number) is in two live maskings;
(P) no unordered pair {m1, m2} has two live maskings;
and nothing half-written: every success the clients saw is one stored masking with its two
routes and its pair row, and no refused call left a masking behind.

Every response must be success, or 1503 / 1505 for set (1506 for unset): never a 5xx, a
1504 or a 1009. Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from datetime import datetime
from itertools import combinations

import pytest
from sqlalchemy import create_engine, text

from masking.clock import utcnow
from masking.db import normalise_database_url
from tests.conftest import PARTIES, LiveServer

PROCESSES = 6
CALLS_PER_PROCESS = 20
TIMEOUT = 120  # seconds, only so a broken run cannot hang the suite

# One client process: log in, wait for the go signal on stdin (so all start together),
# make its calls, print [[endpoint, http status, reply], ...] as JSON.
WORKER = r"""
import json, sys, urllib.error, urllib.request

base, account, calls = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])

def post(endpoint, body):
    request = urllib.request.Request(base + "/api/v2/" + endpoint, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")

print("ready", flush=True)
sys.stdin.readline()
status, login = post("Auth/login", account)
results = [["Auth/login", status, login]]
ssid = login.get("data", {}).get("ssid") if isinstance(login, dict) else None
for endpoint, body in calls:
    status, reply = post(endpoint, dict(body, ssid=ssid))
    results.append([endpoint, status, reply])
print(json.dumps(results), flush=True)
"""


def run_clients(base_url: str, account: dict, plans: list[list]) -> list[list]:
    """Start one process per plan, release them together, return all their results."""
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, base_url, json.dumps(account), json.dumps(plan)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for plan in plans
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        for process in processes:  # go
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in processes:
            out, _ = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0
            results.extend(json.loads(out))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def set_call(a: str, b: str) -> list:
    return ["Masking/set", {"m1": a, "m2": b, "expiry_duration": 60}]


def unset_call(a: str, b: str) -> list:
    return ["Masking/unset", {"m1": a, "m2": b}]


def check_responses(results: list[list]) -> dict[int, str]:
    """Every reply is an allowed outcome; returns {masking id: mask} of the successful sets."""
    allowed = {"Auth/login": set(), "Masking/set": {1503, 1505}, "Masking/unset": {1506}}
    created = {}
    for endpoint, status, reply in results:
        assert status == 200, (endpoint, status, reply)
        if reply["status"] == "success":
            if endpoint == "Masking/set":
                created[reply["data"]["id"]] = reply["data"]["mask"]
        else:
            assert reply["code"] in allowed[endpoint], (endpoint, reply)
    return created


def _instant(value) -> datetime:
    """A DATETIME column read through plain SQL: SQLite hands back its ISO text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def check_database(database_url: str, created: dict[int, str], pool: list[str]) -> list:
    """The invariants, read straight from the tables. Returns the live maskings."""
    engine = create_engine(normalise_database_url(database_url))
    now = utcnow()
    try:
        with engine.connect() as conn:
            maskings = conn.execute(text("SELECT id, mask_number, m1, m2, ended_at, expires_at FROM maskings")).all()
            routes = conn.execute(text("SELECT masking_id, mask_number, party, other_party FROM routes")).all()
            pairs = conn.execute(text("SELECT masking_id, party_low, party_high FROM active_pairs")).all()
    finally:
        engine.dispose()

    # Nothing half-written, nothing invented: the stored maskings are exactly the successes.
    assert {row.id: row.mask_number for row in maskings} == created
    assert all(row.mask_number in pool for row in maskings)

    live = [row for row in maskings if row.ended_at is None and _instant(row.expires_at) > now]
    # (R) one live masking per (party, masking number)
    leases = Counter((party, row.mask_number) for row in live for party in (row.m1, row.m2))
    assert max(leases.values(), default=1) == 1, [lease for lease, n in leases.items() if n > 1]
    # (P) one live masking per unordered pair
    couples = Counter(frozenset((row.m1, row.m2)) for row in live)
    assert max(couples.values(), default=1) == 1, [sorted(c) for c, n in couples.items() if n > 1]

    # The lease tables agree: two routes and one pair row for each live masking.
    for row in live:
        assert sorted((r.party, r.other_party, r.mask_number) for r in routes if r.masking_id == row.id) == \
            sorted([(row.m1, row.m2, row.mask_number), (row.m2, row.m1, row.mask_number)])
        assert [(p.party_low, p.party_high) for p in pairs if p.masking_id == row.id] == [tuple(sorted((row.m1, row.m2)))]
    ended = {row.id for row in maskings if row.ended_at is not None}
    assert not [p for p in pairs if p.masking_id in ended]
    return live


def test_concurrent_sets_keep_the_invariants(app, database_url, live_server, account, pool_of_three):
    parties = PARTIES[:5]  # 10 pairs, every party in 4 of them, 3 numbers to share
    pairs = list(combinations(parties, 2))
    plans = []
    for worker in range(PROCESSES):
        rng = random.Random(worker)
        plans.append([set_call(*(pair if rng.random() < 0.5 else pair[::-1]))
                      for pair in (rng.choice(pairs) for _ in range(CALLS_PER_PROCESS))])

    results = run_clients(live_server.url, account, plans)
    assert len(results) == PROCESSES * (CALLS_PER_PROCESS + 1)
    created = check_responses(results)
    live = check_database(database_url, created, pool_of_three)
    assert live, "some sets must have succeeded"
    codes = Counter(reply.get("code") for endpoint, _, reply in results if endpoint == "Masking/set")
    assert codes[1503] > 0  # the same pairs were asked for again and again: refused, not duplicated


@pytest.fixture
def churning_server(app, database_url):
    """The live server without cool-off, so ended maskings free their numbers at once."""
    server = LiveServer(database_url, extra_env={"COOLOFF_SECONDS": "0"})
    yield server
    server.stop()


def test_concurrent_sets_and_unsets_keep_the_invariants(app, database_url, churning_server, account,
                                                        pool_of_three):
    parties = PARTIES[:5]
    pairs = list(combinations(parties, 2))
    plans = []
    for worker in range(PROCESSES):
        rng = random.Random(100 + worker)
        plan = []
        for _ in range(CALLS_PER_PROCESS):
            a, b = rng.choice(pairs)
            plan.append(set_call(a, b) if rng.random() < 0.6 else unset_call(b, a))
        plans.append(plan)

    results = run_clients(churning_server.url, account, plans)
    assert len(results) == PROCESSES * (CALLS_PER_PROCESS + 1)
    created = check_responses(results)
    check_database(database_url, created, pool_of_three)
    ends = [reply for endpoint, _, reply in results if endpoint == "Masking/unset" and reply["status"] == "success"]
    assert ends, "some unsets must have ended maskings"
