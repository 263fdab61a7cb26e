"""The dashboard's foundation: login, roles on every URL, idle timeout, htmx redirects,
rate limit, `next` safety, CSRF, security headers, the htmx asset."""
import json
import re
from urllib.parse import urlsplit

import pytest
from flask import Blueprint
from werkzeug.routing import IntegerConverter

from masking.web.auth import role_required
from masking.web.dashboard import CONTENT_SECURITY_POLICY
from tests.api_helpers import configured_app
from tests.conftest import ROOT
from tests.dashboard_helpers import (HX, PASSWORD, ROLES, assert_no_inline_code, csrf_from, logged_in_client, login,
                                     make_user)

# Blueprints of the dashboard; every rule in them must declare its roles (role_required).
DASHBOARD_BLUEPRINTS = ("auth", "agent", "supervisor", "admin", "overview")
PUBLIC_ENDPOINTS = {"auth.login", "auth.logout"}


@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF is tested with its own app below
    return app


def _is_login_redirect(response) -> bool:
    return response.status_code in (302, 303) and urlsplit(response.headers["Location"]).path == "/login"


# ---------------------------------------------------------------- every URL, every role

def _dashboard_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in DASHBOARD_BLUEPRINTS and rule.endpoint not in PUBLIC_ENDPOINTS:
            yield rule


def _url(rule) -> str:
    values = {arg: 999999 if isinstance(rule._converters[arg], IntegerConverter) else "m1"  # RowId too
              for arg in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


def test_every_dashboard_route_declares_its_roles(app):
    rules = list(_dashboard_rules(app))
    assert rules, "no dashboard routes found"
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "allowed_roles", None), f"{rule.endpoint} has no @role_required"


def test_walk_every_url_with_every_role_and_none(app):
    clients = {role: logged_in_client(app, role) for role in ROLES}
    clients[None] = app.test_client()
    checked = 0
    for rule in _dashboard_rules(app):
        allowed = app.view_functions[rule.endpoint].allowed_roles
        url = _url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for role, client in clients.items():
                response = client.open(url, method=method)
                where = f"{method} {url} as {role}"
                if role is None:
                    assert _is_login_redirect(response), where
                    htmx = client.open(url, method=method, headers=HX)
                    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login"), where
                elif role not in allowed:
                    assert response.status_code == 403, where
                else:
                    assert response.status_code not in (401, 403) and not _is_login_redirect(response), where
                    if method == "GET" and not rule.arguments:
                        assert response.status_code == 200, where
                        assert_no_inline_code(response.get_data(as_text=True))
                checked += 1
    assert checked >= 4 * 6


def test_role_required_answers_403_for_other_roles(database_url, clock):
    with configured_app(database_url, clock, WTF_CSRF_ENABLED=False) as app:
        extra = Blueprint("only_admins", __name__)

        @extra.get("/only-admins")
        @role_required("admin")
        def only_admins():
            return "admins only"

        app.register_blueprint(extra)
        agent, admin = logged_in_client(app, "agent"), logged_in_client(app, "admin")
        assert agent.get("/only-admins").status_code == 403
        assert "Not allowed" in agent.get("/only-admins").get_data(as_text=True)
        assert admin.get("/only-admins").get_data(as_text=True) == "admins only"
        with pytest.raises(ValueError):
            role_required("boss")


def test_root_logged_out_leads_to_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/", follow_redirects=True).request.path == "/login"


# ---------------------------------------------------------------- login, first run, logout

def test_first_run_notice_only_without_users(app, client):
    page = client.get("/login").get_data(as_text=True)
    assert "No users yet" in page and "flask --app app users create USERNAME --role admin" in page
    make_user(app, "asha", "admin")
    assert "No users yet" not in client.get("/login").get_data(as_text=True)


