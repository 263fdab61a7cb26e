"""Admin pages, the pool: the list with each number's status and live use, adding numbers with a
per-line report, the CSV import (progress indicator, rejected rows, re-import, size limit, binary
files), reserve / retire / activate, roles, CSRF, and an audit entry for every change."""
from __future__ import annotations

import html as html_module
import io
import re

import pytest

from masking.humanize import phone
from tests.admin_helpers import audit_entries, pool_rows
from tests.api_helpers import configured_app, set_masking
from tests.conftest import PARTIES, POOL, ROOT, add_pool, make_account
from tests.dashboard_helpers import HX, assert_no_inline_code, csrf_from, logged_in_client, login, make_user, \
    text_of



@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF has its own test below
    return app


@pytest.fixture
def admin_client(app):
    return logged_in_client(app, "admin", "boss")


def _text(response) -> str:
    return html_module.unescape(text_of(response.get_data(as_text=True)))


def _upload(client, content: bytes, name: str = "numbers.csv", htmx: bool = True):
    response = client.post("/admin/pool/import", data={"file": (io.BytesIO(content), name)},
                           content_type="multipart/form-data", headers=HX if htmx else {})
    response.request.environ["wsgi.input"].close()  # the test client spools a large body to a temporary file
    return response


def _number_id(app, number: str) -> int:
    return pool_rows(app)[number].id


# ---------------------------------------------------------------- roles

@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_other_roles_get_403_on_every_pool_action(app, role):
    add_pool(app, POOL[0])
    client = logged_in_client(app, role)
    number_id = _number_id(app, POOL[0])
    assert client.get("/admin/pool").status_code == 403
    assert client.post("/admin/pool/add", data={"numbers": POOL[1]}).status_code == 403
    assert _upload(client, POOL[1].encode()).status_code == 403
    assert client.post(f"/admin/pool/{number_id}/status", data={"status": "retired"}, headers=HX).status_code == 403
    assert set(pool_rows(app)) == {POOL[0]} and pool_rows(app)[POOL[0]].status == "active"
    assert audit_entries(app) == []


# ---------------------------------------------------------------- the list

def test_pool_page_shows_each_number_with_status_and_current_use(app, admin_client):
    add_pool(app, *POOL[:3])
    account = make_account(app)
    api = app.test_client()
    first = set_masking(api, account, PARTIES[0], PARTIES[1])
    second = set_masking(api, account, PARTIES[0], PARTIES[2])  # m1 is busy on the first number
    assert first["mask"] != second["mask"]
    set_masking(api, account, PARTIES[3], PARTIES[4])
    admin_client.post(f"/admin/pool/{_number_id(app, POOL[2])}/status", data={"status": "reserved"}, headers=HX)
    page = admin_client.get("/admin/pool")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert_no_inline_code(html)
    rows = {m.group(1): text_of(m.group(2)) for m in re.finditer(r'<tr id="number-(\d+)">(.*?)</tr>', html, re.S)}
    live = {}
    for number in POOL[:3]:
        row = rows[str(_number_id(app, number))]
        live[number] = int(re.search(r"\b(active|reserved|retired) (\d+) ", row).group(2))
    assert sorted(live.values()) == [1, 2] or sum(live.values()) == 3
    assert sum(live.values()) == 3
    assert "reserved" in rows[str(_number_id(app, POOL[2]))]
    assert "(2 active, 1 reserved, 0 retired;" in text_of(html)
    # the status filter, as a bookmarkable URL and as an htmx partial
    reserved = admin_client.get("/admin/pool?status=reserved", headers=HX).get_data(as_text=True)
    assert "<html" not in reserved and reserved.count('<tr id="number-') == 1
    assert admin_client.get("/admin/pool?status=bogus").status_code == 200  # an unknown filter shows all


