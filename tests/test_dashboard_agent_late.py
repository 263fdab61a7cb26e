"""The agent's page when the service is slow or two tabs act at once, against the REAL API
(gunicorn, ``live_server``) on the test's database; nothing is mocked.

A slow service is made for real: the test holds the database lock a big write (an admin's
pool import) would hold, so the service's write waits while the dashboard's call times out;
then the lock is let go and the service carries the call out, late. On SQLite that is the
write lock (``BEGIN IMMEDIATE`` on the file); on PostgreSQL an EXCLUSIVE lock on
``maskings``, which lets reads go on and makes every write of a masking wait.
"""
from __future__ import annotations

import re
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import selectinload

from masking.client import MaskingClient
from masking.db import is_sqlite, normalise_database_url
from masking.humanize import parse_iso_utc
from masking.models import MaskAttempt
from masking.web.extensions import db
from tests.api_helpers import configured_app
from tests.conftest import PARTIES, POOL, add_pool, make_account
from tests.dashboard_helpers import HX, logged_in_client, text_of

READ_TIMEOUT = 1  # seconds the dashboard waits for the service in these tests
HOLD = 2.5  # seconds the lock is held: the dashboard has given up by then, the service has not


class DatabaseLock:
    """Holds the lock that makes the service's writes of maskings wait, as a long write would."""

    def __init__(self, database_url: str):
        self.sqlite = is_sqlite(database_url)
        if self.sqlite:
            self.conn = sqlite3.connect(make_url(database_url).database, isolation_level=None, timeout=30,
                                        check_same_thread=False)  # let go by a timer thread
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(normalise_database_url(database_url))
            self.conn = self.engine.connect()
            self.conn.execute(text("LOCK TABLE maskings IN EXCLUSIVE MODE"))
        self.released = False
        self.guard = threading.Lock()

    def waiters(self) -> int | None:
        """How many sessions wait for this lock (PostgreSQL; None on SQLite, which cannot say)."""
        if self.sqlite:
            return None
        with self.engine.connect() as other:
            return other.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                     "AND relation = 'maskings'::regclass"))

    def wait_for_waiters(self, count: int) -> None:
        """Until ``count`` writers wait for the lock (PostgreSQL), or a generous moment (SQLite)."""
        if self.sqlite:  # each request reaches the service in milliseconds; give them far more
            time.sleep(1.5)
            return
        deadline = time.monotonic() + 10
        while self.waiters() < count:
            assert time.monotonic() < deadline, "the service's writes never reached the lock"
            time.sleep(0.02)

    def release(self) -> None:
        with self.guard:
            if self.released:
                return
            if self.sqlite:
                self.conn.execute("ROLLBACK")
                self.conn.close()
            else:
                self.conn.rollback()
                self.conn.close()
                self.engine.dispose()
            self.released = True

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.release)
        timer.start()
        return timer


@pytest.fixture
def service(app, live_server):
    """The real API (gunicorn) with an API account and a pool of three numbers."""
    add_pool(app, *POOL[:3])
    return {"url": live_server.url, **make_account(app, "dashboard-test")}


@pytest.fixture
def api(service):
    with MaskingClient(service["url"], user_id=service["userId"], token=service["token"]) as client:
        yield client


def _dashboard(service, database_url, clock, read_timeout: float):
    return configured_app(database_url, clock, SECRET_KEY="dash-secret", WTF_CSRF_ENABLED=False,
                          MASKING_API_URL=service["url"], MASKING_API_USER_ID=service["userId"],
                          MASKING_API_TOKEN=service["token"], MASKING_API_READ_TIMEOUT=str(read_timeout))


@pytest.fixture
def dash(service, database_url, clock):
    """The dashboard app, pointed at the live API, giving up on it after READ_TIMEOUT seconds."""
    with _dashboard(service, database_url, clock, READ_TIMEOUT) as application:
        yield application


