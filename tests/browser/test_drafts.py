"""What the agent typed survives a stale page, in a real browser: a CSRF token made stale by a
new login in another tab (nothing is sent, nothing is reloaded, the next press goes through), and
a session that ended while idle (the form's fields wait in sessionStorage through the login page
and come back once, to the same user only)."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.agent_page import choose_expiry, fill_phone, mask_row, national, phone_field, shown, submit
from tests.browser.test_auth import _age_session

pytestmark = pytest.mark.slow

# Party numbers of this module only (tests share one stack; tests/conftest.PARTIES are others').
NUMBERS = [f"+9198123456{i:02d}" for i in range(10)]
STALE_PRESS = ("Your session was renewed in another tab, so nothing was sent. "
               "What you typed is still here: press the button again.")
RESTORED = "Restored what you typed before you were logged out. Check it, then press the button."


def _type_the_form(page, m1: str, m2: str, reference: str) -> None:
    fill_phone(page, "m1", national(m1))
    fill_phone(page, "m2", national(m2))
    choose_expiry(page, "Minutes…")
    page.get_by_label("Minutes (with").fill("45")
    page.get_by_label("Reference").fill(reference)


def _expect_the_form(page, m1: str, m2: str, reference: str) -> None:
    expect(phone_field(page, "m1")).to_have_value(national(m1))
    expect(phone_field(page, "m2")).to_have_value(national(m2))
    expect(page.get_by_role("radio", name="Minutes…")).to_be_checked()
    expect(page.get_by_label("Minutes (with")).to_have_value("45")
    expect(page.get_by_label("Reference")).to_have_value(reference)


def _log_in_again_in_another_tab(ui, page, username: str):
    other = ui.new_page(context=page.context)  # another tab of the same browser: the same session
    other.goto("/")
    other.get_by_role("button", name="Log out").click()
    expect(other).to_have_url(re.compile(r"/login"))
    ui.login(username, page=other)
    return other


def _token(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def _drafts(page) -> dict:
    return page.evaluate("""() => {
        const found = {};
        for (let i = 0; i < sessionStorage.length; i++) {
            const key = sessionStorage.key(i);
            if (key.startsWith("masking.draft:")) found[key] = sessionStorage.getItem(key);
        }
        return found;
    }""")


def test_a_stale_token_keeps_what_was_typed_and_the_next_press_goes_through(ui, stack):
    page = ui.page
    user = stack.user("drafts_stale")
    ui.login(user)
    m1, m2 = NUMBERS[0], NUMBERS[1]
    _type_the_form(page, m1, m2, "TICKET-STALE")
    stale = _token(page)

    # The inline check with a stale token runs again by itself, once, with the new token.
    other = _log_in_again_in_another_tab(ui, page, user)
    requests = []
    page.on("request", lambda request: request.url.endswith("/validate/m1") and requests.append(request))
    fill_phone(page, "m1", national(NUMBERS[2]))
    expect(page.locator("#m1-check")).to_have_text(f"✓ {shown(NUMBERS[2])}")
    assert len(requests) == 2  # refused, then sent again
    expect(page.locator("#connection-problem")).to_be_hidden()
    assert _token(page) != stale
    fill_phone(page, "m1", national(m1))
    expect(page.locator("#m1-check")).to_have_text(f"✓ {shown(m1)}")

    # Submitting with a stale token: nothing sent, nothing reloaded, everything still there.
    stale = _token(page)
    other.close()
    _log_in_again_in_another_tab(ui, page, user)
    page.get_by_role("button", name="Mask these numbers").click()
    banner = page.locator("#connection-problem")
    expect(banner).to_have_text(STALE_PRESS)
    expect(banner).to_have_attribute("role", "alert")
    _expect_the_form(page, m1, m2, "TICKET-STALE")
    expect(page.locator("#mask-form")).not_to_have_attribute("aria-busy", "true")  # let go
    expect(page.get_by_role("button", name="Mask these numbers")).to_be_enabled()
    expect(page.locator("#mask-result").get_by_role("heading", name="Masked")).to_have_count(0)
    fresh = _token(page)
    assert fresh != stale
    assert page.locator("#mask-form input[name='csrf_token']").input_value() == fresh  # the field wins over the header
    ui.shot("stale token, input kept")

    submit(page)  # pressed again: sent once, and it works
    result = page.locator("#mask-result")
    expect(result.get_by_role("heading", name="Masked")).to_be_visible()
    expect(result).to_contain_text("TICKET-STALE")
    expect(banner).to_be_hidden()
    mask = result.locator(".mask-number").inner_text().strip()
    expect(mask_row(page, mask)).to_have_count(1)


def test_a_stale_token_after_another_user_logged_in_sends_nothing_as_them(ui, stack):
    page = ui.page
    first, second = stack.user("drafts_first"), stack.user("drafts_second")
    ui.login(first)
    _type_the_form(page, NUMBERS[3], NUMBERS[4], "TICKET-WHO")
    stale = _token(page)
    other = ui.new_page(context=page.context)
    other.goto("/")
    other.get_by_role("button", name="Log out").click()
    ui.login(second, page=other)

    for _ in range(2):  # the page keeps refusing to act as the other user, and keeps the input
        page.get_by_role("button", name="Mask these numbers").click()
        expect(page.locator("#connection-problem")).to_have_text(
            "You are now logged in as drafts_second (in another tab), so nothing was sent. What you typed is "
            "still here. Reload the page to go on as drafts_second.")
        _expect_the_form(page, NUMBERS[3], NUMBERS[4], "TICKET-WHO")
        assert _token(page) == stale
        page.locator("#connection-problem").evaluate("banner => { banner.hidden = true; }")
    expect(page.locator("#mask-result").get_by_role("heading", name="Masked")).to_have_count(0)
    ui.shot("another user")


def test_after_the_idle_timeout_the_login_gives_back_what_was_typed(ui, stack):
    page = ui.page
    ui.allow(r"status of 401")  # the htmx answer that carries HX-Redirect
    user = stack.user("drafts_idle")
    ui.login(user)
    m1, m2 = NUMBERS[5], NUMBERS[6]
    _type_the_form(page, m1, m2, "TICKET-IDLE")

    _age_session(page.context, stack.url, 31 * 60)  # idle longer than SESSION_IDLE_MINUTES (30)
    page.get_by_role("button", name="Mask these numbers").click()
    expect(page).to_have_url(stack.url + "/login")  # no number in the URL
    expect(page.locator("body")).to_contain_text("Your session ended after a while without activity")
    drafts = _drafts(page)
    assert list(drafts) == ["masking.draft:/#mask-form"]
    draft = json.loads(drafts["masking.draft:/#mask-form"])
    assert draft["user"] == user
    kept = {field["name"] for field in draft["fields"]}
    assert {"m1", "m2", "expiry", "custom_minutes", "until", "event_id"} == kept  # no csrf_token
    assert page.evaluate("() => localStorage.length") == 0
    expect(page.locator("#page-notice")).to_have_text(
        "What you typed is kept in this browser tab: log in again and it comes back.")
    ui.shot("login page, draft kept")

    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(stack.url + "/")
    _expect_the_form(page, m1, m2, "TICKET-IDLE")
    expect(page.locator("#page-notice")).to_have_text(RESTORED)
    expect(page.locator("#page-notice")).to_have_attribute("role", "status")
    assert _drafts(page) == {}  # put back once: gone from storage at once
    ui.shot("after login, input restored")

    submit(page)
    expect(page.locator("#mask-result").get_by_role("heading", name="Masked")).to_be_visible()
    expect(page.locator("#mask-result")).to_contain_text("TICKET-IDLE")
    page.reload()
    expect(phone_field(page, "m1")).to_have_value("")  # not restored a second time
    expect(page.locator("#page-notice")).to_be_hidden()


def test_a_draft_is_never_given_to_another_user(ui, stack):
    page = ui.page
    ui.allow(r"status of 401")
    owner, stranger = stack.user("drafts_owner"), stack.user("drafts_stranger")
    ui.login(owner)
    _type_the_form(page, NUMBERS[7], NUMBERS[8], "TICKET-MINE")
    _age_session(page.context, stack.url, 31 * 60)
    page.get_by_role("button", name="Mask these numbers").click()
    expect(page).to_have_url(re.compile(r"/login"))
    assert list(_drafts(page)) == ["masking.draft:/#mask-form"]

    ui.login(stranger)  # the same tab, someone else
    expect(page.get_by_role("heading", name="New mask")).to_be_visible()
    expect(phone_field(page, "m1")).to_have_value("")
    expect(page.get_by_label("Reference")).to_have_value("")
    expect(page.locator("#page-notice")).to_be_hidden()
    assert _drafts(page) == {}  # dropped, not kept for later