def test_a_large_pool_is_listed_a_page_at_a_time_and_searchable(app, admin_client):
    numbers = [f"+9180412{i:05d}" for i in range(250)]
    add_pool(app, *numbers)
    shown, url, pages = [], "/admin/pool", 0
    while url:
        html = admin_client.get(url).get_data(as_text=True)
        rows = re.findall(r'<tr id="number-\d+">\s*<td data-label="Number" class="mono">([^<]+)</td>', html)
        assert 0 < len(rows) <= 100
        shown += rows
        match = re.search(r'<a href="([^"]+)"[^>]*>Next numbers', html)
        url = html_module.unescape(match.group(1)) if match else None
        pages += 1
    assert pages == 3 and len(shown) == 250 and len(set(shown)) == 250
    assert "(250 active, 0 reserved, 0 retired; 0 serving live masks now)" in text_of(html)
    found = admin_client.get("/admin/pool?digits=41200-123", headers=HX).get_data(as_text=True)
    assert found.count('<tr id="number-') == 1 and 'value="41200123"' in found
    assert "No numbers match." in _text(admin_client.get("/admin/pool?digits=999999"))


def test_empty_pool_says_what_to_do(admin_client):
    assert "The pool is empty" in _text(admin_client.get("/admin/pool"))


# ---------------------------------------------------------------- add numbers

def test_add_numbers_reports_each_bad_line_and_keeps_the_good_ones(app, admin_client):
    typed = f"{POOL[0]}\n\n080 4123 4501\nnot a number\n{POOL[0]}\n12345\n"
    response = admin_client.post("/admin/pool/add", data={"numbers": typed, "status": "active"}, headers=HX)
    html = response.get_data(as_text=True)
    text = _text(response)
    assert response.status_code == 200 and "<html" not in html
    assert "2 added, 1 already in the pool, 2 rejected." in text
    assert re.search(r"4 'not a number' is not a phone number", text)
    assert re.search(r"6 '12345' is not a valid phone number", text)
    assert f">{typed}</textarea>" in html  # what was typed stays, to fix the bad lines
    assert response.headers["HX-Trigger"] == "pool-changed"
    assert set(pool_rows(app)) == {POOL[0], POOL[1]}
    [entry] = audit_entries(app, "pool.add")
    assert entry.actor_name == "boss" and entry.target == "2 numbers"
    # Which numbers were added, and the lines rejected as the admin typed them (blank line 2 counts).
    assert entry.detail == f"2 added ({POOL[0]} {POOL[1]}), 1 already in the pool, 2 rejected (lines 4 6)"


def test_add_numbers_all_good_empties_the_box_and_re_adding_adds_nothing(app, admin_client):
    response = admin_client.post("/admin/pool/add", data={"numbers": f"{POOL[0]}\r\n{POOL[1]}", "status": "reserved"},
                                 headers=HX)
    assert "2 added, 0 already in the pool, 0 rejected." in _text(response)
    assert "></textarea>" in response.get_data(as_text=True)
    assert {row.status for row in pool_rows(app).values()} == {"reserved"}
    again = admin_client.post("/admin/pool/add", data={"numbers": f"{POOL[0]}\n{POOL[1]}"}, headers=HX)
    assert "0 added, 2 already in the pool, 0 rejected." in _text(again)
    assert len(pool_rows(app)) == 2 and len(audit_entries(app, "pool.add")) == 2


@pytest.mark.parametrize("typed, message", [
    ("", "Type at least one number, one per line."),
    ("  \n \n", "Type at least one number, one per line."),
    ("\n".join(f"+9180412{i:05d}" for i in range(1001)), "That is 1001 lines; add at most 1000 here"),
])
def test_add_numbers_refusals(app, admin_client, typed, message):
    response = admin_client.post("/admin/pool/add", data={"numbers": typed}, headers=HX)
    assert response.status_code == 200 and message in _text(response)
    assert pool_rows(app) == {} and audit_entries(app) == []


def test_add_numbers_all_rejected_records_nothing(app, admin_client):
    response = admin_client.post("/admin/pool/add", data={"numbers": "abc\n123"}, headers=HX)
    assert "0 added, 0 already in the pool, 2 rejected." in _text(response)
    assert pool_rows(app) == {} and audit_entries(app) == []


