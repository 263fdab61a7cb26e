"""The agent's page: the form, inline checks, every answer of the service in plain words,
My active masks with End and Extend. The service is the REAL API over HTTP (gunicorn via
the ``live_server`` fixture, or the two-master launcher of ``make run``); nothing is mocked."""
from __future__ import annotations

import html as html_module
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select

from masking import humanize
from masking.client import MaskingClient
from masking.models import ApiAccount, MaskAttempt
from masking.web.extensions import db
from masking.web.service_client import BUILTIN_USER_ID
from tests.api_helpers import configured_app
from tests.conftest import PARTIES, POOL, LiveStack, add_pool, free_port, make_account
from tests.dashboard_helpers import HX, PASSWORD, ROLES, assert_no_inline_code, csrf_from, logged_in_client, make_user, \
    text_of



@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF has its own tests in test_dashboard_auth.py
    return app


def _dashboard(database_url, clock, **config):
    """``with _dashboard(...) as app``: a dashboard app on the test's database (CSRF off)."""
    return configured_app(database_url, clock, SECRET_KEY="dash-secret", WTF_CSRF_ENABLED=False, **config)


@pytest.fixture
def service(app, live_server):
    """The real API (gunicorn) with an API account and a pool of three numbers."""
    add_pool(app, *POOL[:3])
    return {"url": live_server.url, **make_account(app, "dashboard-test")}


@pytest.fixture
def dash(service, database_url, clock):
    """The dashboard app, pointed at the live API with its credentials."""
    with _dashboard(database_url, clock, MASKING_API_URL=service["url"], MASKING_API_USER_ID=service["userId"],
                    MASKING_API_TOKEN=service["token"]) as application:
        yield application


def _mask(client, m1, m2, **fields):
    data = {"m1": m1, "m2": m2, "expiry": "60", **fields}
    response = client.post("/masks", data=data, headers=HX)
    assert response.status_code == 200
    return response


def _attempts(app):
    with app.app_context():
        return db.session.scalars(select(MaskAttempt).order_by(MaskAttempt.id)).all()


def _local_time(app, moment, clock) -> str:
    """How the page shows ``moment``: the time alone on the same local day, else with the date."""
    return humanize.local_time(moment, app.extensions["masking_settings"].zone, clock())


def _row_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="mask-(\d+)"', html)]


# ---------------------------------------------------------------- the page and the inline checks

def test_page_for_every_role_with_labelled_fields(app):
    for role in ROLES:
        page = logged_in_client(app, role).get("/").get_data(as_text=True)
        assert "New mask" in page and "My active masks" in page
        assert_no_inline_code(page)
        for input_id in re.findall(r'<(?:input|select)[^>]*\sid="([^"]+)"', page):
            wrapped = re.search(r'<label class="choice"><input type="radio"[^>]*id="%s"' % input_id, page)
            assert f'for="{input_id}"' in page or wrapped, f"no label for {input_id}"
        assert len(re.findall(r'<label class="choice"><input type="radio" name="expiry"', page)) == 6
        assert 'hx-post="/masks"' in page and 'hx-indicator="#mask-busy"' in page
        assert "hx-disabled-elt" in page and 'hx-sync="this:drop"' in page
        assert 'hx-trigger="every 15s, masks-changed from:body"' in page


def test_inline_phone_check_uses_the_service_validator(app):
    client = logged_in_client(app)
    ok = client.post("/validate/m1", data={"m1": " 098765-43210 "}, headers=HX)
    assert ok.status_code == 200 and "✓ +91 98765 43210" in ok.get_data(as_text=True)
    assert "<html" not in ok.get_data(as_text=True)
    bad = client.post("/validate/m2", data={"m2": "12345"}, headers=HX).get_data(as_text=True)
    assert "Second number is not a valid phone number" in bad and 'class="bad"' in bad
    assert client.post("/validate/m1", data={"m1": ""}, headers=HX).get_data(as_text=True).strip() == ""
    assert client.post("/validate/m3", data={"m3": "1"}, headers=HX).status_code == 404


