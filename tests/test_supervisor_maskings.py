"""All masks (``/maskings``): every masking of the service, whoever made it (two API accounts
through the real API, an agent through the dashboard), with its maker and state; filters in the
URL, keyset pages, reveal (audited), the streamed CSV export (audited, formula-safe), bad input
in words. Flask's test client."""
from __future__ import annotations

import csv
import io
import re
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import event, select

from masking.history import hidden_search
from masking.models import ApiAccount, MaskAttempt
from masking.web.extensions import db
from masking.web.service_client import ensure_builtin_account
from tests.admin_helpers import audit_entries
from tests.api_helpers import UNSET, configured_app, ok, set_masking
from tests.conftest import PARTIES, POOL, add_pool, make_account
from tests.dashboard_helpers import (HX, assert_no_inline_code, csrf_from, logged_in_client, login, make_user,
                                     text_of)

NOW = datetime(2026, 11, 27, 6, 0)  # 11:30 in India (TIMEZONE defaults to Asia/Kolkata)
UK = "+447911123456"


@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF has its own test below
    return app


def _account_id(app, user_id: str) -> int:
    with app.app_context():
        return db.session.scalar(select(ApiAccount.id).where(ApiAccount.user_id == user_id))


@pytest.fixture
def made(app, client, clock):
    """Four maskings of two API accounts, made through the API at different times:

    zen1 (yesterday, 5 min: expired), acme1 (live), acme2 (ended by unset), zen2 (live, a UK party).
    """
    add_pool(app, *POOL[:3])
    acme, zen = make_account(app, "Acme call centre"), make_account(app, "Zen support")
    rows = {}
    clock.set(NOW - timedelta(days=1))
    rows["zen1"] = set_masking(client, zen, PARTIES[4], PARTIES[5], eventId="ticket-1", expiry_duration=5)
    clock.set(NOW - timedelta(minutes=30))
    rows["acme1"] = set_masking(client, acme, PARTIES[0], PARTIES[1], eventId="ticket-1", expiry_duration=60)
    clock.set(NOW - timedelta(minutes=20))
    rows["acme2"] = set_masking(client, acme, PARTIES[2], PARTIES[3], eventId="ticket-2", expiry_duration=60)
    clock.set(NOW - timedelta(minutes=10))
    ended = ok(client, UNSET, {**acme, "m1": PARTIES[2], "m2": PARTIES[3]})
    assert ended["action"] == "ended"
    clock.set(NOW - timedelta(minutes=5))
    rows["zen2"] = set_masking(client, zen, UK, PARTIES[6], expiry_duration=120)
    clock.set(NOW)
    return {"ids": {name: row["id"] for name, row in rows.items()}, "masks": {n: r["mask"] for n, r in rows.items()},
            "acme": acme, "zen": zen, "acme_id": _account_id(app, acme["userId"]),
            "zen_id": _account_id(app, zen["userId"])}


@pytest.fixture
def sup(app):
    return logged_in_client(app, "supervisor", "sue")


def _row_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="masking-(\d+)"', html)]


def _row_text(html: str, masking_id: int) -> str:
    start = html.index(f'<tr id="masking-{masking_id}"')
    return text_of(html[start:html.index("</tr>", start)])


def _names(made, *names) -> list[int]:
    return [made["ids"][name] for name in names]


# ---------------------------------------------------------------- roles and navigation

def test_roles_and_navigation(app, made):
    urls = [("GET", "/maskings"), ("POST", f"/maskings/{made['ids']['acme1']}/reveal"), ("POST", "/maskings/export")]
    agent = logged_in_client(app, "agent", "anna")
    anonymous = app.test_client()
    for method, url in urls:
        assert agent.open(url, method=method).status_code == 403
        response = anonymous.open(url, method=method)
        assert response.status_code in (302, 303) and urlsplit(response.headers["Location"]).path == "/login"
    for role in ("supervisor", "admin"):
        client = logged_in_client(app, role)
        for method, url in urls:
            assert client.open(url, method=method).status_code == 200, (role, url)
        assert 'href="/maskings"' in client.get("/").get_data(as_text=True)
    assert ">All masks</a>" in logged_in_client(app, "admin", "root").get("/maskings").get_data(as_text=True)
    assert 'href="/maskings"' not in agent.get("/").get_data(as_text=True)
    assert all(e.actor_name != "anna" for e in audit_entries(app))


# ---------------------------------------------------------------- the page