def test_add_numbers_without_htmx(app, admin_client):
    ok = admin_client.post("/admin/pool/add", data={"numbers": POOL[0]})
    assert ok.status_code == 303 and ok.headers["Location"] == "/admin/pool"
    assert "1 added" in _text(admin_client.get("/admin/pool"))
    bad = admin_client.post("/admin/pool/add", data={"numbers": f"{POOL[1]}\nnope"})
    assert bad.status_code == 422 and "<html" in bad.get_data(as_text=True) and "nope" in _text(bad)


# ---------------------------------------------------------------- import a CSV file

def test_import_page_has_an_upload_progress_indicator_without_inline_code(admin_client):
    html = admin_client.get("/admin/pool").get_data(as_text=True)
    form = re.search(r'<form id="pool-import-form"[^>]*>', html, re.S).group(0)
    assert 'hx-encoding="multipart/form-data"' in form and 'data-progress="import-progress"' in form
    assert 'data-max-bytes="5242880"' in form
    assert re.search(r'<progress id="import-progress"[^>]*hidden', html)
    assert_no_inline_code(html)
    script = (ROOT / "static" / "js" / "app.js").read_text()
    assert "htmx:xhr:progress" in script and "data-progress" in script and "data-max-bytes" in script


def test_import_reports_rejected_rows_by_line_and_keeps_good_rows(app, admin_client):
    content = (f"number,status\n{POOL[0]}\n# a comment\n\n080 4123 4502,reserved\nnonsense\n"
               f"{POOL[3]},sold\n{POOL[4]},active,extra\n{POOL[0]}\n").encode()
    response = _upload(admin_client, content, "carrier.csv")
    text = _text(response)
    assert response.status_code == 200 and "<html" not in response.get_data(as_text=True)
    assert "File: carrier.csv" in text
    assert "2 added, 1 already in the pool, 3 rejected." in text
    assert "6 'nonsense' is not a phone number" in text
    assert "7 status must be one of active, reserved, retired, got 'sold'" in text
    assert "8 too many columns; expected number[,status]" in text
    assert response.headers["HX-Trigger"] == "pool-changed"
    rows = pool_rows(app)
    assert set(rows) == {POOL[0], POOL[2]} and rows[POOL[2]].status == "reserved"
    [entry] = audit_entries(app, "pool.import")
    assert entry.actor_name == "boss" and entry.target == "carrier.csv"
    assert entry.detail == f"2 added ({POOL[0]} {POOL[2]}), 1 already in the pool, 3 rejected (lines 6 7 8)"
    # The same file again adds nothing.
    again = _upload(admin_client, content, "carrier.csv")
    assert "0 added, 3 already in the pool, 3 rejected." in _text(again)
    assert len(pool_rows(app)) == 2


def test_import_with_a_utf8_bom_and_windows_lines(app, admin_client):
    response = _upload(admin_client, b"\xef\xbb\xbfnumber\r\n" + POOL[0].encode() + b"\r\n" + POOL[1].encode())
    assert "2 added, 0 already in the pool, 0 rejected." in _text(response)


def test_import_file_name_with_control_characters(app, admin_client):
    response = _upload(admin_client, POOL[0].encode(), "odd\x00name.csv")
    assert "1 added" in _text(response)
    assert audit_entries(app, "pool.import")[0].target == "oddname.csv"


def test_import_without_htmx_redirects_when_all_good(app, admin_client):
    ok = _upload(admin_client, POOL[0].encode(), htmx=False)
    assert ok.status_code == 303 and ok.headers["Location"] == "/admin/pool"
    assert "numbers.csv: 1 added" in _text(admin_client.get("/admin/pool"))
    bad = _upload(admin_client, b"nope", htmx=False)
    assert bad.status_code == 422 and "1 'nope' is not a phone number" in _text(bad)