@pytest.fixture
def patient_dash(service, database_url, clock):
    """The same, waiting for the service long enough to hear its answers while a lock is held."""
    with _dashboard(service, database_url, clock, 20) as application:
        yield application


def _mask(client, m1, m2, **fields):
    response = client.post("/masks", data={"m1": m1, "m2": m2, "expiry": "60", **fields}, headers=HX)
    assert response.status_code == 200
    return response


def _slowly(database_url, request):
    """``request()`` while the database is held for HOLD seconds: its answer (the dashboard has
    given up on the service by then, and recorded so once the lock is let go)."""
    lock = DatabaseLock(database_url)
    timer = lock.release_after(HOLD)
    try:
        started = time.monotonic()
        response = request()
        assert time.monotonic() - started < HOLD + 5
        return response
    finally:
        timer.join()
        lock.release()


def _attempts(app):
    with app.app_context():
        return db.session.scalars(select(MaskAttempt).options(selectinload(MaskAttempt.ended_by))
                                  .order_by(MaskAttempt.id)).all()


def _wait(predicate, what: str, seconds: float = 15):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"the service never {what}"
        time.sleep(0.05)


def _made_late(api, m1, m2) -> dict:
    """The masking the service made after the dashboard gave up."""
    return _wait(lambda: (api.list(m1=m1, m2=m2, status="active")["maskings"] or [None])[0], "made the masking")


def _row_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="mask-(\d+)"', html)]


# ---------------------------------------------------------------- a set that timed out

def _timed_out_set(dash, database_url, client, m1, m2, **fields):
    html = _slowly(database_url, lambda: _mask(client, m1, m2, **fields)).get_data(as_text=True)
    assert f"did not answer within {READ_TIMEOUT} seconds" in text_of(html)
    assert f'value="{m1}"' in html and f'value="{m2}"' in html  # the typed input is kept
    attempt = _attempts(dash)[-1]
    assert (attempt.action, attempt.outcome, attempt.masking_id) == ("set", "unavailable", None)
    return attempt


def test_a_mask_made_after_the_timeout_appears_in_my_active_masks(dash, database_url, api):
    client = logged_in_client(dash)
    attempt = _timed_out_set(dash, database_url, client, "98765 43200", "98765 43201", event_id="T-7")
    masking = _made_late(api, PARTIES[0], PARTIES[1])

    html = client.get("/masks/mine", headers=HX).get_data(as_text=True)  # the poll
    assert _row_ids(html) == [attempt.id]
    assert "timed out, but the masking service made the mask after all" in text_of(html)
    assert 'data-autofocus' not in html  # a poll must not move the agent's focus
    [row] = _attempts(dash)
    assert (row.outcome, row.masking_id, row.mask) == ("success", masking["id"], masking["mask"])
    assert row.expires_at == parse_iso_utc(masking["expires_at"]) and row.event_id == "T-7"
    assert row.error_message.startswith("timeout")  # how it went stays in the record

    # Taken in once: the next poll has nothing new to say.
    again = client.get("/masks/mine", headers=HX).get_data(as_text=True)
    assert _row_ids(again) == [attempt.id] and "after all" not in again

    # The agent can manage it like any other mask.
    ended = client.post(f"/masks/{attempt.id}/end", headers=HX).get_data(as_text=True)
    assert "has ended" in ended and _row_ids(ended) == []
    assert api.get(masking["id"])["status"] == "ended"