def test_form_errors_keep_the_input_and_are_not_sent(app):
    client = logged_in_client(app)
    response = _mask(client, "98765 43210", "bad", expiry="custom", custom_minutes="", event_id="T-1")
    html = response.get_data(as_text=True)
    assert "Enter the number of minutes" in html
    assert 'value="98765 43210"' in html and 'value="bad"' in html and 'value="T-1"' in html
    assert 'value="custom" id="expiry-custom" checked' in html
    until = _mask(client, "9876543210", "9876543211", expiry="until", until="tomorrow")
    assert "Enter the end date and time" in until.get_data(as_text=True)
    assert _attempts(app) == []


# ---------------------------------------------------------------- against the real API

def test_create_a_mask(dash, clock):
    client = logged_in_client(dash)
    response = _mask(client, "98765 43200", "+91 98765 43201", event_id="ticket-42")
    html = response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "masks-changed"
    number = re.search(r'class="mask-number"[^>]*>([^<]+)<', html).group(1)
    assert number in ("+91 80 4123 4500", "+91 80 4123 4501", "+91 80 4123 4502")
    assert 'data-copy="+9180412345' in html and "Copy number" in html
    text = text_of(html)
    assert "+91 98765 43200 and +91 98765 43201" in text
    [attempt] = _attempts(dash)
    # '00:41', or '28 Nov 00:41' when the hour ahead crosses local midnight
    assert re.search(rf"Ends {re.escape(_local_time(dash, attempt.expires_at, clock))} \(in (59 min|1 h)\)", text), text
    assert 'value=""' in html and 'id="m1"' in html  # the form is fresh for the next mask
    assert_no_inline_code(html)

    assert (attempt.action, attempt.outcome, attempt.m1, attempt.m2) == ("set", "success", PARTIES[0], PARTIES[1])
    assert attempt.mask.startswith("+9180412345") and attempt.masking_id and attempt.event_id == "ticket-42"
    assert attempt.m1_digits == "919876543200" and attempt.requested_minutes == 60
    assert attempt.expires_at - clock() < timedelta(minutes=61)

    rows = client.get("/masks/mine", headers=HX).get_data(as_text=True)
    assert _row_ids(rows) == [attempt.id] and "ticket-42" in rows
    assert 'hx-confirm="End the mask on' in rows


@pytest.mark.parametrize("fields, expected", [
    ({"m1": PARTIES[5], "m2": "+91 98765 43205"}, "Both numbers are the same (+91 98765 43205). Enter two different numbers."),
    ({"m1": "12345", "m2": PARTIES[6]}, "First number is not a valid phone number. Check the digits; for a number "
                                        "from abroad, start with + and its country code."),
    ({"m1": "+44 12345", "m2": PARTIES[6]}, "First number is not a valid phone number. Check the digits."),
    ({"m1": PARTIES[5], "m2": "98 76 5A 43206"}, "Second number has letters in it: type digits only."),
    ({"m1": PARTIES[5], "m2": "080 4123 4500"},
     "Second number is one of our own masking numbers (+91 80 4123 4500): enter the party's own number."),
    ({"m1": PARTIES[5], "m2": PARTIES[6], "expiry": "custom", "custom_minutes": "999999"},
     "The duration must be a whole number of minutes between 1 minute and 30 days."),
    ({"m1": PARTIES[5], "m2": PARTIES[6], "expiry": "until", "until": "2020-01-01T10:00"},
     "The end time must be in the future and at most 30 days from now."),
])
def test_refusals_in_plain_words_with_input_kept(dash, fields, expected):
    client = logged_in_client(dash)
    response = _mask(client, **{"expiry": "60", "event_id": "ref-7", **fields})
    html = response.get_data(as_text=True)
    assert expected in html_module.unescape(text_of(html))
    assert 'role="alert"' in html and "HX-Trigger" not in response.headers
    assert f'value="{fields["m1"]}"' in html and f'value="{fields["m2"]}"' in html and 'value="ref-7"' in html
    [attempt] = _attempts(dash)
    assert attempt.outcome == "error" and attempt.error_code in (1000, 1501, 1502, 1507)