@pytest.mark.parametrize("content, name, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "photo.csv", "the file is not UTF-8 text; save it as CSV (UTF-8)"),
    ("numéro\n+918041234500\n".encode("latin-1"), "latin.csv", "not UTF-8 text"),
    (b"+918041234500\x00\x00\x00", "nul.csv", "the file is not a text CSV file"),
    (b"", "empty.csv", "The file is empty."),
])
def test_import_refuses_binary_non_utf8_and_empty_files(app, admin_client, content, name, message):
    response = _upload(admin_client, content, name)
    text = _text(response)
    assert response.status_code == 200 and message.lower() in text.lower()
    assert name in text
    assert pool_rows(app) == {} and audit_entries(app) == []


def test_import_without_a_file(app, admin_client):
    response = admin_client.post("/admin/pool/import", data={}, content_type="multipart/form-data", headers=HX)
    assert response.status_code == 200 and "Choose a CSV file to import." in _text(response)
    response = admin_client.post("/admin/pool/import", data={"file": (io.BytesIO(b""), "")},
                                 content_type="multipart/form-data", headers=HX)
    assert "Choose a CSV file to import." in _text(response)


def test_import_over_the_size_limit_is_refused_with_a_clear_message(app, admin_client):
    app.config["POOL_IMPORT_MAX_BYTES"] = 1024
    small_enough = ("\n".join(POOL[:10])).encode()
    assert len(small_enough) < 1024
    assert "10 added" in _text(_upload(admin_client, small_enough))
    line = (POOL[20] + "\n").encode()
    # Over the file limit but within the request allowance: counted while reading.
    response = _upload(admin_client, line * 80, "big.csv")
    assert response.status_code == 200
    assert "The file is larger than 1 KB. Split it into smaller files" in _text(response)
    # Far over: refused before the body is read (413 answered as a page, never a bare error).
    response = _upload(admin_client, line * 100_000, "huge.csv")
    assert response.status_code == 200 and "The file is larger than 1 KB" in _text(response)
    plain = _upload(admin_client, line * 100_000, "huge.csv", htmx=False)
    assert plain.status_code == 422 and "<html" in plain.get_data(as_text=True)
    assert len(pool_rows(app)) == 10 and len(audit_entries(app, "pool.import")) == 1


def test_default_size_limit_is_five_megabytes(app, admin_client):
    content = b"#" * (5 * 1024 * 1024 + 1)
    response = _upload(admin_client, content, "big.csv")
    assert "The file is larger than 5 MB" in _text(response)


# ---------------------------------------------------------------- reserve, retire, activate

def test_reserve_retire_and_activate_a_number(app, admin_client):
    add_pool(app, POOL[0])
    number_id = _number_id(app, POOL[0])
    for status, action, words in [("reserved", "pool.reserve", "is reserved: not given out to new masks"),
                                  ("retired", "pool.retire", "is retired: never given out again"),
                                  ("active", "pool.activate", "is active again")]:
        response = admin_client.post(f"/admin/pool/{number_id}/status", data={"status": status}, headers=HX)
        assert response.status_code == 200 and 'id="pool-list"' in response.get_data(as_text=True)
        assert words in _text(response)
        assert pool_rows(app)[POOL[0]].status == status
        [entry] = audit_entries(app, action)
        assert entry.actor_name == "boss" and entry.target == POOL[0]
    assert [e.detail for e in audit_entries(app)] == ["active -> reserved", "reserved -> retired",
                                                      "retired -> active"]


def test_retired_numbers_are_not_given_out(app, admin_client):
    add_pool(app, *POOL[:2])
    admin_client.post(f"/admin/pool/{_number_id(app, POOL[0])}/status", data={"status": "retired"}, headers=HX)
    account = make_account(app)
    api = app.test_client()
    for i in range(2):
        assert set_masking(api, account, PARTIES[i * 2 + 10], PARTIES[i * 2 + 11])["mask"] == POOL[1]