def test_a_retry_answered_already_masked_takes_in_the_earlier_request(dash, database_url, api):
    client = logged_in_client(dash)
    attempt = _timed_out_set(dash, database_url, client, PARTIES[0], PARTIES[1], event_id="T-8")
    masking = _made_late(api, PARTIES[0], PARTIES[1])

    response = _mask(client, "+91 98765 43201", "98765 43200", event_id="T-8")  # the same pair, either order
    html = response.get_data(as_text=True)
    text = text_of(html)
    assert response.headers["HX-Trigger"] == "masks-changed"
    assert re.search(r"These numbers \(\+91 98765 43201 and \+91 98765 43200\)|These numbers \(\+91 98765 43200 and "
                     r"\+91 98765 43201\)", text), text
    assert re.search(r"were already masked by your earlier request that timed out: \+91 80 4123 450\d, until "
                     r"[0-9: A-Za-z]+ \(in (59 min|1 h)\)\.", text), text
    assert "Already masked" in text and 'class="mask-number"' in html and 'role="alert"' not in html
    assert 'value="+91 98765 43201"' in html and 'value="98765 43200"' in html and 'value="T-8"' in html
    first, retry = _attempts(dash)
    assert (first.id, first.outcome, first.masking_id) == (attempt.id, "success", masking["id"])
    assert (retry.outcome, retry.error_code, retry.masking_id) == ("error", 1503, None)  # what the service said
    assert _row_ids(client.get("/masks/mine", headers=HX).get_data(as_text=True)) == [attempt.id]


def test_another_agents_late_mask_is_never_adopted(dash, database_url, api):
    asha = logged_in_client(dash, "agent", "asha")
    ravi = logged_in_client(dash, "agent", "ravi")
    attempt = _timed_out_set(dash, database_url, asha, PARTIES[0], PARTIES[1])
    _made_late(api, PARTIES[0], PARTIES[1])

    # Ravi masks the same pair: the service says it is masked; it is Asha's, not his.
    text = text_of(_mask(ravi, PARTIES[0], PARTIES[1]).get_data(as_text=True))
    assert "are already masked behind" in text and "your earlier request" not in text
    assert _row_ids(ravi.get("/masks/mine", headers=HX).get_data(as_text=True)) == []
    assert _row_ids(asha.get("/masks/mine", headers=HX).get_data(as_text=True)) == [attempt.id]
    assert _row_ids(ravi.get("/masks/mine", headers=HX).get_data(as_text=True)) == []


def test_when_two_agents_timed_out_on_one_pair_nobody_adopts_it(dash, database_url, api):
    asha = logged_in_client(dash, "agent", "asha")
    ravi = logged_in_client(dash, "agent", "ravi")

    def both():
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda client: _mask(client, PARTIES[0], PARTIES[1]), (asha, ravi)))

    answers = _slowly(database_url, both)
    assert all("did not answer" in text_of(a.get_data(as_text=True)) for a in answers)
    _made_late(api, PARTIES[0], PARTIES[1])
    # Either request may have made it: neither agent is told it is theirs.
    for client in (asha, ravi, asha):
        assert _row_ids(client.get("/masks/mine", headers=HX).get_data(as_text=True)) == []
        assert "your earlier request" not in text_of(_mask(client, PARTIES[1], PARTIES[0]).get_data(as_text=True))
    assert all(a.masking_id is None for a in _attempts(dash))


def test_a_service_that_stays_silent_costs_my_active_masks_one_wait_at_most(app, database_url, clock):
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        with configured_app(database_url, clock, SECRET_KEY="dash-secret", WTF_CSRF_ENABLED=False,
                            MASKING_API_URL=f"http://127.0.0.1:{silent.getsockname()[1]}", MASKING_API_USER_ID="u1",
                            MASKING_API_TOKEN="t", MASKING_API_READ_TIMEOUT="0.5") as dashboard:
            client = logged_in_client(dashboard)
            for i in range(3):
                answer = _mask(client, PARTIES[2 * i], PARTIES[2 * i + 1]).get_data(as_text=True)
                assert "did not answer" in text_of(answer)
            assert len(_attempts(dashboard)) == 3
            started = time.monotonic()
            html = client.get("/masks/mine", headers=HX).get_data(as_text=True)
            # Three timed-out requests to look for, but the first question that goes unanswered ends the
            # looking for this refresh: one wait of 0.5 s, not three.
            assert time.monotonic() - started < 1.2
            assert "No active masks" in text_of(html)
    finally:
        silent.close()


# ---------------------------------------------------------------- an extend or end that timed out

