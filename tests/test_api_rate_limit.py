"""API_RATE_LIMIT: calls per API account, refused with 1511 / HTTP 429 / Retry-After when over.

On both databases (the limit is counted outside them, but the calls it lets through or stops
are real). The shared store is the real Redis of the machine (CI starts one at 127.0.0.1:6379).
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from datetime import datetime

import pytest

from masking import explain
from masking.models import Masking
from masking.web.service_client import ensure_builtin_account
from tests.api_helpers import configured_app, count
from tests.conftest import PARTIES, POOL, add_pool, make_account

REDIS_URL = "redis://127.0.0.1:6379/15"
LIST = "/api/v2/Masking/list"
SET = "/api/v2/Masking/set"


@pytest.fixture
def limited(database_url, clock):
    with configured_app(database_url, clock, API_RATE_LIMIT="3/minute") as application:
        yield application


def _list(client, account: dict):
    return client.post(LIST, json=account)


def _refusal(response) -> int:
    """The 1511 envelope, exactly; returns its retry_after."""
    assert response.status_code == 429
    body = response.get_json()
    wait = body["data"]["retry_after"]
    assert body == {"status": "error", "message": "Too many requests", "code": 1511,
                    "detail": f"this account may make 3 per 1 minute; try again in {wait} s",
                    "data": {"retry_after": wait}}
    assert response.headers["Retry-After"] == str(wait) and 1 <= wait <= 60
    assert list(body) == ["status", "message", "code", "detail", "data"]  # the vendor's key order
    return wait


def test_the_fourth_call_in_a_minute_is_refused_and_other_accounts_go_on(limited):
    client = limited.test_client()
    acme, zen = make_account(limited, "Acme"), make_account(limited, "Zen")
    for _ in range(3):
        assert _list(client, acme).get_json()["status"] == "success"
    _refusal(_list(client, acme))
    _refusal(client.post("/api/v2/Masking/get", json={**acme, "id": 1}))  # every endpoint counts
    assert _list(client, zen).get_json()["status"] == "success"  # per account


def test_a_refused_set_writes_nothing(limited, clock):
    add_pool(limited, POOL[0])
    client = limited.test_client()
    acme = make_account(limited, "Acme")
    for _ in range(3):
        _list(client, acme)
    _refusal(client.post(SET, json={**acme, "m1": PARTIES[0], "m2": PARTIES[1]}))
    assert count(limited, Masking) == 0


def test_wrong_credentials_do_not_spend_the_accounts_allowance(limited):
    client = limited.test_client()
    acme = make_account(limited, "Acme")
    for _ in range(10):  # someone guessing, or a typo: refused for the credentials, not counted
        assert client.post(LIST, json={**acme, "token": "wrong"}).get_json()["code"] == 1014
    for _ in range(3):
        assert _list(client, acme).get_json()["status"] == "success"


def test_logging_in_counts_and_so_does_an_ssid(limited):
    client = limited.test_client()
    acme = make_account(limited, "Acme")
    ssid = client.post("/api/v2/Auth/login", json=acme).get_json()["data"]["ssid"]
    assert _list(client, {"ssid": ssid}).get_json()["status"] == "success"
    assert _list(client, acme).get_json()["status"] == "success"
    _refusal(_list(client, {"ssid": ssid}))  # the ssid's calls are the account's
    _refusal(client.post("/api/v2/Auth/login", json=acme))


def test_the_dashboards_own_account_is_not_limited(limited):
    client = limited.test_client()
    with limited.app_context():
        user_id, token = ensure_builtin_account()
    for _ in range(6):
        assert _list(client, {"userId": user_id, "token": token}).get_json()["status"] == "success"


def test_off_by_default(app, client):
    acme = make_account(app, "Acme")
    assert all(_list(client, acme).status_code == 200 for _ in range(30))


def test_retry_after_is_long_enough(database_url, clock):
    with configured_app(database_url, clock, API_RATE_LIMIT="2/second") as application:
        client = application.test_client()
        acme = make_account(application, "Acme")
        assert [_list(client, acme).status_code for _ in range(2)] == [200, 200]
        # The window slides: on a machine busy enough to take a second between calls, the third
        # may go through. Call until refused; a few calls a second must be refused soon.
        answers = [_list(client, acme) for _ in range(10)]
        refused = next(a for a in answers if a.status_code == 429)
        time.sleep(int(refused.headers["Retry-After"]))
        assert _list(client, acme).status_code == 200  # waiting as told is enough


def test_the_openapi_document_describes_the_429(app, client):
    document = client.get("/api/v2/openapi.json").get_json()
    answer = document["paths"]["/api/v2/Masking/set"]["post"]["responses"]["429"]
    assert "Retry-After" in answer["headers"] and "1511" in answer["description"]
    assert answer["content"]["application/json"]["examples"]["error_1511"]["value"]["data"] == {"retry_after": 1}


def test_the_dashboard_says_it_in_words():
    problem = explain.Problem(explain.SERVICE_ERROR, 1511, "Too many requests", "over", {"retry_after": 12})
    text = explain.explain(problem, zone=None, now=datetime(2030, 1, 1)).text
    assert text.startswith("The masking service is receiving more requests from the dashboard than its limit")
    assert "Nothing was masked. Try again in 12 seconds" in text


# ---------------------------------------------------------------- where the counts live

def _redis_or_skip():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have Redis at {REDIS_URL}: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}")


def test_redis_counts_once_for_every_process(database_url, clock):
    """Two apps stand for two worker processes (or hosts): with Redis they share one count; with
    memory:// each counts alone, which the README states."""
    _redis_or_skip()
    with ExitStack() as stack:
        first, second = (stack.enter_context(configured_app(database_url, clock, API_RATE_LIMIT="3/minute",
                                                            API_RATE_LIMIT_STORAGE=REDIS_URL)) for _ in range(2))
        acme = make_account(first, "Acme")  # a new random userId: no count left from another run
        one, two = first.test_client(), second.test_client()
        assert [_list(c, acme).status_code for c in (one, two, one)] == [200, 200, 200]
        _refusal(_list(two, acme))
        _refusal(_list(one, acme))

    with ExitStack() as stack:
        first, second = (stack.enter_context(configured_app(database_url, clock, API_RATE_LIMIT="3/minute"))
                         for _ in range(2))
        zen = make_account(first, "Zen")
        calls = [first.test_client()] * 3 + [second.test_client()] * 3
        assert [_list(c, zen).status_code for c in calls] == [200] * 6