@pytest.mark.parametrize("m1, m2, said", [
    ("", "", {"m1": "Enter the first number.", "m2": "Enter the second number."}),
    ("", PARTIES[6], {"m1": "Enter the first number."}),
    ("12345", "", {"m1": "First number is not a valid phone number. Check the digits; for a number from abroad, "
                         "start with + and its country code.", "m2": "Enter the second number."}),
])
def test_a_missing_number_is_said_for_both_fields_before_anything_is_sent(dash, m1, m2, said):
    client = logged_in_client(dash)
    html = _mask(client, **{"m1": m1, "m2": m2, "expiry": "60", "event_id": "ref-8"}).get_data(as_text=True)
    for field, words in said.items():
        assert re.search(rf'id="{field}-check"[^>]*>\s*<span class="bad">{re.escape(words)}</span>', html), html
    assert f'value="{m1}"' in html and f'value="{m2}"' in html and 'value="ref-8"' in html
    assert _attempts(dash) == []  # an incomplete form is not an attempt


def test_pair_already_masked_and_no_number_free(dash, app, clock):
    client = logged_in_client(dash)
    _mask(client, PARTIES[0], PARTIES[1])
    until = _local_time(dash, _attempts(dash)[0].expires_at, clock)
    again = text_of(_mask(client, PARTIES[0], PARTIES[1]).get_data(as_text=True))
    assert re.search(r"These two numbers \+91 98765 43200 and \+91 98765 43201 are already masked behind "
                     rf"\+91 80 4123 450\d until {re.escape(until)} \(in (59 min|1 h)\); end that mask first or "
                     r"wait\.", again), again
    # PARTIES[0] now holds pool numbers one by one until none is left for it.
    _mask(client, PARTIES[0], PARTIES[2])
    _mask(client, PARTIES[0], PARTIES[3])
    full = text_of(_mask(client, PARTIES[0], PARTIES[4]).get_data(as_text=True))
    assert ("No masking number is free for these two numbers right now: the first number (+91 98765 43200) has "
            "masks on 3 of the 3 numbers in the pool (live, or ended in the last few minutes and not yet given out "
            "again). End one of their other masks, or ask an admin to add numbers to the pool.") in full
    codes = [a.error_code for a in _attempts(dash)]
    assert codes == [None, 1503, None, None, 1505]


def test_dashboard_credentials_problems_tell_to_contact_an_admin(app, live_server, database_url, clock):
    add_pool(app, *POOL[:1])
    read_only = make_account(app, "reader", can_write=False)
    for user_id, token, code in ((read_only["userId"], read_only["token"], 1015),
                                 (read_only["userId"], "mtk_wrong", 1014)):
        with _dashboard(database_url, clock, MASKING_API_URL=live_server.url, MASKING_API_USER_ID=user_id,
                        MASKING_API_TOKEN=token) as dashboard:
            client = logged_in_client(dashboard, username=f"agent{code}")
            text = text_of(_mask(client, PARTIES[0], PARTIES[1]).get_data(as_text=True))
            assert "Please contact an admin" in text and "Nothing was changed" in text
            assert _attempts(dashboard)[-1].error_code == code


def test_service_unreachable_is_said_clearly_and_quickly(app, database_url, clock):
    with _dashboard(database_url, clock, MASKING_API_URL=f"http://127.0.0.1:{free_port()}",
                    MASKING_API_USER_ID="u1", MASKING_API_TOKEN="t") as dashboard:
        client = logged_in_client(dashboard)
        started = time.monotonic()
        response = _mask(client, "98765 43210", "98765 43211", event_id="T-9")
        assert time.monotonic() - started < 3
        html = response.get_data(as_text=True)
        assert "The masking service cannot be reached right now. Nothing was masked." in text_of(html)
        assert 'value="98765 43210"' in html and 'value="98765 43211"' in html and 'value="T-9"' in html
        [attempt] = _attempts(dashboard)
        assert attempt.outcome == "unavailable" and attempt.error_code is None and attempt.m1 == "+919876543210"