def test_an_extend_carried_out_after_the_timeout_moves_the_expiry(dash, database_url, api, clock):
    client = logged_in_client(dash)
    _mask(client, PARTIES[0], PARTIES[1], expiry="15")
    [mask] = _attempts(dash)
    html = _slowly(database_url, lambda: client.post(f"/masks/{mask.id}/extend", data={"minutes": "240"},
                                                       headers=HX)).get_data(as_text=True)
    assert f"did not answer within {READ_TIMEOUT} seconds" in text_of(html)
    served = _wait(lambda: (m := api.get(mask.masking_id)) and m["expires_at"] != mask.expires_at.isoformat() + "Z"
                   and m, "extended the masking")

    html = client.get("/masks/mine", headers=HX).get_data(as_text=True)
    assert _row_ids(html) == [mask.id] and "at the masking service" in text_of(html)
    row, extend = _attempts(dash)
    assert row.expires_at == parse_iso_utc(served["expires_at"]) > clock() + timedelta(minutes=239)
    assert (extend.action, extend.outcome, extend.target_id, extend.expires_at) == (
        "extend", "success", mask.id, row.expires_at)
    clock.advance(minutes=16)  # past the old expiry: still routing calls, so still on the list
    assert _row_ids(client.get("/masks/mine", headers=HX).get_data(as_text=True)) == [mask.id]


def test_an_end_carried_out_after_the_timeout_takes_the_mask_off_the_list(dash, database_url, api):
    client = logged_in_client(dash)
    _mask(client, PARTIES[0], PARTIES[1])
    [mask] = _attempts(dash)
    html = _slowly(database_url, lambda: client.post(f"/masks/{mask.id}/end", headers=HX)).get_data(as_text=True)
    assert "did not answer" in text_of(html) and _row_ids(html) == [mask.id]
    _wait(lambda: api.get(mask.masking_id)["status"] == "ended", "ended the masking")

    html = client.get("/masks/mine", headers=HX).get_data(as_text=True)
    assert _row_ids(html) == [] and "has ended at the masking service" in text_of(html)
    row, end = _attempts(dash)
    assert row.ended_at is not None and row.ended_by.username == "agent1" and row.end_note is None
    assert (end.action, end.outcome, end.target_id) == ("unset", "success", mask.id)


# ---------------------------------------------------------------- two tabs end one mask

def test_ending_one_mask_from_two_tabs_leaves_one_consistent_record(patient_dash, database_url, api):
    dash = patient_dash
    first_tab = logged_in_client(dash)
    _mask(first_tab, PARTIES[0], PARTIES[1])
    [mask] = _attempts(dash)
    second_tab = dash.test_client()  # the same agent's session, in another tab
    cookie = first_tab.get_cookie(dash.config["SESSION_COOKIE_NAME"])
    second_tab.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)

    lock = DatabaseLock(database_url)
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(tab.post, f"/masks/{mask.id}/end", headers=HX) for tab in (first_tab, second_tab)]
            lock.wait_for_waiters(2)  # both requests wait at the service
            lock.release()
            pages = sorted((f.result().get_data(as_text=True) for f in futures), key=text_of)
    finally:
        lock.release()

    assert api.get(mask.masking_id)["status"] == "ended"
    row, *history = _attempts(dash)
    assert (row.ended_at is not None, row.ended_by and row.ended_by.username, row.end_note) == (True, "agent1", None)
    # One end, and no failure a supervisor would have to explain.
    assert [(a.action, a.outcome, a.target_id) for a in history] == [("unset", "success", mask.id)]
    # The tab that lost the race is told the mask has ended, not that something went wrong.
    answers = [text_of(page) for page in pages]
    assert "The mask on +91 80 4123 450" in answers[0] and "has already ended." in answers[0]
    assert re.search(r"The mask on \+91 80 4123 450\d has ended\.", answers[1]), answers
    assert all("no longer active" not in text_of(page) and 'role="alert"' not in page for page in pages)