def test_destructive_pool_actions_ask_for_confirmation(app, admin_client):
    add_pool(app, POOL[0])
    html = admin_client.get("/admin/pool").get_data(as_text=True)
    forms = re.findall(r"<form[^>]*pool/\d+/status[^>]*>.*?</form>", html, re.S)
    retire = next(f for f in forms if 'value="retired"' in f)
    reserve = next(f for f in forms if 'value="reserved"' in f)
    assert "hx-confirm=" in retire and "hx-confirm=" in reserve


@pytest.mark.parametrize("live, words", [(0, "."), (1, "; its live mask runs to its end."),
                                         (2, "; its 2 live masks run to their end.")])
def test_the_retire_question_counts_the_live_masks_in_plain_words(app, admin_client, live, words):
    add_pool(app, POOL[0])
    account = make_account(app)
    for i in range(live):
        set_masking(app.test_client(), account, PARTIES[2 * i], PARTIES[2 * i + 1])
    html = html_module.unescape(admin_client.get("/admin/pool").get_data(as_text=True))
    assert f'hx-confirm="Retire {phone(POOL[0])}? It will not be given out to new masks{words}"' in html


@pytest.mark.parametrize("status, message", [("active", "is already active."),
                                             ("gone", "The status must be one of active, reserved, retired."),
                                             ("", "The status must be one of")])
def test_status_refusals(app, admin_client, status, message):
    add_pool(app, POOL[0])
    response = admin_client.post(f"/admin/pool/{_number_id(app, POOL[0])}/status", data={"status": status},
                                 headers=HX)
    assert response.status_code == 200 and message in _text(response)
    assert pool_rows(app)[POOL[0]].status == "active" and audit_entries(app) == []


def test_status_of_an_unknown_number_is_404(admin_client):
    assert admin_client.post("/admin/pool/999999/status", data={"status": "retired"}, headers=HX).status_code == 404


def test_status_change_keeps_the_list_filter_and_works_without_htmx(app, admin_client):
    add_pool(app, *POOL[:2])
    number_id = _number_id(app, POOL[0])
    html = admin_client.get("/admin/pool?status=active").get_data(as_text=True)
    assert f"/admin/pool/{number_id}/status?status=active" in html
    response = admin_client.post(f"/admin/pool/{number_id}/status?status=active", data={"status": "reserved"},
                                 headers=HX)
    assert response.get_data(as_text=True).count('<tr id="number-') == 1  # still only the active ones
    plain = admin_client.post(f"/admin/pool/{number_id}/status", data={"status": "retired"})
    assert plain.status_code == 303 and "is retired" in _text(admin_client.get("/admin/pool"))


# ---------------------------------------------------------------- CSRF

def test_pool_actions_need_the_csrf_token(database_url, clock):
    with configured_app(database_url, clock) as app:
        make_user(app, "boss", "admin")
        add_pool(app, POOL[0])
        client = app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        login(client, "boss", csrf_token=token)
        token = csrf_from(client.get("/admin/pool").get_data(as_text=True))
        number_id = _number_id(app, POOL[0])
        assert client.post("/admin/pool/add", data={"numbers": POOL[1]}).status_code == 400
        assert _upload(client, POOL[2].encode(), htmx=False).status_code == 400
        assert client.post(f"/admin/pool/{number_id}/status", data={"status": "retired"}).status_code == 400
        assert set(pool_rows(app)) == {POOL[0]}
        ok = client.post("/admin/pool/import", data={"file": (io.BytesIO(POOL[2].encode()), "a.csv")},
                         content_type="multipart/form-data", headers={**HX, "X-CSRFToken": token})
        assert "1 added" in _text(ok)
        # Over the limit with CSRF on: the limit answers before the token check reads the body.
        app.config["POOL_IMPORT_MAX_BYTES"] = 1024
        big = client.post("/admin/pool/import", data={"file": (io.BytesIO(b"1" * 200_000), "b.csv")},
                          content_type="multipart/form-data", headers={**HX, "X-CSRFToken": token})
        assert big.status_code == 200 and "larger than 1 KB" in _text(big)