def test_login_and_logout(app, client):
    make_user(app, "asha", "agent")
    wrong = login(client, "asha", "not-the-password")
    assert wrong.status_code == 200 and "Wrong username or password" in wrong.get_data(as_text=True)
    assert 'value="asha"' in wrong.get_data(as_text=True)  # the username is kept
    assert client.get("/").status_code == 302
    ok = login(client, "asha")
    assert ok.status_code == 303 and ok.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "asha" in page and "(agent)" in page and "Log out" in page
    assert client.get("/login").status_code == 303  # already logged in
    out = client.post("/logout")
    assert out.status_code == 303 and out.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_unknown_user_and_disabled_user_cannot_log_in(app, client, runner):
    make_user(app, "asha", "agent")
    assert login(client, "nobody").status_code == 200
    runner.invoke(args=["users", "disable", "asha"])
    assert "Wrong username or password" in login(client, "asha").get_data(as_text=True)


@pytest.mark.parametrize("target, expected", [
    ("/masks/mine", "/masks/mine"),
    ("/?a=1", "/?a=1"),
    ("//evil.example/", "/"),
    ("https://evil.example/", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("/%0d%0aSet-Cookie:x", "/%0d%0aSet-Cookie:x"),
    ("\n/x", "/"),
    ("", "/"),
])
def test_next_only_to_a_path_on_this_site(app, client, target, expected):
    make_user(app, "asha", "agent")
    response = login(client, "asha", next=target)
    assert response.status_code == 303
    assert response.headers["Location"] == expected


def test_login_page_carries_next_from_the_redirect(app, client):
    make_user(app, "asha", "agent")
    response = client.get("/masks/mine")
    assert response.headers["Location"] == "/login?next=%2Fmasks%2Fmine"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/masks/mine"' in page


# ---------------------------------------------------------------- rate limit

def test_login_rate_limit_per_username_and_address(app, client, clock):
    make_user(app, "asha", "agent")
    for _ in range(5):
        assert login(client, "asha", "wrong-password-x").status_code == 200
    blocked = login(client, "asha")  # even the right password
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.get_data(as_text=True)
    # Held in the database: another app (another worker) over the same database agrees.
    with configured_app(app.config["DATABASE_URL"], clock, WTF_CSRF_ENABLED=False) as other_worker:
        assert login(other_worker.test_client(), "asha").status_code == 429
    # Another address is not blocked for this username.
    other_address = app.test_client()
    response = other_address.post("/login", data={"username": "asha", "password": PASSWORD},
                                  environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert response.status_code == 303
    clock.advance(minutes=6)
    assert login(client, "asha").status_code == 303


def test_a_success_clears_earlier_failures(app, client):
    make_user(app, "asha", "agent")
    for _ in range(4):
        login(client, "asha", "wrong-password-x")
    assert login(client, "asha").status_code == 303
    client.post("/logout")
    for _ in range(4):
        assert login(client, "asha", "wrong-password-x").status_code == 200
    assert login(client, "asha").status_code == 303


# ---------------------------------------------------------------- idle timeout and htmx

def test_idle_session_ends_and_htmx_gets_hx_redirect(app, clock):
    client = logged_in_client(app, "agent")
    clock.advance(minutes=29)
    assert client.get("/").status_code == 200
    clock.advance(minutes=31)
    response = client.get("/masks/mine", headers={**HX, "HX-Current-URL": "http://localhost/?x=1"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=%2F%3Fx%3D1"
    assert response.get_data() == b""  # nothing for htmx to swap into a fragment
    assert "HX-Request" in response.headers.get("Vary", "")
    page = client.get("/login").get_data(as_text=True)
    assert "Your session ended after a while without activity" in page


def test_polling_does_not_keep_a_session_alive(app, clock):
    client = logged_in_client(app, "agent")
    for _ in range(2):
        clock.advance(minutes=12)
        assert client.get("/masks/mine", headers=HX).status_code == 200  # passive: not activity
    clock.advance(minutes=12)
    assert client.get("/masks/mine", headers=HX).status_code == 401  # 36 min without activity


def test_idle_minutes_are_configurable(database_url, clock):
    with configured_app(database_url, clock, WTF_CSRF_ENABLED=False, SESSION_IDLE_MINUTES="5") as app:
        client = logged_in_client(app, "agent")
        clock.advance(minutes=6)
        assert client.get("/").status_code == 302


def test_htmx_partials_vary_on_hx_request(app):
    client = logged_in_client(app, "agent")
    full = client.get("/masks/mine")
    partial = client.get("/masks/mine", headers=HX)
    assert "<html" in full.get_data(as_text=True)
    assert "<html" not in partial.get_data(as_text=True) and 'id="my-masks"' in partial.get_data(as_text=True)
    for response in (full, partial):
        assert "HX-Request" in response.headers["Vary"]


# ---------------------------------------------------------------- CSRF

@pytest.fixture
def csrf_app(database_url, clock):
    with configured_app(database_url, clock) as application:
        assert application.config["WTF_CSRF_ENABLED"]
        yield application


def test_csrf_is_enforced_on_every_state_changing_request(csrf_app):
    make_user(csrf_app, "asha", "agent")
    client = csrf_app.test_client()
    refused = client.post("/login", data={"username": "asha", "password": PASSWORD})
    assert refused.status_code == 303 and refused.headers["Location"] == "/login"  # a fresh form, not logged in
    assert client.get("/").status_code == 302
    token = csrf_from(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": "asha", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 303
    page = client.get("/").get_data(as_text=True)
    token = csrf_from(page)
    for url in ("/masks", "/validate/m1", "/masks/1/end", "/masks/1/extend"):
        response = client.post(url, data={"m1": "9876543210"})
        assert response.status_code == 400, url
        assert "This form has expired" in response.get_data(as_text=True)
    missing = client.post("/validate/m1", data={"m1": "9876543210"}, headers=HX)  # htmx: a new token, no reload
    assert missing.status_code == 200 and "HX-Refresh" not in missing.headers
    assert missing.headers["HX-Reswap"] == "none" and "csrf-renewed" in missing.headers["HX-Trigger"]
    ok = client.post("/validate/m1", data={"m1": "9876543210"}, headers={**HX, "X-CSRFToken": token})
    assert ok.status_code == 200 and "+91 98765 43210" in ok.get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    # Logged out with a stale page: htmx is sent to the login page.
    gone = client.post("/validate/m1", data={"m1": "1"}, headers={**HX, "X-CSRFToken": token})
    assert gone.headers["HX-Redirect"].startswith("/login")


def _stale_page(app, username: str = "asha"):
    """A client logged in, its page's token, then a new login in "another tab" (the same cookies),
    which makes that token stale. Returns (client, stale token)."""
    make_user(app, username, "agent")
    client = app.test_client()
    assert login(client, username, csrf_token=csrf_from(client.get("/login").get_data(as_text=True))).status_code == 303
    stale = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": stale}).status_code == 303
    assert login(client, username, csrf_token=csrf_from(client.get("/login").get_data(as_text=True))).status_code == 303
    assert csrf_from(client.get("/").get_data(as_text=True)) != stale
    return client, stale


# What the agent's form sends (hx-post on the form: the fields, the hidden token, the header).
TYPED = {"m1": "98765 43210", "m2": "98765 43211", "expiry": "custom", "custom_minutes": "45", "until": "",
         "event_id": "TICKET-9"}


def _renewed_token(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])["csrf-renewed"]


def _attempt_count(app) -> int:
    from sqlalchemy import func, select

    from masking.models import MaskAttempt
    from masking.web.extensions import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(MaskAttempt))


def test_a_stale_token_of_a_logged_in_user_is_renewed_without_a_reload(csrf_app):
    client, stale = _stale_page(csrf_app)
    for url, data in (("/masks", TYPED), ("/validate/m1", {"m1": TYPED["m1"]})):
        refused = client.post(url, data={**data, "csrf_token": stale}, headers={**HX, "X-CSRFToken": stale,
                                                                               "HX-Current-URL": "http://localhost/"})
        where = f"POST {url}"
        assert refused.status_code == 200, where
        assert refused.headers["HX-Reswap"] == "none", where  # htmx swaps nothing: the form keeps what was typed
        assert "HX-Refresh" not in refused.headers and "HX-Redirect" not in refused.headers, where
        assert refused.get_data() == b"", where
        assert refused.headers["Cache-Control"] == "no-store" and "HX-Request" in refused.headers["Vary"], where
        renewed = _renewed_token(refused)
        assert renewed["user"] == "asha" and renewed["token"] != stale, where
    assert _attempt_count(csrf_app) == 0  # refused before the view: nothing was sent to the service

    # The new token works, in the hidden field as in the header (the view runs: a form error here,
    # so nothing goes to the service).
    fresh = renewed["token"]
    again = client.post("/masks", data={**TYPED, "custom_minutes": "soon", "csrf_token": fresh},
                        headers={**HX, "X-CSRFToken": fresh})
    assert again.status_code == 200 and "HX-Reswap" not in again.headers
    assert "Enter the number of minutes as a whole number" in again.get_data(as_text=True)
    check = client.post("/validate/m1", data={"m1": TYPED["m1"]}, headers={**HX, "X-CSRFToken": fresh})
    assert "+91 98765 43210" in check.get_data(as_text=True)


def test_a_stale_token_is_renewed_only_for_a_logged_in_users_htmx_request_from_this_site(csrf_app, clock):
    client, stale = _stale_page(csrf_app)
    # A plain form post (no JavaScript): the 400 page, no token.
    plain = client.post("/masks", data={**TYPED, "csrf_token": stale})
    assert plain.status_code == 400 and "HX-Trigger" not in plain.headers
    assert "Nothing was sent" in plain.get_data(as_text=True)
    # A request another site made (Sec-Fetch-Site): no token, even with the session's cookie.
    cross = client.post("/masks", data=TYPED, headers={**HX, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 400 and "HX-Trigger" not in cross.headers
    # A failed referrer check (HTTPS), which a new token would not cure: 400, no token.
    token = csrf_from(client.get("/").get_data(as_text=True))
    https = client.post("/validate/m1", data={"m1": "1"}, headers={**HX, "X-CSRFToken": token},
                        base_url="https://localhost")
    assert https.status_code == 400 and "HX-Trigger" not in https.headers

    # Logged out (in another tab): the login page, as for any request without a session; no token.
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    gone = client.post("/masks", data=TYPED, headers={**HX, "X-CSRFToken": stale, "HX-Current-URL": "http://localhost/"})
    assert gone.status_code == 401 and gone.headers["HX-Redirect"] == "/login"
    assert "HX-Trigger" not in gone.headers and gone.get_data() == b""


def test_log_out_from_a_stale_page_logs_out(csrf_app, clock):
    # Another tab logged in again: the old page's Log out still logs out.
    client, stale = _stale_page(csrf_app)
    response = client.post("/logout", data={"csrf_token": stale})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "You are logged out." in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302

    # The session ended while the page stayed open: Log out is not a dead end either.
    assert login(client, "asha", csrf_token=csrf_from(client.get("/login").get_data(as_text=True))).status_code == 303
    token = csrf_from(client.get("/").get_data(as_text=True))
    clock.advance(minutes=31)
    assert client.get("/").status_code == 302  # the idle session is gone, and its token with it
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/login"


def test_a_logout_sent_by_another_site_is_refused(csrf_app):
    client, _ = _stale_page(csrf_app)
    forged = client.post("/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 400 and "This form has expired" in forged.get_data(as_text=True)
    assert client.get("/").status_code == 200  # still logged in


def test_a_logout_from_another_site_is_refused_by_its_origin_where_no_sec_fetch_site_is_sent(csrf_app):
    # Safari before 16.4 sends no Sec-Fetch-Site, but an Origin with every POST.
    client, stale = _stale_page(csrf_app)
    for origin in ("https://evil.example", "null"):
        forged = client.post("/logout", headers={"Origin": origin})
        assert forged.status_code == 400 and "This form has expired" in forged.get_data(as_text=True)
        assert client.get("/").status_code == 200  # still logged in
    # Our own stale page, from such a browser: logged out.
    response = client.post("/logout", data={"csrf_token": stale}, headers={"Origin": "http://localhost"})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_a_stale_login_form_is_never_a_dead_end(csrf_app):
    make_user(csrf_app, "asha", "agent")
    tab_a = csrf_app.test_client()
    page = tab_a.get("/login?next=/history").get_data(as_text=True)
    old = csrf_from(page)
    # Logged out meanwhile (a token the session never had): a fresh login form, told why, `next` kept.
    tab_a.delete_cookie("masking_session")
    refused = login(tab_a, "asha", csrf_token=old, next="/history")
    assert refused.status_code == 303 and refused.headers["Location"] == "/login?next=%2Fhistory"
    assert tab_a.get("/").status_code == 302  # not logged in by it
    fresh = tab_a.get(refused.headers["Location"]).get_data(as_text=True)
    assert "The login page was out of date, so you were not logged in" in fresh
    assert 'name="next" value="/history"' in fresh
    # A login form left open while another tab (the same cookies) logged out and in: on to the page.
    left_open = csrf_from(fresh)
    assert login(tab_a, "asha", csrf_token=left_open).status_code == 303
    assert tab_a.post("/logout", data={"csrf_token": csrf_from(tab_a.get("/").get_data(as_text=True))}).status_code == 303
    assert login(tab_a, "asha", csrf_token=csrf_from(tab_a.get("/login").get_data(as_text=True))).status_code == 303
    again = login(tab_a, "asha", "not-even-checked", csrf_token=left_open, next="/history")
    assert again.status_code == 303 and again.headers["Location"] == "/history"


def test_a_stale_token_in_an_idle_session_goes_to_the_login_page(csrf_app, clock):
    """The CSRF check runs before the idle check: idleness still wins, and gets no new token."""
    client, stale = _stale_page(csrf_app)
    clock.advance(minutes=31)
    response = client.post("/masks", data={**TYPED, "csrf_token": stale},
                           headers={**HX, "X-CSRFToken": stale, "HX-Current-URL": "http://localhost/?tab=2"})
    assert response.status_code == 401 and response.headers["HX-Redirect"] == "/login?next=%2F%3Ftab%3D2"
    assert "HX-Trigger" not in response.headers
    assert "Your session ended after a while without activity" in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302  # logged out for good
    assert _attempt_count(csrf_app) == 0


def test_the_api_needs_no_csrf_token(csrf_app):
    response = csrf_app.test_client().post("/api/v2/Masking/set", json={"m1": "9876543210"})
    assert response.status_code == 200
    assert response.get_json()["code"] == 1000  # credentials missing: the API answered, CSRF did not
    assert "Content-Security-Policy" not in response.headers


# ---------------------------------------------------------------- headers, cookies, assets

def test_security_headers_and_cookie_flags(app, client):
    make_user(app, "asha", "agent")
    page = client.get("/login")
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "style-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    assert_no_inline_code(page.get_data(as_text=True))
    cookie = login(client, "asha").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_secure_cookie_is_configurable(database_url, clock):
    with configured_app(database_url, clock, WTF_CSRF_ENABLED=False, SESSION_COOKIE_SECURE="true") as app:
        make_user(app, "asha", "agent")
        assert "Secure" in login(app.test_client(), "asha").headers["Set-Cookie"]


def test_htmx_config_and_assets(app):
    client = logged_in_client(app, "agent")
    page = client.get("/").get_data(as_text=True)
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page).group(1))
    assert config["includeIndicatorStyles"] is False and config["allowEval"] is False
    assert '<script src="/static/vendor/htmx.min.js" defer></script>' in page
    for asset in ("/static/js/app.js", "/static/css/app.css"):
        response = client.get(asset)
        assert response.status_code == 200
        response.close()


def test_htmx_is_pinned_exactly_and_installed():
    package = json.loads((ROOT / "package.json").read_text())
    version = package["dependencies"]["htmx.org"]
    assert re.fullmatch(r"2\.\d+\.\d+", version), f"htmx.org must be pinned exactly to a 2.x version: {version}"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/htmx.org"]["version"] == version
    vendored = ROOT / "static" / "vendor" / "htmx.min.js"
    assert vendored.exists(), "run `make install` (npm ci copies htmx into static/vendor/)"
    assert f'version:"{version}"' in vendored.read_text().replace(" ", "")
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "node_modules/" in ignored and "static/vendor/" in ignored