def test_service_too_slow_is_a_timeout_message(app, database_url, clock):
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        with _dashboard(database_url, clock, MASKING_API_URL=f"http://127.0.0.1:{silent.getsockname()[1]}",
                        MASKING_API_USER_ID="u1", MASKING_API_TOKEN="t", MASKING_API_READ_TIMEOUT="0.5") as dashboard:
            client = logged_in_client(dashboard)
            started = time.monotonic()
            text = text_of(_mask(client, PARTIES[0], PARTIES[1]).get_data(as_text=True))
            assert time.monotonic() - started < 3
            assert "did not answer within 0.5 seconds" in text and "look at My active masks" in text
    finally:
        silent.close()


def test_end_now_and_extend(dash, service, clock):
    client = logged_in_client(dash)
    _mask(client, PARTIES[0], PARTIES[1])
    _mask(client, PARTIES[2], PARTIES[3], expiry="15")
    first, second = [a for a in _attempts(dash)]
    assert _row_ids(client.get("/masks/mine", headers=HX).get_data(as_text=True)) == [second.id, first.id]

    extended = client.post(f"/masks/{second.id}/extend", data={"minutes": "240"}, headers=HX)
    html = extended.get_data(as_text=True)
    with dash.app_context():
        row = db.session.get(MaskAttempt, second.id)
        assert row.expires_at - clock() > timedelta(minutes=239)
    # '21:34', or '28 Nov 00:34' when four hours from now is another local day.
    ends_at = humanize.local_time(row.expires_at, ZoneInfo("Asia/Kolkata"), clock())
    assert re.search(rf"now ends at {ends_at} \(in (3 h 59 min|4 h)\)", text_of(html)), text_of(html)
    api = MaskingClient(service["url"], user_id=service["userId"], token=service["token"])
    assert api.get(second.masking_id)["expires_at"] == row.expires_at.isoformat() + "Z"

    ended = client.post(f"/masks/{first.id}/end", headers=HX).get_data(as_text=True)
    assert "has ended" in ended and _row_ids(ended) == [second.id]
    assert api.get(first.masking_id)["status"] == "ended"
    with dash.app_context():
        row = db.session.get(MaskAttempt, first.id)
        assert row.ended_at is not None and row.ended_by.username == "agent1"
    actions = [(a.action, a.outcome, a.target_id) for a in _attempts(dash)]
    assert actions[2:] == [("extend", "success", second.id), ("unset", "success", first.id)]

    bad = client.post(f"/masks/{second.id}/extend", data={"minutes": "0"}, headers=HX).get_data(as_text=True)
    assert "Choose how long" in bad


def test_extend_never_ends_a_mask_sooner(dash, service, clock):
    client = logged_in_client(dash)
    _mask(client, PARTIES[0], PARTIES[1], expiry="custom", custom_minutes="200")
    [mask] = _attempts(dash)
    rows = client.get("/masks/mine", headers=HX).get_data(as_text=True)
    select = re.search(rf'<select id="extend-{mask.id}".*?</select>', rows, re.S).group(0)
    # The mask has 3 h 20 min left: 4 hours is the first choice that ends later, and it is chosen.
    assert re.findall(r'<option value="(\d+)"( disabled)?( selected)?>', select) == [
        ("15", " disabled", ""), ("60", " disabled", ""), ("240", "", " selected"), ("1440", "", "")]
    said = text_of(client.post(f"/masks/{mask.id}/extend", data={"minutes": "60"}, headers=HX).get_data(as_text=True))
    ends = humanize.local_time(mask.expires_at, ZoneInfo("Asia/Kolkata"), clock())
    assert re.search(rf"The mask on \+91 80 4123 450\d already lasts until {ends} \(in 3 h (19|20) min\): "
                     r"1 hour from now would end it sooner\. Choose a longer time, or End now\.", said), said
    assert len(_attempts(dash)) == 1  # nothing was sent to the service
    api = MaskingClient(service["url"], user_id=service["userId"], token=service["token"])
    assert api.get(mask.masking_id)["expires_at"] == mask.expires_at.isoformat() + "Z"


