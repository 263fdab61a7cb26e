"""Admin pages, API credentials: create (token shown once, only its hash stored), list, revoke,
the dashboard's own account guarded, refusals in plain words, roles, and the audit entries."""
from __future__ import annotations

import hashlib
import html as html_module
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from masking import administration
from masking.clock import utcnow
from masking.db import write_transaction
from masking.models import ApiAccount
from masking.web.extensions import db
from masking.web.service_client import BUILTIN_USER_ID, ensure_builtin_account
from tests.admin_helpers import audit_entries
from tests.api_helpers import LIST, LOGIN, SET, configured_app, post
from tests.conftest import make_account
from tests.dashboard_helpers import HX, assert_no_inline_code, csrf_from, logged_in_client, login, make_user, text_of


@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False
    return app


@pytest.fixture
def admin_client(app):
    return logged_in_client(app, "admin", "boss")


def _text(response) -> str:
    return html_module.unescape(text_of(response.get_data(as_text=True)))


def _accounts(app) -> dict[str, ApiAccount]:
    with app.app_context():
        return {a.user_id: a for a in db.session.scalars(select(ApiAccount))}


def _account_id(app, user_id: str) -> int:
    return _accounts(app)[user_id].id


def _api_code(app, body: dict) -> int:
    """Auth/login with these credentials: 200 on success, else the error code."""
    answer = post(app.test_client(), LOGIN, body).get_json()
    return 200 if answer["status"] == "success" else answer["code"]


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_other_roles_get_403(app, role):
    account = make_account(app, "crm")
    client = logged_in_client(app, role)
    assert client.get("/admin/credentials").status_code == 403
    assert client.post("/admin/credentials", data={"name": "x", "access": "read-write"}).status_code == 403
    assert client.post(f"/admin/credentials/{_account_id(app, account['userId'])}/revoke",
                       headers=HX).status_code == 403
    assert client.post(f"/admin/credentials/{_account_id(app, account['userId'])}/rotate", data={"grace": "0"},
                       headers=HX).status_code == 403
    assert set(_accounts(app)) == {account["userId"]} and _accounts(app)[account["userId"]].revoked_at is None
    assert _api_code(app, account) == 200
    assert audit_entries(app) == []


