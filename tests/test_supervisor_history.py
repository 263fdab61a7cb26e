"""The supervisors' history pages: roles, filters in the URL, keyset pages, reveal (audited),
the streamed CSV export (audited, formula-safe), bad input in words. Flask's test client."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from masking import attempts, history, humanize
from masking.web.extensions import db
from tests.admin_helpers import audit_entries
from tests.api_helpers import configured_app
from tests.dashboard_helpers import (HX, assert_no_inline_code, csrf_from, logged_in_client, login, make_user, text_of)

NOW = datetime(2026, 11, 27, 6, 0)  # 11:30 in India (TIMEZONE defaults to Asia/Kolkata)
ZONE = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def app(app, clock):
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF has its own test below
    clock.set(NOW)
    return app


def _record(app, user_id, minutes_ago, **fields):
    fields.setdefault("outcome", "success")
    fields.setdefault("action", "set")
    with app.app_context():
        attempt = attempts.record(db.session(), user_id=user_id, now=NOW - timedelta(minutes=minutes_ago), **fields)
        db.session.commit()
        return attempt.id


@pytest.fixture
def rows(app):
    asha, ravi = make_user(app, "asha"), make_user(app, "ravi")
    ids = {
        "active": _record(app, asha, 10, m1="+919876543210", m2="+919812345678", mask="+918041234500",
                          expires_at=NOW + timedelta(hours=1), event_id="=HYPERLINK(\"http://x\")"),
        "busy": _record(app, ravi, 60 * 12, outcome="error", error_code=1503, m1="+919876543210",
                        m2="+919812345678", error_message="pair already masked"),
        "expired": _record(app, ravi, 60 * 30, m1="+919876500001", m2="+919812300002", mask="+918041234501",
                           expires_at=NOW - timedelta(hours=29)),
        "ended": _record(app, asha, 60 * 2, m1="+919876500003", m2="+919812300004", mask="+918041234502",
                         expires_at=NOW + timedelta(hours=3)),
    }
    with app.app_context():
        ended = db.session.get(attempts.MaskAttempt, ids["ended"])
        attempts.mark_ended(ended, NOW - timedelta(hours=1), by_user_id=ravi)
        db.session.commit()
    return ids


@pytest.fixture
def sup(app):
    return logged_in_client(app, "supervisor", "sue")


def _row_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="attempt-(\d+)"', html)]


# ---------------------------------------------------------------- roles

def test_roles(app, rows):
    urls = [("GET", "/history"), ("POST", f"/history/{rows['active']}/reveal"), ("POST", "/history/export")]
    agent = logged_in_client(app, "agent", "anna")
    for method, url in urls:
        assert agent.open(url, method=method).status_code == 403
        anonymous = app.test_client()
        response = anonymous.open(url, method=method)
        assert response.status_code in (302, 303) and urlsplit(response.headers["Location"]).path == "/login"
        htmx = anonymous.open(url, method=method, headers=HX)
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    for role in ("supervisor", "admin"):
        client = logged_in_client(app, role)
        for method, url in urls:
            assert client.open(url, method=method).status_code == 200, (role, url)
    assert agent.open("/history/export", method="POST").status_code == 403
    assert not audit_entries(app, "export history") or all(e.actor_name != "anna" for e in audit_entries(app, "export history"))


def test_nav_link_for_supervisors_and_admins_only(app):
    assert 'href="/history"' in logged_in_client(app, "supervisor").get("/history").get_data(as_text=True)
    assert 'href="/history"' in logged_in_client(app, "admin").get("/").get_data(as_text=True)
    assert 'href="/history"' not in logged_in_client(app, "agent").get("/").get_data(as_text=True)


# ---------------------------------------------------------------- the page

def test_page_lists_every_attempt_with_numbers_hidden(app, rows, sup):
    response = sup.get("/history")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert_no_inline_code(html)
    assert _row_ids(html) == [rows["active"], rows["ended"], rows["busy"], rows["expired"]]
    assert "+91 98XXXXX210" in html and "+91 98XXXXX678" in html
    assert "+91 98765 43210" not in html and "+919876543210" not in html  # the full number nowhere
    assert "+91 80 4123 4500" in html  # the masking number is the pool's, shown whole
    text = text_of(html)
    assert "Failed 1503 pair already masked" in text and "pair already masked" in text
    assert "Ended 10:30 by ravi" in text  # local time (IST) and by whom
    assert "Expired" in text and "Active" in text and "in 1 h" in text
    assert "11:20" in text  # created 05:50 UTC = 11:20 IST
    assert "Every export is recorded in the audit log" in text


def test_htmx_gets_the_filters_and_results_only_and_history_restore_the_page(app, rows, sup):
    partial = sup.get("/history?outcome=active", headers=HX).get_data(as_text=True)
    assert "<html" not in partial and 'id="history"' in partial and _row_ids(partial) == [rows["active"]]
    assert 'hx-push-url="true"' in partial
    restore = sup.get("/history?outcome=active", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


@pytest.mark.parametrize("query, expected", [
    ("agent=ravi", ["busy", "expired"]),
    ("agent=ASHA", ["active", "ended"]),
    ("start=2026-11-27", ["active", "ended"]),  # local day: from 26 Nov 18:30 UTC
    ("end=2026-11-26", ["busy", "expired"]),
    ("start=2026-11-26&end=2026-11-26", ["busy", "expired"]),
    ("start=2026-11-25&end=2026-11-25", []),
    ("outcome=active", ["active"]),
    ("outcome=expired", ["expired"]),
    ("outcome=ended", ["ended"]),
    ("outcome=failed", ["busy"]),
    ("outcome=failed:1503", ["busy"]),
    ("outcome=failed:1505", []),
    ("number=98765+43210", ["active", "busy"]),
    ("number=%2B91+98123", ["active", "ended", "busy", "expired"]),
    ("number=500003", []),
    ("number=500003&match=contains", ["ended"]),
    ("mask=08041234501", ["expired"]),
    ("mask=4500&match=contains", ["active"]),
    ("agent=ravi&outcome=failed&number=9876543210&start=2026-11-26&end=2026-11-27", ["busy"]),
    ("agent=asha&outcome=ended&mask=8041", ["ended"]),
])
def test_filters_alone_and_combined_from_the_url(app, rows, sup, query, expected):
    html = sup.get(f"/history?{query}").get_data(as_text=True)
    assert _row_ids(html) == [rows[name] for name in expected], query
    if not expected:
        assert "No attempts match these filters" in html


def test_typed_filters_stay_in_the_form(app, rows, sup):
    html = sup.get("/history?agent=ravi&start=2026-11-01&outcome=failed:1503&number=98765&match=contains"
                   ).get_data(as_text=True)
    assert '<option value="ravi" selected>' in html
    assert 'name="start" type="date" value="2026-11-01"' in html
    assert '<option value="failed:1503" selected>' in html
    assert 'name="number" type="text"' in html and 'value="98765"' in html
    assert 'value="contains" checked' in html
    # ... and in the export form, so the export is of what is shown.
    export = html[html.index('class="export"'):]
    for name, value in (("agent", "ravi"), ("start", "2026-11-01"), ("outcome", "failed:1503"), ("number", "98765")):
        assert f'name="{name}" value="{value}"' in export


@pytest.mark.parametrize("query, typed, message", [
    ("start=2026-02-30", 'value="2026-02-30"', "From date: enter a date as YYYY-MM-DD"),
    ("end=tomorrow", 'value="tomorrow"', "To date: enter a date as YYYY-MM-DD"),
    ("start=2026-11-27&end=2026-11-01", 'value="2026-11-01"', "To date: it is before the From date"),
    ("outcome=exploded", '<option value="exploded" selected>', "Outcome: choose one from the list"),
    ("number=98x65", 'value="98x65"', "Number: use digits only"),
    ("mask=12", 'value="12"', "Masking number: enter at least 4 digits"),
    ("agent=nobody", '<option value="nobody" selected>', "There is no user called “nobody”"),
    ("match=regex", 'value="starts" checked', "Number search: choose"),
    ("start=" + "9" * 500, 'value="' + "9" * 64 + '"', "From date"),
])
def test_bad_input_is_explained_and_kept(app, rows, sup, query, typed, message):
    for headers in ({}, HX):
        response = sup.get(f"/history?{query}", headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert message in text_of(html), html
        assert typed in html
        assert 'role="alert"' in html and ('aria-invalid="true"' in html or "match" in query)
        assert _row_ids(html) == []  # no results that look filtered but are not


def test_an_end_or_extend_says_which_mask_it_acted_on(app, rows, sup):
    with app.app_context():
        ended = db.session.get(attempts.MaskAttempt, rows["ended"])
        asha = ended.user_id
    end = _record(app, asha, 60, action="unset", m1=ended.m1, m2=ended.m2, mask=ended.mask, target=ended)
    html = sup.get("/history", headers=HX).get_data(as_text=True)
    row = html[html.index(f'<tr id="attempt-{end}"'):]
    made = humanize.local_time(ended.created_at, ZONE, NOW)
    assert text_of(row[:row.index("</tr>")]).startswith(f"{humanize.local_time(NOW - timedelta(minutes=60), ZONE, NOW)} "
                                                        f"asha End now of the mask made at {made}")


def test_the_service_s_times_in_a_failure_are_shown_in_local_time(app, sup):
    agent = make_user(app, "asha")
    _record(app, agent, 5, outcome="error", error_code=1503, m1="+919876543210", m2="+919812345678",
            error_message="Your masking request could not be expired until now: these two numbers are already "
                          "masked behind +918041234500 until 2026-11-27T07:00:00Z (not 2026-13-45T99:00:00Z)")
    text = text_of(sup.get("/history", headers=HX).get_data(as_text=True))
    assert "already masked behind +918041234500 until 12:30 (not 2026-13-45T99:00:00Z)" in text  # 07:00 UTC is 12:30 IST
    assert humanize.local_times_in("from 2026-11-25T20:00:00Z on", ZONE, NOW) == "from 26 Nov 01:30 on"


def test_a_to_date_before_the_from_date_keeps_both_date_pickers(app, sup):
    html = sup.get("/history?start=2026-11-27&end=2026-11-01", headers=HX).get_data(as_text=True)
    assert 'id="filter-start" name="start" type="date" value="2026-11-27"' in html
    assert 'id="filter-end" name="end" type="date" value="2026-11-01"' in html  # a date, only in the wrong order
    unreadable = sup.get("/history?end=tomorrow", headers=HX).get_data(as_text=True)
    assert 'id="filter-end" name="end" type="text" value="tomorrow"' in unreadable  # a date picker would drop it


def test_the_number_hint_matches_the_kind_of_search(app, sup):
    starts = text_of(sup.get("/history", headers=HX).get_data(as_text=True))
    assert "Its first digits: 98765 or +91 98765" in starts and "43210" not in starts
    contains = text_of(sup.get("/history?match=contains", headers=HX).get_data(as_text=True))
    assert "Any of its digits: 43210 or 98765" in contains


@pytest.mark.parametrize("cursor", ["before=zzz", "after=1", "before=99991231T235959.999999_999999999999999999",
                                    "before=20261127T134500.123456_" + "9" * 40, "before=20261127T134500.123456_99999999999"])
def test_an_absurd_page_cursor_shows_the_newest_page(app, rows, sup, cursor):
    response = sup.get(f"/history?{cursor}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _row_ids(html) == [rows["active"], rows["ended"], rows["busy"], rows["expired"]]
    assert "That page link is not valid any more" in html


# ---------------------------------------------------------------- pages

def test_keyset_pages_through_the_links(app, sup):
    agent = make_user(app, "asha")
    with app.app_context():
        s = db.session()
        for i in range(120):
            attempts.record(s, user_id=agent, action="set", now=NOW - timedelta(minutes=i // 2), outcome="error",
                            error_code=1505, m1=f"+9198765432{i % 100:02d}", m2="+919812345678")
        s.commit()
    seen, url, pages = [], "/history?outcome=failed:1505", 0
    while url:
        html = sup.get(url, headers=HX).get_data(as_text=True)
        seen += _row_ids(html)
        pages += 1
        older = re.search(r'<a href="([^"]+)" rel="next"', html)
        url = older.group(1).replace("&amp;", "&") if older else None
        if url:
            assert "outcome=failed%3A1505" in url and "before=" in url  # filters carried in the link
    assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120
    # Newest first by (created_at, id): two rows per minute, the later id first.
    assert seen == sorted(seen, key=lambda n: ((n - 1) // 2, -n))
    # From the last page, "Newer" goes back up.
    newer = re.search(r'<a href="([^"]+)" rel="prev"', html).group(1).replace("&amp;", "&")
    assert _row_ids(sup.get(newer).get_data(as_text=True)) == seen[50:100]
    assert 'hx-push-url="true"' in html and ">Newest</a>" in html


# ---------------------------------------------------------------- reveal

def test_reveal_shows_the_full_numbers_and_is_audited(app, rows, sup):
    response = sup.post(f"/history/{rows['busy']}/reveal", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert html.strip().startswith(f'<tr id="attempt-{rows["busy"]}"')
    assert "+91 98765 43210" in html and "+91 98123 45678" in html and "recorded in the audit log" in html
    assert "data-autofocus" in html  # keyboard focus lands on the numbers
    [entry] = audit_entries(app, "reveal numbers")
    assert entry.actor_name == "sue" and entry.target == f"attempt #{rows['busy']}" and "ravi" in entry.detail
    assert "9876543210" not in (entry.detail or "")  # the audit log does not copy the numbers
    # Without htmx: a page with the one row.
    page = sup.post(f"/history/{rows['busy']}/reveal").get_data(as_text=True)
    assert "<html" in page and "+91 98765 43210" in page
    assert len(audit_entries(app, "reveal numbers")) == 2
    assert sup.post("/history/999999/reveal", headers=HX).status_code == 404
    assert len(audit_entries(app, "reveal numbers")) == 2


def test_reveal_needs_the_csrf_token(database_url, clock):
    with configured_app(database_url, clock) as app:
        clock.set(NOW)
        asha = make_user(app, "asha")
        attempt = _record(app, asha, 5, m1="+919876543210", m2="+919812345678", mask="+918041234500",
                          expires_at=NOW + timedelta(hours=1))
        client = app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        make_user(app, "sue", "supervisor")
        assert login(client, "sue", csrf_token=token).status_code == 303
        token = csrf_from(client.get("/history").get_data(as_text=True))
        assert client.post(f"/history/{attempt}/reveal").status_code == 400
        assert client.post("/history/export").status_code == 400
        assert audit_entries(app, "reveal numbers") == [] and audit_entries(app, "export history") == []
        ok = client.post(f"/history/{attempt}/reveal", headers={**HX, "X-CSRFToken": token})
        assert ok.status_code == 200 and "+91 98765 43210" in ok.get_data(as_text=True)
        export = client.post("/history/export", data={"csrf_token": token})
        assert export.status_code == 200 and export.mimetype == "text/csv"
        export.close()


# ---------------------------------------------------------------- export

def _csv_rows(response) -> list[dict]:
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body[1:])))


def test_export_streams_the_current_filter(app, rows, sup):
    response = sup.post("/history/export", data={"agent": "asha", "numbers": "hidden"})
    assert response.status_code == 200 and response.is_streamed  # a generator, not a body held in memory
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="masking-history-20261127-1130')
    assert response.headers["Cache-Control"] == "no-store"
    exported = _csv_rows(response)
    assert [int(row["id"]) for row in exported] == [rows["active"], rows["ended"]]
    active = exported[0]
    assert active["first_number"] == "'+91 98XXXXX210"  # hidden, and text to a spreadsheet
    assert active["reference"] == "'=HYPERLINK(\"http://x\")"  # a formula typed by an agent stays text
    assert active["time"] == "2026-11-27 11:20:00" and active["agent"] == "asha" and active["result"] == "active"
    [entry] = audit_entries(app, "export history")
    assert entry.actor_name == "sue" and "numbers hidden" in entry.detail and "agent=asha" in entry.detail


def test_export_with_full_numbers_is_audited_as_such(app, rows, sup):
    response = sup.post("/history/export", data={"outcome": "failed", "numbers": "full"})
    exported = _csv_rows(response)
    assert len(exported) == 1
    busy = exported[0]
    assert busy["first_number"] == "'+919876543210" and busy["second_number"] == "'+919812345678"
    assert (busy["result"], busy["error_code"], busy["error"]) == ("failed", "1503", "pair already masked")
    for row in exported:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", value  # no cell a spreadsheet would evaluate
    [entry] = audit_entries(app, "export history")
    assert "numbers full" in entry.detail and "outcome=failed" in entry.detail


def test_export_of_bad_filters_explains_instead(app, rows, sup):
    response = sup.post("/history/export", data={"start": "not-a-date"})
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "From date: enter a date" in text_of(response.get_data(as_text=True))
    assert audit_entries(app, "export history") == []


def test_export_reads_in_batches(app, sup, monkeypatch):
    agent = make_user(app, "asha")
    with app.app_context():
        s = db.session()
        for i in range(25):
            attempts.record(s, user_id=agent, action="set", now=NOW - timedelta(seconds=i), outcome="error",
                            error_code=1505, m1="+919876543210", m2="+919812345678")
        s.commit()
    monkeypatch.setattr(history, "EXPORT_BATCH", 4)
    calls = []
    original = history.export_batches

    def counting(*args, **kwargs):
        for batch in original(*args, **{**kwargs, "batch_size": 4}):
            calls.append(len(batch))
            yield batch

    monkeypatch.setattr(history, "export_batches", counting)
    response = sup.post("/history/export")
    assert response.is_streamed and calls == []  # answered before a row was read
    stream = iter(response.response)
    header = next(stream)
    assert b"first_number" in header and calls == []
    first = next(stream)
    assert calls == [4] and first.count(b"\r\n") == 4  # one batch read, one chunk sent
    chunks = [header, first, *stream]
    assert len(chunks) == 1 + 7
    assert calls == [4, 4, 4, 4, 4, 4, 1]
    response.close()
    assert len(list(csv.reader(io.StringIO("".join(c if isinstance(c, str) else c.decode() for c in chunks))))) == 26