def test_a_mask_ended_elsewhere_is_reconciled(dash, service):
    client = logged_in_client(dash)
    _mask(client, PARTIES[0], PARTIES[1])
    [attempt] = _attempts(dash)
    MaskingClient(service["url"], user_id=service["userId"], token=service["token"]).unset(mask=attempt.mask)
    html = client.post(f"/masks/{attempt.id}/end", headers=HX).get_data(as_text=True)
    assert "no longer active" in text_of(html) and _row_ids(html) == []
    with dash.app_context():
        row = db.session.get(MaskAttempt, attempt.id)
        assert row.ended_at is not None and row.end_note == "ended outside the dashboard"
    # The agent asked for it to end, and it has: no failure in the history, no error banner.
    # (Also what keeps two tabs ending one mask from leaving a failure, whichever records first.)
    assert [(a.action, a.outcome) for a in _attempts(dash)] == [("set", "success")]
    assert 'class="banner error"' not in html


def test_expired_masks_leave_the_list(dash, clock):
    client = logged_in_client(dash)
    _mask(client, PARTIES[0], PARTIES[1], expiry="15")
    _mask(client, PARTIES[2], PARTIES[3], expiry="240")
    assert len(_row_ids(client.get("/masks/mine", headers=HX).get_data(as_text=True))) == 2
    clock.advance(minutes=16)
    assert len(_row_ids(client.get("/masks/mine", headers=HX).get_data(as_text=True))) == 1


def test_only_ones_own_masks(dash):
    mine = logged_in_client(dash, "agent", "asha")
    theirs = logged_in_client(dash, "agent", "ravi")
    _mask(mine, PARTIES[0], PARTIES[1])
    [attempt] = _attempts(dash)
    assert _row_ids(theirs.get("/masks/mine", headers=HX).get_data(as_text=True)) == []
    assert theirs.post(f"/masks/{attempt.id}/end", headers=HX).status_code == 404
    assert theirs.post(f"/masks/{attempt.id}/extend", data={"minutes": "60"}, headers=HX).status_code == 404


def test_without_javascript_the_form_still_works(dash):
    client = logged_in_client(dash)
    page = client.post("/masks", data={"m1": PARTIES[0], "m2": PARTIES[1], "expiry": "60"}).get_data(as_text=True)
    assert "<html" in page and 'class="mask-number"' in page and "My active masks (1)" in text_of(page)
    [attempt] = _attempts(dash)
    response = client.post(f"/masks/{attempt.id}/end")
    assert response.status_code == 303
    assert "has ended" in client.get("/").get_data(as_text=True)


def test_builtin_account_when_no_url_is_configured(app, live_server, database_url, clock):
    """Default mode: the dashboard provisions its own API account and calls the internal port."""
    add_pool(app, *POOL[:1])
    with _dashboard(database_url, clock, INTERNAL_API_PORT=str(live_server.port)) as dashboard:
        assert dashboard.config["MASKING_API_URL"] == f"http://127.0.0.1:{live_server.port}"
        client = logged_in_client(dashboard)
        assert 'class="mask-number"' in _mask(client, PARTIES[0], PARTIES[1]).get_data(as_text=True)
        with dashboard.app_context():
            account = db.session.scalar(select(ApiAccount).where(ApiAccount.user_id == BUILTIN_USER_ID))
            assert account is not None and account.revoked_at is None
        # A second dashboard app (another worker) with the same SECRET_KEY shares the account.
        with _dashboard(database_url, clock, INTERNAL_API_PORT=str(live_server.port)) as other:
            [attempt] = _attempts(other)
            ended = logged_in_client(other, username="agent1x")
            assert ended.post(f"/masks/{attempt.id}/end", headers=HX).status_code == 404  # not his mask


# ---------------------------------------------------------------- `make run`'s launcher