def test_a_store_that_does_not_answer_lets_calls_through(database_url, clock, caplog):
    down = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with configured_app(database_url, clock, API_RATE_LIMIT="1/minute", API_RATE_LIMIT_STORAGE=down) as application:
        client = application.test_client()
        acme = make_account(application, "Acme")
        with caplog.at_level(logging.WARNING, logger="masking.rate_limit"):
            assert [_list(client, acme).status_code for _ in range(3)] == [200, 200, 200]
        warnings = [r.getMessage() for r in caplog.records if r.name == "masking.rate_limit"]
        assert warnings == ["rate limit not applied: its store (redis) failed: ConnectionError"]  # once a minute


def test_an_http_clients_retry_helper_waits_and_gets_through(app, database_url):
    """Served as `make run` serves it: urllib3's Retry reads our 429 and Retry-After, waits, sends again."""
    import json

    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    from tests.conftest import LiveServer

    acme = make_account(app, "Acme")
    # One worker: memory:// counts per process, and this test counts exactly.
    # A 2-second window: the retried call is refused first however slow the machine is between calls.
    server = LiveServer(database_url, {"API_RATE_LIMIT": "2 per 2 seconds", "WEB_CONCURRENCY": "1"})
    try:
        plain = requests.Session()
        # Until refused: on a busy machine a slow call may let the window slide on (as in
        # test_retry_after_is_long_enough); the limit itself is counted exactly elsewhere.
        answers = []
        while len(answers) < 6 and (not answers or answers[-1].status_code == 200):
            answers.append(plain.post(server.url + LIST, data=json.dumps(acme), timeout=10))
        assert [a.status_code for a in answers[:2]] == [200, 200] and answers[-1].status_code == 429
        assert answers[-1].json()["code"] == 1511 and answers[-1].headers["Retry-After"] in ("1", "2")

        patient = requests.Session()
        patient.mount("http://", HTTPAdapter(max_retries=Retry(total=3, status_forcelist=[429],
                                                               allowed_methods=["POST"])))
        answer = patient.post(server.url + LIST, data=json.dumps(acme), timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] == "success"
        assert [h.status for h in answer.raw.retries.history][:1] == [429]  # refused, waited, sent again
    finally:
        server.stop()