def test_every_masking_of_every_account_with_its_maker_and_state(app, made, sup):
    response = sup.get("/maskings")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert_no_inline_code(html)
    assert _row_ids(html) == _names(made, "zen2", "acme2", "acme1", "zen1")  # newest first
    assert "<caption>" in html and 'scope="col">Made by<' in html
    acme1 = _row_text(html, made["ids"]["acme1"])
    assert acme1.startswith("11:00 ")  # made 05:30 UTC = 11:00 IST
    assert f"Acme call centre userId {made['acme']['userId']}" in acme1
    assert "ticket-1" in acme1 and "Live until 12:00" in acme1 and "in 30 min" in acme1
    acme2 = _row_text(html, made["ids"]["acme2"])
    assert "Ended 11:20" in acme2 and "ticket-2" in acme2  # ended 05:50 UTC by Masking/unset
    zen1 = _row_text(html, made["ids"]["zen1"])
    assert zen1.startswith("26 Nov 11:30") and "Zen support" in zen1 and "Expired 26 Nov 11:35" in zen1
    zen2 = _row_text(html, made["ids"]["zen2"])
    assert "Zen support" in zen2 and "Live until 13:25" in zen2
    for name, mask in made["masks"].items():  # the masking number is the pool's, shown whole
        assert re.sub(r"\D", "", mask)[2:] in re.sub(r"\D", "", _row_text(html, made["ids"][name]))


def test_numbers_are_hidden_until_revealed(app, made, sup):
    html = sup.get("/maskings").get_data(as_text=True)
    for party in (PARTIES[0], PARTIES[1], UK):
        assert party not in html
    assert "+91 98XXXXX200" in html and "+91 98XXXXX201" in html
    assert "+91 98765 43200" not in html and "+44 7911 123456" not in html
    assert html.count(">Show numbers</button>") == 4


def test_the_state_follows_the_clock(app, made, clock):
    clock.advance(minutes=31)  # acme1 (60 min from 05:30) has expired now
    sup = logged_in_client(app, "supervisor", "sue")  # after the advance: sessions end when idle 30 min
    html = sup.get("/maskings").get_data(as_text=True)
    assert "Expired 12:00" in _row_text(html, made["ids"]["acme1"])
    assert _row_ids(sup.get("/maskings?state=active").get_data(as_text=True)) == _names(made, "zen2")
    assert _row_ids(sup.get("/maskings?state=expired").get_data(as_text=True)) == _names(made, "acme1", "zen1")