def test_create_shows_the_token_once_and_stores_only_its_hash(app, admin_client):
    owner = make_account(app, "CRM")
    response = admin_client.post("/admin/credentials", data={"name": "CRM integration", "access": "read-only",
                                                             "reads_for": owner["userId"]}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert response.headers["HX-Trigger"] == "credentials-changed"
    assert response.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code class="secret" id="new-token">(mtk_[A-Za-z0-9_-]+)</code>', html).group(1)
    assert f'data-copy="{token}"' in html  # the copy button
    assert "This is the only time the token is shown" in _text(response)
    assert_no_inline_code(html)
    [account] = [a for a in _accounts(app).values() if a.name == "CRM integration"]
    assert account.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert account.can_write is False and account.reads_for_id == _account_id(app, owner["userId"])
    assert f"read-only, reads the masks of CRM {owner['userId']}" in _text(response)
    assert _api_code(app, {"userId": account.user_id, "token": token}) == 200  # it works
    # Never again: not in the list, not on the page, not in the audit log.
    for page in (admin_client.get("/admin/credentials"), admin_client.get("/admin/credentials", headers=HX)):
        assert token not in page.get_data(as_text=True)
        assert account.user_id in page.get_data(as_text=True)
    [entry] = audit_entries(app, "api_account.create")
    assert (entry.actor_name, entry.target) == ("boss", account.user_id)
    assert entry.detail == f"CRM integration (read-only, reads for {owner['userId']})" and token not in entry.detail


def test_the_list_shows_user_id_name_access_created_and_revoked(app, admin_client, clock):
    writer = make_account(app, "Billing", can_write=True)
    reader = make_account(app, "Reports", can_write=False, reads_for=writer)
    legacy = make_account(app, "Old reports", can_write=False)
    admin_client.post(f"/admin/credentials/{_account_id(app, reader['userId'])}/revoke", headers=HX)
    page = admin_client.get("/admin/credentials")
    assert page.status_code == 200
    assert_no_inline_code(page.get_data(as_text=True))
    html = page.get_data(as_text=True)
    rows = {m.group(1): text_of(m.group(2)) for m in re.finditer(r'<tr id="account-(\d+)"[^>]*>(.*?)</tr>', html, re.S)}
    writer_row = rows[str(_account_id(app, writer["userId"]))]
    reader_row = rows[str(_account_id(app, reader["userId"]))]
    assert writer["userId"] in writer_row and "Billing" in writer_row and "read-write" in writer_row
    assert "active" in writer_row and "Revoke" in writer_row
    assert reader["userId"] in reader_row and "read-only" in reader_row and "revoked" in reader_row
    assert f"reads the masks of Billing {writer['userId']}" in html_module.unescape(reader_row)
    assert "Revoke" not in reader_row
    assert "reads no masks" in rows[str(_account_id(app, legacy["userId"]))]
    assert re.search(r"\d{4} \d\d:\d\d IST", writer_row)  # created, local time


def test_a_reader_of_a_revoked_account_says_it_reads_nothing_now(app, admin_client):
    writer = make_account(app, "Billing")
    reader = make_account(app, "Reports", can_write=False, reads_for=writer)
    admin_client.post(f"/admin/credentials/{_account_id(app, writer['userId'])}/revoke", headers=HX)
    html = admin_client.get("/admin/credentials").get_data(as_text=True)
    row = html_module.unescape(text_of(re.search(rf'<tr id="account-{_account_id(app, reader["userId"])}"[^>]*>(.*?)</tr>',
                                                 html, re.S).group(1)))
    assert f"reads the masks of Billing {writer['userId']}" in row and "which is revoked: it reads nothing now" in row
    assert _api_code(app, reader) == 1014


def test_create_without_htmx_shows_the_token_on_the_page(app, admin_client):
    response = admin_client.post("/admin/credentials", data={"name": "Batch", "access": "read-write"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html
    token = re.search(r'id="new-token">(mtk_[^<]+)<', html).group(1)
    user_id = next(a.user_id for a in _accounts(app).values() if a.name == "Batch")
    assert _api_code(app, {"userId": user_id, "token": token}) == 200


def test_a_read_only_account_must_read_for_an_active_read_write_account(app, admin_client):
    writer = make_account(app, "Billing")
    reader = make_account(app, "Reports", can_write=False, reads_for=writer)
    leaver = make_account(app, "Leaver")
    admin_client.post(f"/admin/credentials/{_account_id(app, leaver['userId'])}/revoke", headers=HX)
    form = admin_client.get("/admin/credentials").get_data(as_text=True)
    choices = re.findall(r'<option value="(u[0-9a-f]+)"', form)
    assert choices == [writer["userId"]]  # neither the reader nor the revoked account is offered
    assert f'>Billing ({writer["userId"]})</option>' in form
    before = set(_accounts(app))
    for reads_for, message in (
            ("", "Choose the read-write account whose masks it reads"),
            ("u0000000000000000", "There is no API account 'u0000000000000000' to read for."),
            (reader["userId"], f"{reader['userId']} is read-only itself"),
            (leaver["userId"], f"{leaver['userId']} is revoked"),
    ):
        response = admin_client.post("/admin/credentials", data={"name": "BI", "access": "read-only",
                                                                 "reads_for": reads_for}, headers=HX)
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and message in _text(response), reads_for
        assert 'value="BI"' in html and 'value="read-only" checked' in html  # what was chosen is kept
        assert re.search(r'<select id="credential-reads-for"[^>]*aria-invalid="true"', html)
    assert set(_accounts(app)) == before  # nothing made
    # A read-write account ignores the field.
    admin_client.post("/admin/credentials", data={"name": "Batch", "access": "read-write",
                                                  "reads_for": writer["userId"]}, headers=HX)
    [batch] = [a for a in _accounts(app).values() if a.name == "Batch"]
    assert batch.can_write and batch.reads_for_id is None


@pytest.mark.parametrize("data, message", [
    ({"name": "", "access": "read-write"}, "Enter a name for the account"),
    ({"name": "   ", "access": "read-write"}, "Enter a name for the account"),
    ({"name": "x" * 121, "access": "read-write"}, "The name must be at most 120 characters."),
    ({"name": "CRM", "access": "root"}, "Choose read-write or read-only."),
    ({"name": "CRM"}, "Choose read-write or read-only."),
    ({"name": "CRM\x00x", "access": "read-write"}, "must not contain control characters"),
])
def test_create_refusals_keep_the_name(app, admin_client, data, message):
    response = admin_client.post("/admin/credentials", data=data, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and message in _text(response)
    if "\x00" not in data["name"]:
        assert f'value="{data["name"].strip()}"' in html  # what was typed is kept
    assert "mtk_" not in html
    # The refusal is under the field it is about: the name's input, or the access choice.
    said = re.escape(html_module.escape(message, quote=False))
    if message.startswith("Choose"):
        assert re.search(r'<p id="credential-access-check" class="check"><span class="bad" role="alert">' + said, html)
        assert 'aria-invalid="true"' not in html
    else:
        assert re.search(r'id="credential-name"[^>]*aria-invalid="true"[^>]*>\s*<p id="credential-check"[^>]*>'
                         r'<span class="bad" role="alert">[^<]*' + said, html), html
    assert _accounts(app) == {} and audit_entries(app) == []
    plain = admin_client.post("/admin/credentials", data=data)
    assert plain.status_code == 422 and message in _text(plain)


def test_revoke_stops_the_token_and_is_audited(app, admin_client):
    account = make_account(app, "crm")
    assert _api_code(app, account) == 200
    account_id = _account_id(app, account["userId"])
    page = admin_client.get("/admin/credentials").get_data(as_text=True)
    form = re.search(rf'<form[^>]*credentials/{account_id}/revoke[^>]*>', page, re.S).group(0)
    assert "hx-confirm=" in form and "cannot be undone" in form
    response = admin_client.post(f"/admin/credentials/{account_id}/revoke", headers=HX)
    assert response.status_code == 200 and 'id="credential-list"' in response.get_data(as_text=True)
    assert f"{account['userId']} (crm) is revoked" in _text(response)
    assert _accounts(app)[account["userId"]].revoked_at is not None
    assert _api_code(app, account) == 1014
    [entry] = audit_entries(app, "api_account.revoke")
    assert (entry.actor_name, entry.target, entry.detail) == ("boss", account["userId"], "crm")
    again = admin_client.post(f"/admin/credentials/{account_id}/revoke", headers=HX)
    assert "is already revoked" in _text(again) and len(audit_entries(app)) == 1
    plain = admin_client.post(f"/admin/credentials/{account_id}/revoke")
    assert plain.status_code == 303 and plain.headers["Location"] == "/admin/credentials"


def test_revoke_unknown_account_is_404(admin_client):
    assert admin_client.post("/admin/credentials/999999/revoke", headers=HX).status_code == 404


def test_the_dashboards_own_account_needs_a_typed_confirmation(app, admin_client):
    with app.app_context():
        ensure_builtin_account()
    account_id = _account_id(app, BUILTIN_USER_ID)
    page = admin_client.get("/admin/credentials")
    assert "The dashboard's own account: agents mask numbers through it." in _text(page)
    assert f'id="confirm-{account_id}"' in page.get_data(as_text=True)
    for confirm in (None, "", "yes"):
        data = {} if confirm is None else {"confirm": confirm}
        response = admin_client.post(f"/admin/credentials/{account_id}/revoke", data=data, headers=HX)
        assert "Not revoked. dashboard is the dashboard's own account" in _text(response)
        assert _accounts(app)[BUILTIN_USER_ID].revoked_at is None
    assert audit_entries(app) == []
    response = admin_client.post(f"/admin/credentials/{account_id}/revoke", data={"confirm": " Revoke "}, headers=HX)
    assert "dashboard (Dashboard (built in)) is revoked" in _text(response)
    assert _accounts(app)[BUILTIN_USER_ID].revoked_at is not None
    assert len(audit_entries(app, "api_account.revoke")) == 1


def test_the_dashboards_own_account_is_guarded_below_the_pages(app):
    """The guard is in the admin rules, so every caller gets it, not only this page and the CLI."""
    with app.app_context():
        ensure_builtin_account()
        account = db.session.scalar(select(ApiAccount).where(ApiAccount.user_id == BUILTIN_USER_ID))
        with pytest.raises(administration.DashboardAccountError, match="the dashboard's own account"):
            with write_transaction(db.session()):
                administration.revoke_api_account(db.session(), None, account, utcnow())
        db.session.expire_all()
        assert db.session.get(ApiAccount, account.id).revoked_at is None
        with write_transaction(db.session()):
            administration.revoke_api_account(db.session(), None, account, utcnow(), dashboard_confirmed=True)
        db.session.expire_all()
        assert db.session.get(ApiAccount, account.id).revoked_at is not None
    assert [e.action for e in audit_entries(app)] == ["api_account.revoke"]


def test_a_read_only_account_made_here_cannot_write(app, admin_client):
    owner = make_account(app, "CRM")
    html = admin_client.post("/admin/credentials", data={"name": "Reader", "access": "read-only",
                                                         "reads_for": owner["userId"]}, headers=HX).get_data(as_text=True)
    token = re.search(r'id="new-token">(mtk_[^<]+)<', html).group(1)
    user_id = next(a.user_id for a in _accounts(app).values() if a.name == "Reader")
    body = post(app.test_client(), SET, {"userId": user_id, "token": token, "m1": "+919876543200",
                                         "m2": "+919876543201"}).get_json()
    assert body["code"] == 1015


# ---------------------------------------------------------------- New token (rotation)

T0 = datetime(2030, 1, 1, 6, 30)  # 12:00 IST


def _list_code(app, body: dict) -> int:
    """Masking/list with these credentials, at the app's clock: 200 on success, else the error code."""
    answer = post(app.test_client(), LIST, body).get_json()
    return 200 if answer["status"] == "success" else answer["code"]


def _row(html: str, account_id: int) -> str:
    return re.search(rf'<tr id="account-{account_id}"[^>]*>(.*?)</tr>', html, re.S).group(1)


def _rotate(client, account_id: int, grace, **kwargs):
    return client.post(f"/admin/credentials/{account_id}/rotate", data={} if grace is None else {"grace": grace},
                       **kwargs)


def _rotated_token(html: str) -> str:
    return re.search(r'<code class="secret" id="rotated-token">(mtk_[A-Za-z0-9_-]+)</code>', html).group(1)


def test_new_token_is_shown_once_and_the_old_one_stops_at_once(app, clock):
    clock.set(T0)
    admin_client = logged_in_client(app, "admin", "boss")  # after the clock is set: sessions end when idle
    account = make_account(app, "crm")
    account_id = _account_id(app, account["userId"])
    ssid = post(app.test_client(), LOGIN, account).get_json()["data"]["ssid"]
    row = _row(admin_client.get("/admin/credentials").get_data(as_text=True), account_id)
    form = re.search(rf'<form[^>]*credentials/{account_id}/rotate[^>]*>', row, re.S).group(0)
    assert "a new token?" in html_module.unescape(form) and "also ends its open sessions" in html_module.unescape(form)
    assert re.findall(r'<option value="(\d+)">', row) == ["0", "60", "1440", "10080"]
    response = _rotate(admin_client, account_id, "0", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and 'id="credential-list"' in html
    assert response.headers["Cache-Control"] == "no-store"
    assert_no_inline_code(html)
    token = _rotated_token(html)
    assert f'data-copy="{token}"' in html and 'data-copy="' + account["userId"] + '"' in html
    said = _text(response)
    assert f"New token for {account['userId']}: copy it now" in said
    assert "This is the only time the token is shown" in said and "The account keeps its masks." in said
    assert "The old token no longer works, and the account's open sessions (ssids) have ended." in said
    assert _accounts(app)[account["userId"]].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert _list_code(app, account) == 1014 and _list_code(app, {"ssid": ssid}) == 1014
    assert _list_code(app, {"userId": account["userId"], "token": token}) == 200
    for page in (admin_client.get("/admin/credentials"), admin_client.get("/admin/credentials", headers=HX)):
        assert token not in page.get_data(as_text=True)
    [entry] = audit_entries(app, "api_account.rotate")
    assert (entry.actor_name, entry.target) == ("boss", account["userId"])
    assert entry.detail == "crm: the old token stopped at once and its open sessions were revoked"


def test_with_a_grace_the_old_token_works_until_the_time_shown(app, clock):
    clock.set(T0)
    admin_client = logged_in_client(app, "admin", "boss")
    account = make_account(app, "crm")
    account_id = _account_id(app, account["userId"])
    response = _rotate(admin_client, account_id, "60", headers=HX)
    token = _rotated_token(response.get_data(as_text=True))
    assert "The old token works until 1 Jan 2030 13:00 IST, then stops" in _text(response)
    row = text_of(_row(admin_client.get("/admin/credentials").get_data(as_text=True), account_id))
    assert "active its old token works until 1 Jan 2030 13:00 IST" in row
    clock.set(T0 + timedelta(minutes=59, seconds=59))
    assert _list_code(app, account) == 200
    clock.set(T0 + timedelta(minutes=60))
    assert _list_code(app, account) == 1014
    assert _list_code(app, {"userId": account["userId"], "token": token}) == 200
    assert login(admin_client, "boss").status_code == 303  # an hour idle: the session has ended
    assert "old token" not in text_of(_row(admin_client.get("/admin/credentials").get_data(as_text=True), account_id))
    [entry] = audit_entries(app, "api_account.rotate")
    assert entry.detail == "crm: the old token works 1 hour more, until 2030-01-01T07:30:00Z"


def test_new_token_is_offered_only_for_active_accounts_other_than_the_dashboards(app, admin_client):
    with app.app_context():
        ensure_builtin_account()
    active, leaver = make_account(app, "crm"), make_account(app, "leaver")
    admin_client.post(f"/admin/credentials/{_account_id(app, leaver['userId'])}/revoke", headers=HX)
    html = admin_client.get("/admin/credentials").get_data(as_text=True)
    offered = {user_id: "/rotate" in _row(html, _account_id(app, user_id))
               for user_id in (BUILTIN_USER_ID, active["userId"], leaver["userId"])}
    assert offered == {BUILTIN_USER_ID: False, active["userId"]: True, leaver["userId"]: False}


def test_new_token_refusals_change_nothing(app, admin_client):
    with app.app_context():
        ensure_builtin_account()
    account, leaver = make_account(app, "crm"), make_account(app, "leaver")
    admin_client.post(f"/admin/credentials/{_account_id(app, leaver['userId'])}/revoke", headers=HX)
    before = {user_id: row.token_hash for user_id, row in _accounts(app).items()}
    for user_id, grace, message in (
            (account["userId"], None, f"No new token for {account['userId']}: choose when its old token stops."),
            (account["userId"], "", "choose when its old token stops"),
            (account["userId"], "30", "choose when its old token stops"),
            (account["userId"], "10081", "choose when its old token stops"),
            (account["userId"], "-1", "choose when its old token stops"),
            (leaver["userId"], "60", f"No new token. A revoked account cannot be given a new token, and "
                                     f"{leaver['userId']} is revoked; create a new account instead."),
            (BUILTIN_USER_ID, "0", "No new token. dashboard is the dashboard's own account: its token is derived "
                                   "from SECRET_KEY"),
    ):
        response = _rotate(admin_client, _account_id(app, user_id), grace, headers=HX)
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and message in _text(response), (user_id, grace)
        assert 'class="banner error" role="alert"' in html and "mtk_" not in html
        plain = _rotate(admin_client, _account_id(app, user_id), grace)
        assert plain.status_code == 303 and plain.headers["Location"] == "/admin/credentials"
    assert {user_id: row.token_hash for user_id, row in _accounts(app).items()} == before
    assert _api_code(app, account) == 200
    assert [e.action for e in audit_entries(app)] == ["api_account.revoke"]
    assert _rotate(admin_client, 999999, "0", headers=HX).status_code == 404


def test_new_token_without_htmx_shows_the_token_on_the_page(app, admin_client):
    account = make_account(app, "Batch")
    response = _rotate(admin_client, _account_id(app, account["userId"]), "1440")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html and response.headers["Cache-Control"] == "no-store"
    token = _rotated_token(html)
    assert _api_code(app, {"userId": account["userId"], "token": token}) == 200
    assert _api_code(app, account) == 200  # a day's grace


def test_new_token_needs_the_csrf_token(database_url, clock):
    with configured_app(database_url, clock) as csrf_app:  # CSRF checked here, as in production
        make_user(csrf_app, "boss", "admin")
        account = make_account(csrf_app, "crm")
        account_id = _account_id(csrf_app, account["userId"])
        client = csrf_app.test_client()
        login_token = csrf_from(client.get("/login").get_data(as_text=True))
        assert login(client, "boss", csrf_token=login_token).status_code == 303
        token = csrf_from(client.get("/admin/credentials").get_data(as_text=True))
        assert _rotate(client, account_id, "0").status_code == 400
        stale = _rotate(client, account_id, "0", headers=HX)  # htmx without it: swaps nothing, gets a fresh one
        assert stale.headers["HX-Reswap"] == "none" and "mtk_" not in stale.get_data(as_text=True)
        assert _api_code(csrf_app, account) == 200 and audit_entries(csrf_app) == []
        response = _rotate(client, account_id, "0", headers={**HX, "X-CSRFToken": token})
        assert response.status_code == 200 and _rotated_token(response.get_data(as_text=True))
        assert _api_code(csrf_app, account) == 1014


# ---------------------------------------------------------------- the account named in MASKING_API_USER_ID

def test_the_account_the_dashboard_masks_through_is_guarded_like_the_built_in_one(app, admin_client):
    """The dashboard sends MASKING_API_TOKEN until the setting changes: stopping that token at once,
    or revoking the account, would leave every agent unable to mask a number."""
    account = make_account(app, "Floor 2")
    app.config.update(MASKING_API_USER_ID=account["userId"], MASKING_API_TOKEN=account["token"])
    account_id = _account_id(app, account["userId"])
    row = _row(admin_client.get("/admin/credentials").get_data(as_text=True), account_id)
    assert "The account this dashboard masks numbers through (<code>MASKING_API_USER_ID</code>)." in row
    assert f'id="confirm-rotate-{account_id}"' in row and f'id="confirm-{account_id}"' in row
    assert re.findall(r'<option value="(\d+)" selected>', row) == ["1440"]  # a day to change the setting
    before = _accounts(app)[account["userId"]].token_hash
    for confirm in (None, "", "yes"):
        data = {"grace": "0", **({} if confirm is None else {"confirm": confirm})}
        response = admin_client.post(f"/admin/credentials/{account_id}/rotate", data=data, headers=HX)
        assert (f"No new token. {account['userId']} is the account the dashboard masks through "
                "(MASKING_API_USER_ID): if its old token stops at once, no agent can mask a number") in _text(response)
        assert "type “now” in its confirmation box" in _text(response) and "mtk_" not in response.get_data(as_text=True)
        refused = admin_client.post(f"/admin/credentials/{account_id}/revoke", data=data, headers=HX)
        assert f"Not revoked. {account['userId']} is the account the dashboard masks through" in _text(refused)
    assert _accounts(app)[account["userId"]].token_hash == before and _accounts(app)[account["userId"]].revoked_at is None
    assert audit_entries(app) == [] and _api_code(app, account) == 200
    # With a grace the dashboard keeps working, and the page says what to change before it ends.
    graced = _rotate(admin_client, account_id, "60", headers=HX)
    assert _rotated_token(graced.get_data(as_text=True))
    assert ("This dashboard masks numbers through this account: set MASKING_API_TOKEN to the new token and "
            "restart the app before then.") in _text(graced)
    assert _api_code(app, account) == 200
    # A leaked token: typed confirmation stops it at once.
    response = admin_client.post(f"/admin/credentials/{account_id}/rotate", data={"grace": "0", "confirm": " Now "},
                                 headers=HX)
    token = _rotated_token(response.get_data(as_text=True))
    assert "restart the app now: until then no agent can mask a number." in _text(response)
    assert _api_code(app, account) == 1014 and _api_code(app, {"userId": account["userId"], "token": token}) == 200
    assert [e.action for e in audit_entries(app)] == ["api_account.rotate"] * 2
    # A read-only account may read for it, with every agent's masks: the choice says so.
    options = dict(re.findall(r'<option value="(u[0-9a-f]+)"[^>]*>([^<]*)</option>',
                              admin_client.get("/admin/credentials").get_data(as_text=True)))
    assert options[account["userId"]] == f"Floor 2 ({account['userId']}): every agent's masks"
    # Other accounts' rows ask for no confirmation.
    other_id = _account_id(app, make_account(app, "crm")["userId"])
    other_row = _row(admin_client.get("/admin/credentials").get_data(as_text=True), other_id)
    assert "confirm-" not in other_row and "MASKING_API_USER_ID" not in other_row


def test_revoking_an_account_names_the_readers_that_read_nothing_more(app, admin_client):
    owner, alone = make_account(app, "CRM"), make_account(app, "Batch")
    readers = sorted(make_account(app, name, can_write=False, reads_for=owner)["userId"] for name in ("Auditor", "BI"))
    owner_id = _account_id(app, owner["userId"])
    html = admin_client.get("/admin/credentials").get_data(as_text=True)
    form = re.search(rf'<form[^>]*credentials/{owner_id}/revoke[^>]*>', html, re.S).group(0)
    assert (f"The read-only accounts that read its masks will read nothing more: {readers[0]}, {readers[1]}."
            in html_module.unescape(form))
    lone_form = re.search(rf'<form[^>]*credentials/{_account_id(app, alone["userId"])}/revoke[^>]*>', html, re.S)
    assert "read nothing more" not in lone_form.group(0)
    response = admin_client.post(f"/admin/credentials/{owner_id}/revoke", headers=HX)
    assert (f"{owner['userId']} (CRM) is revoked: its token and sessions no longer work. The read-only accounts "
            f"that read its masks read nothing more: {readers[0]}, {readers[1]}.") in _text(response)
    [entry] = audit_entries(app, "api_account.revoke")
    assert entry.detail == f"CRM; its readers read nothing more: {readers[0]}, {readers[1]}"
    assert _list_code(app, make_account(app, "x")) == 200