@pytest.mark.slow
def test_launcher_serves_dashboard_and_internal_api_without_starving(app, database_url):
    """`python -m masking.web.serve` (what `make run` runs): two masters; 50 agents submitting at
    once through a public server of only 2 threads all get their masks (no self-deadlock)."""
    add_pool(app, *POOL[:40])
    make_user(app, "agent1", "agent")
    stack = LiveStack(database_url, {"WEB_CONCURRENCY": "1", "WEB_THREADS": "2"})
    base = stack.url
    try:
        assert requests.get(stack.internal_url + "/login", timeout=2).status_code == 404  # API only
        assert requests.get(base + "/", timeout=2, allow_redirects=False).headers["Location"] == "/login"

        def agent_submits(i: int) -> str:
            browser = requests.Session()
            page = browser.get(base + "/login", timeout=10).text
            token = csrf_from(page)
            logged = browser.post(base + "/login", data={"username": "agent1", "password": PASSWORD,
                                                          "csrf_token": token}, timeout=30, allow_redirects=False)
            assert logged.status_code == 303, (logged.status_code, text_of(logged.text)[:300])
            token = csrf_from(browser.get(base + "/", timeout=30).text)
            barrier.wait(timeout=60)
            answer = browser.post(base + "/masks", timeout=60, headers={**HX, "X-CSRFToken": token},
                                  data={"m1": PARTIES[2 * i], "m2": PARTIES[2 * i + 1], "expiry": "15"})
            return "mask-number" if 'class="mask-number"' in answer.text else f"{answer.status_code} {text_of(answer.text)}"

        agents = 50  # the figure
        barrier = threading.Barrier(agents)
        with ThreadPoolExecutor(agents) as pool:
            answers = list(pool.map(agent_submits, range(agents)))
        assert answers == ["mask-number"] * agents, [a for a in answers if a != "mask-number"][:3]
    finally:
        assert stack.stop() == 0  # SIGTERM is forwarded to both masters; a clean exit


# ---------------------------------------------------------------- plain words for every answer

def test_every_code_and_problem_has_plain_words():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from masking import explain
    from masking.errors import CODES
    from masking.humanize import duration, local_time

    zone, now = ZoneInfo("Asia/Kolkata"), datetime(2026, 11, 27, 8, 0)
    problems = [explain.Problem(explain.SERVICE_ERROR, code, CODES[code].message) for code in CODES]
    problems += [explain.Problem(kind) for kind in (explain.UNREACHABLE, explain.TIMEOUT, explain.GARBLED,
                                                    explain.MISCONFIGURED)]
    problems += [explain.Problem(explain.SERVICE_ERROR, 1000, "Invalid parameters", "credentials are required")]
    texts = set()
    for problem in problems:
        words = explain.explain(problem, zone=zone, now=now, m1=PARTIES[0], m2=PARTIES[1], max_minutes=43200).text
        assert words.endswith(".") and "None" not in words and len(words) > 40, (problem, words)
        texts.add(words)
    assert len(texts) >= 16
    pair = explain.Problem(explain.SERVICE_ERROR, 1503, "", None,
                           {"id": 1, "mask": POOL[0], "expires_at": "2026-11-27T08:35:00Z"})
    assert explain.explain(pair, zone=zone, now=now, m1=PARTIES[0], m2=PARTIES[1]).text == (
        "These two numbers +91 98765 43200 and +91 98765 43201 are already masked behind +91 80 4123 4500 "
        "until 14:05 (in 35 min); end that mask first or wait.")
    empty = explain.Problem(explain.SERVICE_ERROR, 1505, "", "the pool has no active number in IN (GEO_MATCH=require)")
    assert explain.explain(empty, zone=zone, now=now).text == (
        "The pool has no masking numbers to give out for this country. Nothing was masked: ask an admin to add "
        "numbers to the pool.")
    both = explain.Problem(explain.SERVICE_ERROR, 1505, "", "...", {"active_numbers": 9, "m1_holds": 9, "m2_holds": 2})
    assert "the first number (+91 98765 43200) has masks on 9 and the second number (+91 98765 43201) has masks on 2 " \
           "of the 9 numbers in the pool" in explain.explain(both, zone=zone, now=now, m1=PARTIES[0], m2=PARTIES[1]).text
    for code in (1014, 1015, 1508):
        assert "contact an admin" in explain.explain(explain.Problem("error", code), zone=zone, now=now).text
    field = explain.explain(explain.Problem("error", 1000, "", "m2 is not a valid phone number"), zone=zone, now=now)
    assert field.field == "m2" and field.text.startswith("Second number is not a valid phone number.")
    assert [duration(timedelta(minutes=m)) for m in (0, 45, 60, 200, 1440, 1441 + 59)] == [
        "less than a minute", "45 min", "1 h", "3 h 20 min", "1 d", "1 d 1 h"]
    assert local_time(datetime(2026, 11, 28, 8, 0), zone, now) == "28 Nov 13:30"