def test_htmx_gets_the_filters_and_results_only(app, made, sup):
    partial = sup.get("/maskings?state=ended", headers=HX).get_data(as_text=True)
    assert "<html" not in partial and 'id="maskings"' in partial and 'hx-push-url="true"' in partial
    assert _row_ids(partial) == _names(made, "acme2")
    restore = sup.get("/maskings?state=ended", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


def test_every_field_has_a_label_and_the_form_works_without_javascript(app, made, sup):
    html = sup.get("/maskings").get_data(as_text=True)
    form = html[html.index('<form id="maskings-filters"'):html.index("</form>", html.index('id="maskings-filters"'))]
    assert 'method="get"' in form and 'action="/maskings"' in form
    for field_id in re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', form):
        assert f'<label for="{field_id}"' in form, field_id
    assert 'type="submit"' in form


@pytest.mark.parametrize("query, expected", [
    ({"number": "98765 43200"}, ["acme1"]),
    ({"number": "098765 43203"}, ["acme2"]),  # national form with the trunk 0
    ({"number": "+91 98765 432"}, ["zen2", "acme2", "acme1", "zen1"]),
    ({"number": "4479 1112"}, ["zen2"]),  # international form of another country
    ({"number": "9876543299"}, []),
    ({"state": "active"}, ["zen2", "acme1"]),
    ({"state": "expired"}, ["zen1"]),
    ({"state": "ended"}, ["acme2"]),
    ({"event": "ticket-1"}, ["acme1", "zen1"]),
    ({"event": "ticket"}, []),  # exact, not a prefix
    ({"start": "2026-11-27"}, ["zen2", "acme2", "acme1"]),  # local day: from 26 Nov 18:30 UTC
    ({"end": "2026-11-26"}, ["zen1"]),
    ({"start": "2026-11-26", "end": "2026-11-26"}, ["zen1"]),
    ({"start": "2026-11-25", "end": "2026-11-25"}, []),
    ({"state": "active", "event": "ticket-1", "start": "2026-11-27"}, ["acme1"]),
])
def test_filters_alone_and_combined_from_the_url(app, made, sup, query, expected):
    html = sup.get("/maskings?" + urlencode(query)).get_data(as_text=True)
    assert _row_ids(html) == _names(made, *expected), query
    if not expected:
        assert "No maskings match these filters." in text_of(html)


def test_a_common_number_prefix_finds_the_same_rows(app, made, sup, monkeypatch):
    from masking import service_report

    monkeypatch.setattr(service_report, "COMMON", 3)  # on SQLite: walk the newest first instead
    assert _row_ids(sup.get("/maskings?number=%2B91+98765+432").get_data(as_text=True)) == _names(
        made, "zen2", "acme2", "acme1", "zen1")
    assert _row_ids(sup.get("/maskings?number=9876543200").get_data(as_text=True)) == _names(made, "acme1")


def test_account_filter_and_the_masking_number(app, made, sup):
    acme = sup.get(f"/maskings?account={made['acme_id']}").get_data(as_text=True)
    assert _row_ids(acme) == _names(made, "acme2", "acme1")
    assert f'<option value="{made["acme_id"]}" selected>Acme call centre ({made["acme"]["userId"]})</option>' in acme
    zen = sup.get(f"/maskings?account={made['zen_id']}&state=active").get_data(as_text=True)
    assert _row_ids(zen) == _names(made, "zen2")
    # By the masking number, in national form: the maskings on that pool number and no other.
    mask = made["masks"]["acme1"]
    expected = [made["ids"][n] for n in ("zen2", "acme2", "acme1", "zen1") if made["masks"][n] == mask]
    national = "0" + mask[3:]
    assert _row_ids(sup.get("/maskings?" + urlencode({"number": national})).get_data(as_text=True)) == expected
    assert _row_ids(sup.get("/maskings?" + urlencode({"number": mask})).get_data(as_text=True)) == expected


def test_typed_filters_stay_in_the_form(app, made, sup):
    html = sup.get(f"/maskings?number=98765&account={made['zen_id']}&state=expired&event=ticket-1"
                   f"&start=2026-11-01&end=2026-11-30").get_data(as_text=True)
    assert 'id="filter-number" name="number" type="text"' in html and 'value="98765"' in html
    assert f'<option value="{made["zen_id"]}" selected>' in html
    assert '<option value="expired" selected>' in html
    assert 'value="ticket-1"' in html
    assert 'name="start" type="date" value="2026-11-01"' in html and 'name="end" type="date" value="2026-11-30"' in html
    assert _row_ids(html) == _names(made, "zen1")


@pytest.mark.parametrize("query, typed, message", [
    ("start=2026-02-30", 'value="2026-02-30"', "From date: enter a date as YYYY-MM-DD"),
    ("end=tomorrow", 'value="tomorrow"', "To date: enter a date as YYYY-MM-DD"),
    ("start=2026-11-27&end=2026-11-01", 'value="2026-11-01"', "To date: it is before the From date"),
    ("number=98x65", 'value="98x65"', "Number: use digits only"),
    ("number=12", 'value="12"', "Number: enter at least 4 digits"),
    ("number=" + "9" * 30, 'value="' + "9" * 30 + '"', "Number: a phone number has at most 15 digits"),
    ("account=acme", '<option value="acme" selected>', "API account: choose one from the list"),
    ("account=-1", '<option value="-1" selected>', "API account: choose one from the list"),
    ("account=" + "9" * 40, '<option value="' + "9" * 40 + '" selected>', "API account: choose one from the list"),
    ("account=999999", '<option value="999999" selected>', "API account: there is no account number 999999"),
    ("state=exploded", '<option value="exploded" selected>', "State: choose one from the list"),
    ("event=" + "x" * 300, 'value="' + "x" * 255 + '"', "eventId: at most 255 characters"),
    ("start=" + "9" * 500, 'value="' + "9" * 64 + '"', "From date"),
])
def test_bad_input_is_explained_and_kept(app, made, sup, query, typed, message):
    for headers in ({}, HX):
        response = sup.get(f"/maskings?{query}", headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert message in text_of(html), html
        assert typed in html
        assert 'role="alert"' in html and 'aria-invalid="true"' in html
        assert _row_ids(html) == []  # no results that look filtered but are not


def test_an_event_id_with_a_nul_is_explained_not_a_database_error(app, made, sup):
    """PostgreSQL refuses NUL in any text it is given: the search used to fail with a 500."""
    for headers in ({}, HX):
        response = sup.get("/maskings?event=ticket%001", headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and 'role="alert"' in html
        assert "eventId: remove the NUL character" in text_of(html) and 'value="ticket\ufffd1"' in html
        assert "\x00" not in html and _row_ids(html) == []
    exported = sup.post("/maskings/export", data={"event": "ticket\x001"})
    assert exported.mimetype == "text/html" and "eventId: remove the NUL character" in text_of(exported.get_data(as_text=True))
    assert audit_entries(app, "export all masks") == []


def test_the_state_filter_and_the_states_shown_are_of_one_instant(app, made, clock):
    """acme1 expires at 06:30 UTC: a page asked a moment before must not list it as live and show
    it expired (the filter and the rows read the clock once each)."""
    sup = logged_in_client(app, "supervisor", "sue")
    from masking import service_report

    clock.set(NOW + timedelta(minutes=30) - timedelta(milliseconds=1))
    found = service_report.page

    def slow_page(*args, **kwargs):  # a second passes between the query and the rows' states
        page = found(*args, **kwargs)
        clock.advance(seconds=1)
        return page

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service_report, "page", slow_page)
        html = sup.get("/maskings?state=active", headers=HX).get_data(as_text=True)
    assert made["ids"]["acme1"] in _row_ids(html)
    assert "Live until 12:00" in _row_text(html, made["ids"]["acme1"])


@pytest.mark.parametrize("cursor", ["before=zzz", "after=-1", "before=" + "9" * 40, "before=99999999999"])
def test_an_absurd_page_cursor_shows_the_newest_page(app, made, sup, cursor):
    response = sup.get(f"/maskings?{cursor}")
    assert response.status_code == 200
    assert _row_ids(response.get_data(as_text=True)) == _names(made, "zen2", "acme2", "acme1", "zen1")
    assert "That page link is not valid any more" in response.get_data(as_text=True)


def test_empty_states_in_words(app, sup):
    text = text_of(sup.get("/maskings").get_data(as_text=True))
    assert "The service holds no maskings yet." in text and "No maskings match" not in text
    text = text_of(sup.get("/maskings?state=active").get_data(as_text=True))
    assert "No maskings match these filters." in text


# ---------------------------------------------------------------- pages

@contextmanager
def _counting_statements(app):
    statements = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_keyset_pages_are_complete_without_duplicates(app, client, clock, sup):
    add_pool(app, POOL[0])
    acme, zen = make_account(app, "Acme call centre"), make_account(app, "Zen support")
    clock.set(NOW - timedelta(days=1))
    made = []
    for i in range(120):
        # Each expires and its cool-off passes before the next: one pool number serves them all.
        credentials = acme if i % 3 else zen
        made.append(set_masking(client, credentials, PARTIES[i % 100], f"+9198123{i:05d}", expiry_duration=1)["id"])
        clock.advance(minutes=7)
    seen, url, pages = [], "/maskings", 0
    while url:
        with _counting_statements(app) as statements:
            html = sup.get(url, headers=HX).get_data(as_text=True)
        assert len(statements) <= 6, statements  # a fixed number of queries, not one per row
        seen += _row_ids(html)
        pages += 1
        older = re.search(r'<a href="([^"]+)" rel="next"', html)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert pages == 3 and seen == sorted(made, reverse=True)
    newer = re.search(r'<a href="([^"]+)" rel="prev"', html).group(1).replace("&amp;", "&")
    assert _row_ids(sup.get(newer).get_data(as_text=True)) == seen[50:100]
    assert ">Newest</a>" in html
    # A filtered walk carries the filter in its links.
    acme_id = _account_id(app, acme["userId"])
    seen, url = [], f"/maskings?account={acme_id}"
    while url:
        html = sup.get(url).get_data(as_text=True)
        seen += _row_ids(html)
        older = re.search(r'<a href="([^"]+)" rel="next"', html)
        url = older.group(1).replace("&amp;", "&") if older else None
        if url:
            assert f"account={acme_id}" in url and "before=" in url
    assert seen == [m for i, m in enumerate(made) if i % 3][::-1] and len(seen) == 80


# ---------------------------------------------------------------- reveal

def test_reveal_shows_the_full_numbers_and_is_audited(app, made, sup):
    masking_id = made["ids"]["acme1"]
    response = sup.post(f"/maskings/{masking_id}/reveal", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert html.strip().startswith(f'<tr id="masking-{masking_id}"')
    assert "+91 98765 43200" in html and "+91 98765 43201" in html and "recorded in the audit log" in html
    assert "Acme call centre" in html and "data-autofocus" in html
    [entry] = audit_entries(app, "reveal numbers")
    assert entry.actor_name == "sue" and entry.target == f"masking #{masking_id}"
    assert "Acme call centre" in entry.detail and "9876543200" not in entry.detail
    # Without htmx: a page with the one row.
    page = sup.post(f"/maskings/{masking_id}/reveal").get_data(as_text=True)
    assert "<html" in page and "+91 98765 43200" in page and "Back to all masks" in page
    assert len(audit_entries(app, "reveal numbers")) == 2
    # Only that row: the list still hides every number.
    assert "+91 98765 43200" not in sup.get("/maskings").get_data(as_text=True)
    assert sup.post("/maskings/999999/reveal", headers=HX).status_code == 404
    assert sup.post("/maskings/abc/reveal").status_code == 404
    assert sup.post("/maskings/99999999999/reveal").status_code == 404
    assert len(audit_entries(app, "reveal numbers")) == 2


def test_reveal_needs_the_csrf_token(database_url, clock):
    with configured_app(database_url, clock) as app:
        add_pool(app, POOL[0])
        masking = set_masking(app.test_client(), make_account(app, "Acme"), PARTIES[0], PARTIES[1])
        client = app.test_client()
        make_user(app, "sue", "supervisor")
        assert login(client, "sue", csrf_token=csrf_from(client.get("/login").get_data(as_text=True))).status_code == 303
        token = csrf_from(client.get("/maskings").get_data(as_text=True))
        assert client.post(f"/maskings/{masking['id']}/reveal").status_code == 400
        assert audit_entries(app, "reveal numbers") == []
        revealed = client.post(f"/maskings/{masking['id']}/reveal", headers={**HX, "X-CSRFToken": token})
        assert revealed.status_code == 200 and "+91 98765 43200" in revealed.get_data(as_text=True)
        assert len(audit_entries(app, "reveal numbers")) == 1
        assert client.post("/maskings/export", data={"numbers": "full"}).status_code == 400
        assert audit_entries(app, "export all masks") == []
        export = client.post("/maskings/export", data={"csrf_token": token})
        assert export.status_code == 200 and export.mimetype == "text/csv"
        assert [int(row["id"]) for row in _csv_rows(export)] == [masking["id"]]
        assert len(audit_entries(app, "export all masks")) == 1


# ---------------------------------------------------------------- export

EXPORT_HEADER = ["id", "made", "made_utc", "masking_number", "first_number", "second_number", "made_by",
                 "api_user_id", "event_id", "state", "expires", "ended"]


def _text(chunks) -> str:
    return "".join(c if isinstance(c, str) else c.decode() for c in chunks)


def _csv_rows(response) -> list[dict]:
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")  # spreadsheets read the text as UTF-8
    reader = csv.DictReader(io.StringIO(body[1:]))
    rows = list(reader)
    assert reader.fieldnames == EXPORT_HEADER
    return rows


def _export_ids(sup, data: dict) -> list[int]:
    return [int(row["id"]) for row in _csv_rows(sup.post("/maskings/export", data=data))]


def test_export_streams_every_masking_with_its_maker_state_and_times(app, made, sup):
    response = sup.post("/maskings/export")
    assert response.status_code == 200 and response.is_streamed and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="all-masks-20261127-1130.csv"'
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Accel-Buffering"] == "no"
    body = response.get_data(as_text=True)
    rows = {int(row["id"]): row for row in _csv_rows(response)}
    assert list(rows) == _names(made, "zen2", "acme2", "acme1", "zen1")  # newest first
    ids, masks = made["ids"], made["masks"]
    assert rows[ids["acme1"]] == {
        "id": str(ids["acme1"]), "made": "2026-11-27 11:00:00+05:30", "made_utc": "2026-11-27T05:30:00Z",
        "masking_number": "'" + masks["acme1"], "first_number": "'+91 98XXXXX200", "second_number": "'+91 98XXXXX201",
        "made_by": "Acme call centre", "api_user_id": made["acme"]["userId"], "event_id": "ticket-1",
        "state": "active", "expires": "2026-11-27 12:00:00+05:30", "ended": ""}
    acme2 = rows[ids["acme2"]]
    assert (acme2["state"], acme2["ended"], acme2["event_id"]) == ("ended", "2026-11-27 11:20:00+05:30", "ticket-2")
    zen1 = rows[ids["zen1"]]
    assert (zen1["made"], zen1["made_utc"], zen1["state"], zen1["expires"], zen1["made_by"]) == (
        "2026-11-26 11:30:00+05:30", "2026-11-26T06:00:00Z", "expired", "2026-11-26 11:35:00+05:30", "Zen support")
    zen2 = rows[ids["zen2"]]
    assert (zen2["first_number"], zen2["event_id"], zen2["api_user_id"]) == ("'+44 79XXXXX456", "", made["zen"]["userId"])
    for party in (PARTIES[0], PARTIES[4], UK, "9876543200", "7911123456"):
        assert party not in body  # hidden is the default
    [entry] = audit_entries(app, "export all masks")
    assert entry.actor_name == "sue" and "numbers hidden" in entry.detail and "no filter" in entry.detail


def test_export_with_full_numbers_is_audited_as_such(app, made, sup):
    rows = _csv_rows(sup.post("/maskings/export", data={"numbers": "full", "state": "active"}))
    assert [int(row["id"]) for row in rows] == _names(made, "zen2", "acme1")
    assert [(row["first_number"], row["second_number"]) for row in rows] == [
        ("'" + UK, "'" + PARTIES[6]), ("'" + PARTIES[0], "'" + PARTIES[1])]
    [entry] = audit_entries(app, "export all masks")
    assert "numbers full" in entry.detail and "state=active" in entry.detail
    # Anything but "full" is hidden.
    rows = _csv_rows(sup.post("/maskings/export", data={"numbers": "FULL", "state": "active"}))
    assert rows[1]["first_number"] == "'+91 98XXXXX200"
    assert "numbers hidden" in audit_entries(app, "export all masks")[1].detail


@pytest.mark.parametrize("query", [
    {"state": "ended"}, {"state": "expired"}, {"event": "ticket-1"}, {"number": "98765 43200"},
    {"number": "4479 1112"}, {"start": "2026-11-27"}, {"end": "2026-11-26"},
    {"state": "active", "event": "ticket-1", "start": "2026-11-27"},
])
def test_export_applies_the_page_s_filters(app, made, sup, query):
    expected = _row_ids(sup.get("/maskings?" + urlencode(query)).get_data(as_text=True))
    assert expected and _export_ids(sup, query) == expected
    [entry] = audit_entries(app, "export all masks")
    # A whole number typed is hidden in the audit log (see test_the_audit_log_hides_a_whole_number_searched_for).
    assert all(f"{name}={hidden_search(value) if name == 'number' else value}" in entry.detail
               for name, value in query.items())


def test_the_audit_log_hides_a_whole_number_searched_for(app, made, sup):
    """The audit log names the filters of an export; a party's whole number is personal data and
    is hidden there as in every log (the history's export too). A short prefix names nobody."""
    _export_ids(sup, {"number": "+91 98765 43200"})
    sup.post("/history/export", data={"number": "098765 43200"}).get_data()
    _export_ids(sup, {"number": "98765", "state": "active"})
    whole, history_entry, prefix = audit_entries(app, "export all masks")[0], *audit_entries(app, "export history"), \
        audit_entries(app, "export all masks")[1]
    for entry in (whole, history_entry):
        for text in (entry.target, entry.detail):
            assert "43200" not in text and "9876543" not in text, text
    assert whole.target == "number=91XXXXXXX200" and "filters: number=91XXXXXXX200" in whole.detail
    assert "number=09XXXXXX200" in history_entry.detail
    assert "number=98765, state=active" in prefix.detail


def test_export_by_account_names_the_account_in_the_audit_log(app, made, sup):
    assert _export_ids(sup, {"account": made["acme_id"]}) == _names(made, "acme2", "acme1")
    [entry] = audit_entries(app, "export all masks")
    assert f"account={made['acme_id']} (Acme call centre, userId {made['acme']['userId']})" in entry.detail
    assert entry.target.startswith(f"account={made['acme_id']} (Acme call centre")


def test_an_export_matching_nothing_is_the_header_only(app, made, sup):
    response = sup.post("/maskings/export", data={"event": "no-such-ticket"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.get_data(as_text=True) == "\ufeff" + ",".join(EXPORT_HEADER) + "\r\n"
    assert len(audit_entries(app, "export all masks")) == 1


def test_no_export_form_while_the_service_holds_no_maskings(app, sup):
    assert 'id="maskings-export"' not in sup.get("/maskings").get_data(as_text=True)
    assert sup.post("/maskings/export").get_data(as_text=True) == "\ufeff" + ",".join(EXPORT_HEADER) + "\r\n"


def test_the_export_form_carries_the_filters_and_works_without_javascript(app, made, sup):
    html = sup.get(f"/maskings?state=active&account={made['acme_id']}&before=999999").get_data(as_text=True)
    start = html.index('<form id="maskings-export"')
    form = html[start:html.index("</form>", start)]
    assert 'method="post"' in form and 'action="/maskings/export"' in form and "hx-" not in form
    assert 'name="csrf_token"' in form and 'type="submit"' in form
    assert 'name="state" value="active"' in form and f'name="account" value="{made["acme_id"]}"' in form
    assert 'name="before"' not in form  # every page, not the one shown
    for field_id in re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', form):
        assert f'<label class="choice" for="{field_id}"' in form, field_id
    assert re.search(r'<input id="maskings-export-hidden" type="radio" name="numbers" value="hidden" checked>', form)
    assert not re.search(r'value="full" checked', form)
    # No export of filters that cannot be used: the page says what to fix instead.
    assert 'id="maskings-export"' not in sup.get("/maskings?state=exploded").get_data(as_text=True)


@pytest.mark.parametrize("data, typed, message", [
    ({"account": "999999"}, '<option value="999999" selected>', "API account: there is no account number 999999"),
    ({"start": "not-a-date", "numbers": "full"}, 'value="not-a-date"', "From date: enter a date as YYYY-MM-DD"),
    ({"state": "exploded"}, '<option value="exploded" selected>', "State: choose one from the list"),
    ({"number": "12"}, 'value="12"', "Number: enter at least 4 digits"),
])
def test_export_of_bad_filters_explains_instead(app, made, sup, data, typed, message):
    response = sup.post("/maskings/export", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "<html" in html and message in text_of(html) and typed in html and 'role="alert"' in html
    assert audit_entries(app, "export all masks") == []


def test_export_cells_are_safe_in_a_spreadsheet(app, client, clock, sup):
    add_pool(app, *POOL[:4])
    evil = make_account(app, "=cmd|' /C calc'!A0")
    clock.set(NOW - timedelta(minutes=10))
    for i, event_id in enumerate(['=HYPERLINK("http://x","y")', "+1+1", "-2", "@SUM(A1)"]):
        set_masking(client, evil, PARTIES[2 * i], PARTIES[2 * i + 1], eventId=event_id)
    clock.set(NOW)
    for numbers in ("hidden", "full"):
        rows = _csv_rows(sup.post("/maskings/export", data={"numbers": numbers}))
        assert [row["event_id"] for row in rows] == ["'@SUM(A1)", "'-2", "'+1+1", "'=HYPERLINK(\"http://x\",\"y\")"]
        assert {row["made_by"] for row in rows} == {"'=cmd|' /C calc'!A0"}
        for row in rows:
            for value in row.values():
                assert not value or value[0] not in "=+-@\t\r", value  # nothing a spreadsheet would evaluate


def test_export_reads_every_row_once_in_batches(app, client, clock, sup, monkeypatch):
    from masking import service_report

    add_pool(app, POOL[0])
    acme, zen = make_account(app, "Acme call centre"), make_account(app, "Zen support")
    clock.set(NOW - timedelta(days=1))
    made = []
    for i in range(13):
        # Each expires and its cool-off passes before the next: one pool number serves them all.
        made.append(set_masking(client, acme if i % 3 else zen, PARTIES[i], f"+9198123{i:05d}", expiry_duration=1)["id"])
        clock.advance(minutes=7)
    clock.set(NOW)
    monkeypatch.setattr(service_report, "EXPORT_BATCH", 4)
    with _counting_statements(app) as statements:
        response = sup.post("/maskings/export")
        assert response.is_streamed
        answered = len(statements)  # the view's own reads (the session, the filters): no masking read yet
        stream = iter(response.response)
        header = next(stream)
        assert "made_by" in _text([header]) and len(statements) == answered
        chunks = [header, *stream]
        response.close()
    # 4 + 4 + 4 + 1: a chunk per batch, each a query and its accounts (never one per row).
    assert [_text([chunk]).count("\r\n") for chunk in chunks] == [1, 4, 4, 4, 1]
    assert len(statements) - answered == 4 * 2, statements[answered:]
    rows = list(csv.DictReader(io.StringIO(_text(chunks)[1:])))
    assert [int(row["id"]) for row in rows] == made[::-1]  # each once, newest first
    assert [row["made_by"] for row in rows] == ["Acme call centre" if i % 3 else "Zen support" for i in range(13)][::-1]
    # A filtered export walks its batches the same way; 8 rows: two full batches, then none.
    acme_id = _account_id(app, acme["userId"])
    assert _export_ids(sup, {"account": acme_id}) == [m for i, m in enumerate(made) if i % 3][::-1]
    assert _export_ids(sup, {"number": "98123"}) == made[::-1]  # the parties' prefix, by the number indexes


def test_export_local_times_follow_the_zone_across_its_changes():
    """The export's local times skip the zone lookup for most rows; they must still equal it,
    around a DST change (Berlin), a half-hour one (Lord Howe) and Ramadan (Casablanca)."""
    from zoneinfo import ZoneInfo

    from masking.humanize import to_local
    from masking.service_report import _LocalTimes

    for key in ("Europe/Berlin", "Australia/Lord_Howe", "Africa/Casablanca", "Asia/Kolkata"):
        zone, local = ZoneInfo(key), _LocalTimes(ZoneInfo(key))
        start = datetime(2026, 1, 1)
        # Newest first, as exported, and back and forth as expiry times are.
        moments = [start + timedelta(minutes=17 * i) for i in range(31_000)][::-1]
        moments += [start + timedelta(hours=(i * 7919) % 8760, seconds=i % 3600) for i in range(3000)]
        for moment in moments:
            assert local(moment) == to_local(moment, zone).isoformat(" ", "seconds"), (key, moment)


# ---------------------------------------------------------------- made in the dashboard

def test_a_mask_made_by_an_agent_in_the_dashboard_names_the_agent(app, live_server, database_url, clock):
    """The agent's real flow: the dashboard calls the API (gunicorn) with its built-in account."""
    add_pool(app, *POOL[:2])
    with app.app_context():
        user_id, token = ensure_builtin_account()
    integrator = make_account(app, "Acme call centre")
    with configured_app(database_url, clock, WTF_CSRF_ENABLED=False, MASKING_API_URL=live_server.url,
                        MASKING_API_USER_ID=user_id, MASKING_API_TOKEN=token) as dash:
        agent = logged_in_client(dash, "agent", "asha")
        made = agent.post("/masks", data={"m1": PARTIES[0], "m2": PARTIES[1], "expiry": "60"}, headers=HX)
        assert made.status_code == 200
        with dash.app_context():
            attempt = db.session.scalar(select(MaskAttempt).where(MaskAttempt.outcome == "success"))
        assert attempt is not None and attempt.masking_id, made.get_data(as_text=True)
        api = set_masking(dash.test_client(), integrator, PARTIES[2], PARTIES[3])
        sup = logged_in_client(dash, "supervisor", "sue")
        html = sup.get("/maskings").get_data(as_text=True)
        assert _row_ids(html) == [api["id"], attempt.masking_id]
        assert "Dashboard: asha" in _row_text(html, attempt.masking_id)
        assert "Acme call centre" in _row_text(html, api["id"])
        dashboard_id = _account_id(dash, user_id)
        assert _row_ids(sup.get(f"/maskings?account={dashboard_id}").get_data(as_text=True)) == [attempt.masking_id]
        sup.post(f"/maskings/{attempt.masking_id}/reveal", headers=HX)
        [entry] = audit_entries(dash, "reveal numbers")
        assert "Dashboard: asha" in entry.detail
        exported = _csv_rows(sup.post("/maskings/export"))
        assert [(int(r["id"]), r["made_by"], r["api_user_id"]) for r in exported] == [
            (api["id"], "Acme call centre", integrator["userId"]), (attempt.masking_id, "Dashboard: asha", user_id)]


# ---------------------------------------------------------------- SQLite's plans

def test_sqlite_plans_use_the_indexes(sqlite_file_app):
    """SQLite plans without statistics; the hints of masking.service_report keep each filter on
    its index (PostgreSQL plans from its statistics: see the README's figures)."""
    from sqlalchemy import text

    from masking import service_report
    from masking.service_report import Filters

    def plan(filters, **kwargs):
        stmt = service_report.statement(filters, NOW, country_code="91", limit=51, **kwargs)
        sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
        return " | ".join(row[3] for row in db.session.execute(text("EXPLAIN QUERY PLAN " + sql)))

    with sqlite_file_app.app_context():
        assert plan(Filters()) == "SCAN maskings"  # the primary key, newest first, stopped by the LIMIT
        assert "USING INDEX ix_maskings_expires_at" in plan(Filters(state="active"))
        assert "USING INDEX ix_maskings_expires_at" in plan(Filters(state="active"), before=500)
        assert "USING INDEX ix_maskings_account_id" in plan(Filters(account_id=2), before=500)
        assert "USING INDEX ix_maskings_event_id" in plan(Filters(event_id="ticket-1"))
        number = plan(Filters(number="9999999999"), before=500)  # all nines: still bounded ranges
        assert "MULTI-INDEX OR" in number and "ix_maskings_m1" in number and "ix_maskings_m2" in number
        assert plan(Filters(number="9198"), common_number=True) == "SCAN maskings"
        assert plan(Filters(since=NOW, until=NOW + timedelta(days=1))) == "SCAN maskings"  # no sort of the range
