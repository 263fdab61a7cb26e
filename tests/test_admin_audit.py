"""The audit log page: supervisors and admins read it, agents don't; newest first; keyset
pagination without gaps or repeats; filters by actor and action, kept in the URL; and every admin
action (users, pool, credentials) lands in it with who, what, target and when."""
from __future__ import annotations

import html as html_module
import io
import re

import pytest

from masking import audit
from masking.web.extensions import db
from tests.admin_helpers import audit_entries, user_row
from tests.conftest import POOL, make_account
from tests.dashboard_helpers import HX, assert_no_inline_code, logged_in_client, make_user, text_of


@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def _record(app, clock, count: int, actor: str | None = None, action: str = "pool.add", same_instant=False):
    with app.app_context():
        user = user_row(app, actor) if actor else None
        if user is not None:
            user = db.session.merge(user)
        for i in range(count):
            if not same_instant:
                clock.advance(seconds=1)
            audit.record(db.session(), user, action, clock(), target=f"t{i}", detail=f"d{i}")
        db.session.commit()


def _ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="audit-(\d+)"', html)]


def _older(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)"[^>]*>Older entries', html)
    return html_module.unescape(match.group(1)) if match else None


@pytest.mark.parametrize("role, status", [("agent", 403), ("supervisor", 200), ("admin", 200)])
def test_who_may_read_the_audit_log(app, role, status):
    client = logged_in_client(app, role)
    response = client.get("/admin/audit")
    assert response.status_code == status
    if status == 200:
        assert_no_inline_code(response.get_data(as_text=True))
        assert "Nothing has been recorded yet." in text_of(response.get_data(as_text=True))
        assert client.get("/admin/audit", headers=HX).status_code == 200


def test_newest_first_and_keyset_pages_without_gaps_or_repeats(app, clock):
    make_user(app, "boss", "admin")
    _record(app, clock, 60, "boss")
    _record(app, clock, 50, "boss", same_instant=True)  # many entries at one instant: ties broken by id
    clock.advance(seconds=1)
    _record(app, clock, 10, None)
    client = logged_in_client(app, "supervisor")
    expected = [e.id for e in sorted(audit_entries(app), key=lambda e: (e.at, e.id), reverse=True)]
    seen, url, pages = [], "/admin/audit", 0
    while url:
        html = client.get(url).get_data(as_text=True)
        ids = _ids(html)
        assert 0 < len(ids) <= 50
        seen += ids
        url = _older(html)
        pages += 1
    assert seen == expected and pages == 3
    # htmx: the older page is the results partial alone, its link loads the next one into the same place
    partial = client.get(f"/admin/audit?before={expected[49]}", headers=HX).get_data(as_text=True)
    assert "<html" not in partial and 'id="audit-results"' in partial and _ids(partial) == expected[50:100]
    assert 'hx-push-url="true"' in partial and "Newest entries" in text_of(partial)


def test_filters_by_actor_and_action_are_combined_and_kept_in_the_links(app, clock):
    make_user(app, "boss", "admin")
    make_user(app, "chief", "admin")
    _record(app, clock, 3, "boss", "user.create")
    _record(app, clock, 55, "boss", "pool.add")
    _record(app, clock, 4, "chief", "pool.add")
    _record(app, clock, 2, None, "user.disable")
    client = logged_in_client(app, "admin", "root")
    page = client.get("/admin/audit?actor=BOSS&action=pool.add")
    html = page.get_data(as_text=True)
    entries = {e.id: e for e in audit_entries(app)}
    assert all(entries[i].actor_name == "boss" and entries[i].action == "pool.add" for i in _ids(html))
    assert len(_ids(html)) == 50
    older = _older(html)
    assert "actor=BOSS" in older and "action=pool.add" in older
    assert len(_ids(client.get(older).get_data(as_text=True))) == 5
    assert 'value="BOSS"' in html and '<option value="pool.add" selected>' in html
    cli = client.get("/admin/audit?actor=command+line").get_data(as_text=True)
    assert len(_ids(cli)) == 2 and all(entries[i].actor_id is None for i in _ids(cli))
    by_action = client.get("/admin/audit?action=user.create").get_data(as_text=True)
    assert len(_ids(by_action)) == 3
    nobody = client.get("/admin/audit?actor=ghost").get_data(as_text=True)
    assert _ids(nobody) == [] and "No entries match." in text_of(nobody)


