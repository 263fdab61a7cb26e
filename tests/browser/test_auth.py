"""Logging in and out in a real browser, for each role; the idle timeout and a logout in another
tab send htmx requests to the login page (HX-Redirect), never a login form inside a fragment."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.agent_page import fill_phone, my_masks
from tests.browser.conftest import STACK_SECRET
from tests.conftest import PARTIES
from tests.dashboard_helpers import ROLES

pytestmark = pytest.mark.slow

# dashboard.py means to call it "masking_session", but Flask's default config already has "session".
SESSION_COOKIES = ("masking_session", "session")


def test_root_logged_out_leads_to_login_and_wrong_password_is_said(ui, stack):
    page = ui.page
    stack.user("auth_wrong", "agent")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_label("Username")).to_be_focused()
    ui.shot("login-page")

    page.get_by_label("Username").fill("auth_wrong")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    expect(page.get_by_label("Username")).to_have_value("auth_wrong")  # kept
    expect(page.get_by_label("Password")).to_be_focused()
    ui.shot("wrong-password")


@pytest.mark.parametrize("role", ROLES)
def test_log_in_and_out_as_each_role(ui, stack, role):
    page = ui.page
    username = stack.user(f"{role}_login", role)
    ui.login(username)
    expect(page).to_have_url(stack.url + "/")
    header = page.get_by_role("banner")
    expect(header).to_contain_text(f"{username} ({role})")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Masks", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="New mask")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("My active masks"))).to_be_visible()
    ui.shot("start-page")

    # Every link of the header opens a page without errors (the nav shows only what the role may see).
    links = [(link.inner_text(), link.get_attribute("href")) for link in nav.get_by_role("link").all()]
    for label, href in links:
        response = page.goto(href)
        assert response.status == 200, (label, href, response.status)
        ui.shot(f"nav-{label}")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("status").filter(has_text="You are logged out.")).to_be_visible()
    ui.shot("logged-out")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))


def _age_session(context, url: str, seconds: int) -> None:
    """Make the browser's session look idle for ``seconds`` (re-signed with the servers' secret)."""
    from flask import Flask

    signer = Flask(__name__)
    signer.secret_key = STACK_SECRET
    serializer = signer.session_interface.get_signing_serializer(signer)
    [cookie] = [c for c in context.cookies(url) if c["name"] in SESSION_COOKIES]
    data = serializer.loads(cookie["value"])
    assert isinstance(data.get("_seen"), int), data.keys()
    data["_seen"] -= seconds
    context.add_cookies([{**cookie, "value": serializer.dumps(data)}])


def test_idle_session_sends_htmx_requests_to_the_login_page(ui, stack):
    page = ui.page
    ui.allow(r"status of 401")  # the htmx answer that carries HX-Redirect
    ui.login(stack.user("auth_idle"))
    fill_phone(page, "m1", PARTIES[90])  # an htmx request that works while the session is live
    expect(page.locator("#m1-check")).to_contain_text("✓")

    _age_session(page.context, stack.url, 31 * 60)  # idle longer than SESSION_IDLE_MINUTES (30)
    page.get_by_label("Second number").fill(PARTIES[91])
    page.get_by_label("Second number").press("Tab")  # the inline check: an htmx POST
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Your session ended after a while without activity")
    assert page.locator("#mask-panel").count() == 0  # a whole page, not a fragment
    ui.shot("sent-to-login")

    ui.login("auth_idle")
    expect(page.get_by_role("heading", name="New mask")).to_be_visible()


def test_logging_out_in_another_tab_sends_the_polling_list_to_login(ui, stack):
    ui.allow(r"status of 401")
    first = ui.page
    ui.login(stack.user("auth_tabs"))
    expect(my_masks(first)).to_be_visible()
    second = ui.new_page(context=first.context)  # another tab, same session
    second.goto("/")
    second.get_by_role("button", name="Log out").click()
    expect(second).to_have_url(re.compile(r"/login"))

    # The first tab's list polls every 15 s; its next poll finds no session and goes to the login page.
    expect(first).to_have_url(re.compile(r"/login"), timeout=25_000)
    expect(first.get_by_role("heading", name="Log in")).to_be_visible()
    ui.shot("first-tab-at-login", page=first)
