"""Admin pages, users: list, create, disable (ends sessions), enable, reset password, change role,
the last-admin guard, refusals in plain words, roles, CSRF, and an audit entry for every action."""
from __future__ import annotations

import html as html_module

import pytest

from masking import administration, users
from masking.clock import utcnow
from masking.web.extensions import db
from tests.admin_helpers import audit_entries, user_row
from tests.api_helpers import configured_app
from tests.dashboard_helpers import HX, PASSWORD, assert_no_inline_code, csrf_from, logged_in_client, login, make_user, \
    text_of

NEW_PASSWORD = "a-fresh-pass-phrase"


@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF has its own test below
    return app


@pytest.fixture
def admin_client(app):
    return logged_in_client(app, "admin", "boss")


def _uid(app, username):
    return user_row(app, username).id


# ---------------------------------------------------------------- roles

@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_other_roles_get_403_on_every_user_action(app, role):
    client = logged_in_client(app, role)
    victim = make_user(app, "victim", "agent")
    assert client.get("/admin/users").status_code == 403
    for url, data in [("/admin/users", {"username": "x1", "role": "admin", "password": NEW_PASSWORD}),
                      (f"/admin/users/{victim}/disable", {}), (f"/admin/users/{victim}/enable", {}),
                      (f"/admin/users/{victim}/password", {"password": NEW_PASSWORD}),
                      (f"/admin/users/{victim}/role", {"role": "admin"})]:
        assert client.post(url, data=data).status_code == 403, url
        assert client.post(url, data=data, headers=HX).status_code == 403, url
    assert user_row(app, "x1") is None and user_row(app, "victim").role == "agent"
    assert audit_entries(app) == []


def test_logged_out_goes_to_login(client):
    assert client.get("/admin/users").headers["Location"].startswith("/login")


# ---------------------------------------------------------------- the list and the nav

def test_users_page_lists_everyone_with_role_and_state(app, admin_client):
    make_user(app, "asha", "agent")
    make_user(app, "ravi", "supervisor")
    page = admin_client.get("/admin/users")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert_no_inline_code(html)
    text = text_of(html)
    assert "asha" in text and "ravi" in text and "boss (you)" in text
    assert "3, 1 active admin" in text
    assert 'href="/admin/users"' in html and 'href="/admin/pool"' in html and 'href="/admin/audit"' in html
    partial = admin_client.get("/admin/users", headers=HX).get_data(as_text=True)
    assert "<html" not in partial and 'id="user-list"' in partial


def test_nav_shows_admin_links_to_admins_and_the_audit_log_to_supervisors(app):
    agent = logged_in_client(app, "agent").get("/").get_data(as_text=True)
    supervisor = logged_in_client(app, "supervisor").get("/").get_data(as_text=True)
    assert 'href="/admin/users"' not in agent and 'href="/admin/audit"' not in agent
    assert 'href="/admin/users"' not in supervisor and 'href="/admin/audit"' in supervisor


# ---------------------------------------------------------------- create