@pytest.mark.parametrize("query", ["before=abc", "before=-1", "before=99999999999999999999999", "action=" + "x" * 300,
                                   "actor=%00", "before=0"])
def test_odd_query_strings_never_fail(app, query):
    client = logged_in_client(app, "supervisor")
    assert client.get(f"/admin/audit?{query}").status_code == 200


def test_every_admin_action_is_in_the_log_with_who_what_target_and_when(app, clock):
    client = logged_in_client(app, "admin", "boss")
    clock.advance(minutes=1)
    client.post("/admin/users", data={"username": "asha", "role": "agent", "password": "a-long-password-1"}, headers=HX)
    uid = user_row(app, "asha").id
    client.post(f"/admin/users/{uid}/role", data={"role": "supervisor"}, headers=HX)
    client.post(f"/admin/users/{uid}/password", data={"password": "another-long-pass-2"}, headers=HX)
    client.post(f"/admin/users/{uid}/disable", headers=HX)
    client.post(f"/admin/users/{uid}/enable", headers=HX)
    client.post("/admin/pool/add", data={"numbers": POOL[0]}, headers=HX)
    client.post("/admin/pool/import", data={"file": (io.BytesIO(POOL[1].encode()), "more.csv")},
                content_type="multipart/form-data", headers=HX)
    with app.app_context():
        from masking.models import PoolNumber
        number_id = db.session.query(PoolNumber.id).filter_by(number=POOL[0]).scalar()
    for status in ("reserved", "retired", "active"):
        client.post(f"/admin/pool/{number_id}/status", data={"status": status}, headers=HX)
    client.post("/admin/credentials", data={"name": "CRM", "access": "read-write"}, headers=HX)
    account = make_account(app, "old")
    with app.app_context():
        from masking.models import ApiAccount
        account_id = db.session.query(ApiAccount.id).filter_by(user_id=account["userId"]).scalar()
    client.post(f"/admin/credentials/{account_id}/revoke", headers=HX)

    expected = ["user.create", "user.set_role", "user.set_password", "user.disable", "user.enable", "pool.add",
                "pool.import", "pool.reserve", "pool.retire", "pool.activate", "api_account.create",
                "api_account.revoke"]
    entries = audit_entries(app)
    assert [e.action for e in entries] == expected
    assert all(e.actor_name == "boss" and e.actor_id == user_row(app, "boss").id for e in entries)
    assert all(e.at == clock() for e in entries)
    assert [e.target for e in entries[:5]] == ["asha"] * 5
    assert entries[6].target == "more.csv" and entries[7].target == POOL[0]
    assert entries[11].target == account["userId"]
    # ... and the page shows them, newest first, to a supervisor.
    html = logged_in_client(app, "supervisor", "sup").get("/admin/audit").get_data(as_text=True)
    page = text_of(html.split('id="audit-results"')[1])
    positions = [page.index(action) for action in reversed(expected)]
    assert positions == sorted(positions)
    assert "boss" in page and "IST" in page


def test_a_refused_action_writes_nothing(app):
    client = logged_in_client(app, "admin", "boss")
    client.post("/admin/users", data={"username": "asha", "role": "agent", "password": "short"}, headers=HX)
    client.post(f"/admin/users/{user_row(app, 'boss').id}/role", data={"role": "agent"}, headers=HX)
    client.post("/admin/pool/add", data={"numbers": ""}, headers=HX)
    client.post("/admin/pool/import", data={"file": (io.BytesIO(b"\xff\xfe\x00"), "bad.csv")},
                content_type="multipart/form-data", headers=HX)
    client.post("/admin/credentials", data={"name": "", "access": "read-write"}, headers=HX)
    assert audit_entries(app) == []
    assert user_row(app, "asha") is None and user_row(app, "boss").role == "admin"