def test_create_user_with_htmx(app, admin_client):
    response = admin_client.post("/admin/users", data={"username": " Asha ", "role": "supervisor",
                                                      "password": NEW_PASSWORD}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert "Created supervisor asha" in text_of(html)
    assert response.headers["HX-Trigger"] == "users-changed"
    assert NEW_PASSWORD not in html
    assert user_row(app, "asha").role == "supervisor"
    assert login(app.test_client(), "asha", NEW_PASSWORD).status_code == 303
    [entry] = audit_entries(app, "user.create")
    assert (entry.actor_name, entry.target, entry.detail) == ("boss", "asha", "role supervisor")
    assert entry.actor_id == _uid(app, "boss") and entry.at is not None


def test_create_user_without_htmx_redirects_with_a_message(app, admin_client):
    response = admin_client.post("/admin/users", data={"username": "asha", "role": "agent", "password": NEW_PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/users"
    assert "Created agent asha" in text_of(admin_client.get("/admin/users").get_data(as_text=True))


@pytest.mark.parametrize("data, message, field", [
    ({"username": "", "role": "agent", "password": NEW_PASSWORD}, "Enter a username.", "username"),
    ({"username": "asha", "role": "", "password": NEW_PASSWORD}, "Choose a role.", "role"),
    ({"username": "asha", "role": "boss", "password": NEW_PASSWORD}, "Choose a role.", "role"),
    ({"username": "asha", "role": "agent", "password": ""}, "Enter a password", "password"),
    ({"username": "a", "role": "agent", "password": NEW_PASSWORD}, "a username is 2 to 64 characters", "username"),
    ({"username": "has space", "role": "agent", "password": NEW_PASSWORD}, "2 to 64 characters", "username"),
    ({"username": "asha", "role": "agent", "password": "short1"}, "at least 10 characters", "password"),
    ({"username": "asha", "role": "agent", "password": "aaaaaaaaaaaa"}, "more different characters", "password"),
    ({"username": "asha", "role": "agent", "password": "my-asha-password"}, "must not contain the username",
     "password"),
    ({"username": "asha", "role": "agent", "password": " leading-space-pw"}, "must not start or end with a space",
     "password"),
])
def test_create_user_refusals_keep_the_input_but_not_the_password(app, admin_client, data, message, field):
    response = admin_client.post("/admin/users", data=data, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message.lower() in text_of(html).lower()
    assert "The user was not created" in text_of(html)
    assert f'value="{data["username"].strip()}"' in html  # the username is kept as typed
    if data["password"]:
        assert data["password"] not in html  # never echoed
    assert 'aria-invalid="true"' in html
    assert user_row(app, "asha") is None
    assert audit_entries(app) == []


def test_create_refusal_without_htmx_is_the_whole_page_with_422(app, admin_client):
    response = admin_client.post("/admin/users", data={"username": "asha", "role": "agent", "password": "short"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" in html and "at least 10 characters" in html and 'value="asha"' in html and "short" not in \
        html.split('id="new-password"')[1].split(">")[0]


def test_duplicate_username_is_refused_in_any_case(app, admin_client):
    make_user(app, "asha", "agent")
    response = admin_client.post("/admin/users", data={"username": "ASHA", "role": "admin",
                                                      "password": NEW_PASSWORD}, headers=HX)
    assert "a user named 'asha' already exists" in html_module.unescape(text_of(response.get_data(as_text=True))).lower()
    assert user_row(app, "asha").role == "agent"
    assert audit_entries(app) == []


# ---------------------------------------------------------------- disable and enable

def test_disabling_a_user_ends_their_open_session_at_the_next_request(app, admin_client):
    agent = logged_in_client(app, "agent", "asha")
    assert agent.get("/").status_code == 200
    response = admin_client.post(f"/admin/users/{_uid(app, 'asha')}/disable", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="user-list"' in html
    assert "asha is disabled" in text_of(html) and "disabled" in text_of(html)
    # The existing session is refused on the very next request, page or htmx.
    next_page = agent.get("/")
    assert next_page.status_code == 302 and next_page.headers["Location"].startswith("/login")
    htmx = agent.get("/masks/mine", headers=HX)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    assert "Wrong username or password" in login(app.test_client(), "asha").get_data(as_text=True)
    [entry] = audit_entries(app, "user.disable")
    assert (entry.actor_name, entry.target) == ("boss", "asha")

    response = admin_client.post(f"/admin/users/{_uid(app, 'asha')}/enable", headers=HX)
    assert "asha is enabled" in text_of(response.get_data(as_text=True))
    assert login(app.test_client(), "asha").status_code == 303
    [entry] = audit_entries(app, "user.enable")
    assert (entry.actor_name, entry.target) == ("boss", "asha")


def test_disable_and_enable_twice_are_refused_in_plain_words(app, admin_client):
    uid = make_user(app, "asha", "agent")
    admin_client.post(f"/admin/users/{uid}/disable", headers=HX)
    again = admin_client.post(f"/admin/users/{uid}/disable", headers=HX)
    assert again.status_code == 200 and "asha is already disabled." in text_of(again.get_data(as_text=True))
    admin_client.post(f"/admin/users/{uid}/enable", headers=HX)
    again = admin_client.post(f"/admin/users/{uid}/enable", headers=HX)
    assert "asha is already enabled." in text_of(again.get_data(as_text=True))
    assert len(audit_entries(app, "user.disable")) == 1 and len(audit_entries(app, "user.enable")) == 1


def test_an_admin_cannot_disable_themselves(app, admin_client):
    make_user(app, "second", "admin")  # even with another admin left
    response = admin_client.post(f"/admin/users/{_uid(app, 'boss')}/disable", headers=HX)
    assert "You cannot disable your own account" in text_of(response.get_data(as_text=True))
    assert user_row(app, "boss").is_active
    assert admin_client.get("/admin/users").status_code == 200
    assert audit_entries(app) == []


def test_the_page_offers_no_disable_button_for_oneself(app, admin_client):
    html = admin_client.get("/admin/users").get_data(as_text=True)
    assert "Disable boss" not in html


def test_disabling_another_admin_is_allowed_and_ends_their_session(app, admin_client):
    other = logged_in_client(app, "admin", "second")
    admin_client.post(f"/admin/users/{_uid(app, 'second')}/disable", headers=HX)
    assert other.get("/admin/users").status_code == 302


def test_without_htmx_actions_redirect_back_with_a_message(app, admin_client):
    uid = make_user(app, "asha", "agent")
    response = admin_client.post(f"/admin/users/{uid}/disable")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/users"
    assert "asha is disabled" in text_of(admin_client.get("/admin/users").get_data(as_text=True))
    refused = admin_client.post(f"/admin/users/{uid}/disable")
    assert refused.status_code == 422 and "already disabled" in refused.get_data(as_text=True)


def test_unknown_user_is_404(admin_client):
    for action in ("disable", "enable", "password", "role"):
        assert admin_client.post(f"/admin/users/999999/{action}", data={"role": "agent"}, headers=HX).status_code \
            == 404


# ---------------------------------------------------------------- the last active admin

def test_the_last_active_admin_cannot_demote_themselves(app, admin_client):
    response = admin_client.post(f"/admin/users/{_uid(app, 'boss')}/role", data={"role": "agent"}, headers=HX)
    assert response.status_code == 200
    assert "boss is the last active admin" in text_of(response.get_data(as_text=True))
    assert user_row(app, "boss").role == "admin"
    assert audit_entries(app) == []


def test_a_disabled_admin_does_not_count_as_an_admin_left(app, admin_client):
    uid = make_user(app, "second", "admin")
    admin_client.post(f"/admin/users/{uid}/disable", headers=HX)
    response = admin_client.post(f"/admin/users/{_uid(app, 'boss')}/role", data={"role": "supervisor"}, headers=HX)
    assert "last active admin" in text_of(response.get_data(as_text=True))
    assert user_row(app, "boss").role == "admin"


def test_demoting_oneself_with_another_admin_left_works_and_leaves_the_admin_pages(app, admin_client):
    make_user(app, "second", "admin")
    response = admin_client.post(f"/admin/users/{_uid(app, 'boss')}/role", data={"role": "supervisor"}, headers=HX)
    assert response.headers["HX-Redirect"] == "/"
    assert user_row(app, "boss").role == "supervisor"
    assert admin_client.get("/admin/users").status_code == 403
    assert admin_client.get("/admin/audit").status_code == 200  # supervisors still read the audit log
    [entry] = audit_entries(app, "user.set_role")
    assert (entry.actor_name, entry.target, entry.detail) == ("boss", "boss", "admin -> supervisor")


def test_the_guard_holds_for_the_command_line_rules_too(app):
    make_user(app, "boss", "admin")
    with app.app_context():
        boss = users.find(db.session(), "boss")
        with pytest.raises(administration.AdminError, match="last active admin"):
            administration.disable_user(db.session(), None, boss, utcnow())
        with pytest.raises(administration.AdminError, match="last active admin"):
            administration.change_role(db.session(), None, boss, "agent", utcnow())
        db.session.rollback()


# ---------------------------------------------------------------- reset password

def test_reset_password_ends_their_sessions_and_the_new_one_works(app, admin_client):
    agent = logged_in_client(app, "agent", "asha")
    response = admin_client.post(f"/admin/users/{_uid(app, 'asha')}/password", data={"password": NEW_PASSWORD},
                                 headers=HX)
    html = response.get_data(as_text=True)
    assert "New password set for asha" in text_of(html) and NEW_PASSWORD not in html
    assert agent.get("/").status_code == 302  # the old session is over
    assert "Wrong username" in login(app.test_client(), "asha", PASSWORD).get_data(as_text=True)
    assert login(app.test_client(), "asha", NEW_PASSWORD).status_code == 303
    [entry] = audit_entries(app, "user.set_password")
    assert (entry.actor_name, entry.target) == ("boss", "asha")
    assert NEW_PASSWORD not in (entry.detail or "")


@pytest.mark.parametrize("password, message", [
    ("", "Type the new password for asha."),
    ("short", "at least 10 characters"),
    ("xx-asha-xx-yy", "must not contain the username"),
])
def test_weak_or_missing_new_password_is_refused_and_not_echoed(app, admin_client, password, message):
    uid = make_user(app, "asha", "agent")
    response = admin_client.post(f"/admin/users/{uid}/password", data={"password": password}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and message.lower() in text_of(html).lower()
    if password:
        assert password not in html
    assert login(app.test_client(), "asha", PASSWORD).status_code == 303  # unchanged
    assert audit_entries(app) == []


def test_an_admin_resetting_their_own_password_stays_logged_in(app, admin_client):
    elsewhere = app.test_client()
    assert login(elsewhere, "boss").status_code == 303
    response = admin_client.post(f"/admin/users/{_uid(app, 'boss')}/password", data={"password": NEW_PASSWORD},
                                 headers=HX)
    assert "Your password is changed" in text_of(response.get_data(as_text=True))
    assert admin_client.get("/admin/users").status_code == 200
    assert elsewhere.get("/admin/users").status_code == 302


# ---------------------------------------------------------------- change role

def test_change_role_takes_effect_at_their_next_request(app, admin_client):
    agent = logged_in_client(app, "agent", "asha")
    assert agent.get("/admin/audit").status_code == 403
    response = admin_client.post(f"/admin/users/{_uid(app, 'asha')}/role", data={"role": "supervisor"}, headers=HX)
    assert "asha is now a supervisor." in text_of(response.get_data(as_text=True))
    assert agent.get("/admin/audit").status_code == 200
    [entry] = audit_entries(app, "user.set_role")
    assert (entry.actor_name, entry.target, entry.detail) == ("boss", "asha", "agent -> supervisor")
    admin_client.post(f"/admin/users/{_uid(app, 'asha')}/role", data={"role": "admin"}, headers=HX)
    assert agent.get("/admin/users").status_code == 200


@pytest.mark.parametrize("role, message", [("agent", "asha is already an agent."),
                                           ("boss", "the role must be one of"), ("", "the role must be one of")])
def test_bad_or_same_role_is_refused(app, admin_client, role, message):
    uid = make_user(app, "asha", "agent")
    response = admin_client.post(f"/admin/users/{uid}/role", data={"role": role}, headers=HX)
    assert message.lower() in text_of(response.get_data(as_text=True)).lower()
    assert user_row(app, "asha").role == "agent"
    assert audit_entries(app) == []


# ---------------------------------------------------------------- CSRF

@pytest.fixture
def csrf_app(database_url, clock):
    with configured_app(database_url, clock) as application:
        yield application


def test_user_actions_need_the_csrf_token(csrf_app):
    make_user(csrf_app, "boss", "admin")
    uid = make_user(csrf_app, "asha", "agent")
    client = csrf_app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    assert login(client, "boss", csrf_token=token).status_code == 303
    page = client.get("/admin/users").get_data(as_text=True)
    token = csrf_from(page)
    assert page.count('name="csrf_token"') >= 5  # every form carries it
    for url, data in [("/admin/users", {"username": "ravi", "role": "agent", "password": NEW_PASSWORD}),
                      (f"/admin/users/{uid}/disable", {}), (f"/admin/users/{uid}/role", {"role": "admin"}),
                      (f"/admin/users/{uid}/password", {"password": NEW_PASSWORD})]:
        assert client.post(url, data=data).status_code == 400, url
    assert user_row(csrf_app, "ravi") is None and user_row(csrf_app, "asha").is_active
    ok = client.post(f"/admin/users/{uid}/disable", headers={**HX, "X-CSRFToken": token})
    assert ok.status_code == 200 and "asha is disabled" in ok.get_data(as_text=True)
    ok = client.post("/admin/users", data={"username": "ravi", "role": "agent", "password": NEW_PASSWORD,
                                           "csrf_token": token})
    assert ok.status_code == 303 and user_row(csrf_app, "ravi") is not None
