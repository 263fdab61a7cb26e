"""The agent's page in a real browser: make a mask, every refusal in plain words with the input
kept, end (with a confirmation) and extend, masks leaving the list on their own, a narrow window."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from masking.client import MaskingAPIError, MaskingClient
from tests.browser.agent_page import (
    choose_expiry, create_mask, fill_phone, mask_row, my_masks, national, phone_field, shown, submit, until_value)
from tests.browser.conftest import UI
from tests.conftest import PARTIES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def expiring(browser, stack):
    """Made first, checked last: a mask ending at the next whole minute (the soonest end time the
    form takes) and a 1-hour one, in an agent's page left open, so the other tests of this module
    run while the first one runs out."""
    ui = UI(browser, stack, f"test_masks_leave_the_list_on_their_own-{stack.backend}-setup")
    page = ui.page
    ui.login(stack.user("agent_expiry"))
    value, ends = until_value(min_seconds=25)
    fill_phone(page, "m1", PARTIES[30])
    fill_phone(page, "m2", PARTIES[31])
    choose_expiry(page, "Until…")
    page.get_by_label("End date and time").fill(value)
    submit(page)
    expect(page.locator("#mask-result").get_by_role("heading", name="Masked")).to_be_visible()
    expiring_mask = page.locator("#mask-result .mask-number").inner_text().strip()
    expect(page.locator("#mask-result")).to_contain_text(ends.strftime("%H:%M"))
    ended_elsewhere = create_mask(page, PARTIES[32], PARTIES[33], expiry="1 hour")
    expect(mask_row(page, expiring_mask)).to_have_count(1)
    ui.shot("two-masks")
    yield ui, expiring_mask, ended_elsewhere, ends
    problems = ui.unexpected_problems()
    ui.close()
    assert not problems, "the browser reported problems:\n" + "\n".join(problems)



def test_create_a_mask_and_copy_it(ui, stack):
    page = ui.page
    ui.login(stack.user("agent_create"))
    expect(page.get_by_role("heading", name="New mask")).to_be_visible()
    expect(my_masks(page)).to_contain_text("No active masks")
    ui.shot("empty-form")

    # The inline check shows the normalised number as the agent leaves the field.
    fill_phone(page, "m1", national(PARTIES[0]))
    expect(page.locator("#m1-check")).to_have_text(f"✓ {shown(PARTIES[0])}")
    fill_phone(page, "m2", PARTIES[1])
    expect(page.locator("#m2-check")).to_have_text(f"✓ {shown(PARTIES[1])}")
    choose_expiry(page, "4 hours")
    page.get_by_label("Reference").fill("TICKET-4711")
    ui.shot("form-filled")
    submit(page)

    result = page.locator("#mask-result")
    expect(result.get_by_role("heading", name="Masked")).to_be_visible()
    number = result.locator(".mask-number")
    mask = number.inner_text().strip()
    assert re.fullmatch(r"\+91 80 4123 45\d\d", mask), mask
    assert number.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 28  # large
    expect(result).to_contain_text(f"{shown(PARTIES[0])} and {shown(PARTIES[1])}")
    expect(result).to_contain_text(re.compile(r"\d\d:\d\d \(in (3 h 5\d min|4 h)\)"))
    expect(result).to_contain_text("TICKET-4711")
    copy = result.get_by_role("button", name=re.compile("^Cop"))  # "Copy number", then "Copied"
    expect(copy).to_have_text("Copy number")
    expect(copy).to_be_focused()  # ready for Enter
    # The form is empty for the next call; the expiry choice stays.
    expect(phone_field(page, "m1")).to_have_value("")
    expect(phone_field(page, "m2")).to_have_value("")
    expect(page.get_by_role("radio", name="4 hours", exact=True)).to_be_checked()
    # ... and the new mask heads My active masks.
    expect(my_masks(page).get_by_role("heading")).to_contain_text("My active masks (1)")
    expect(mask_row(page, mask)).to_contain_text("Ref. TICKET-4711")
    ui.shot("masked")

    copy.click()
    expect(copy).to_have_text("Copied")
    expect(result.locator(".copied")).to_have_text(f"{mask.replace(' ', '')} copied")
    assert page.evaluate("navigator.clipboard.readText()") == mask.replace(" ", "")
    ui.shot("copied")

    # A reload shows the same list (the server's record, not just the page's memory).
    page.reload()
    expect(mask_row(page, mask)).to_have_count(1)


def test_each_refusal_in_plain_words_with_the_input_kept(ui, stack):
    page = ui.page
    ui.login(stack.user("agent_errors"))
    check = page.locator("#m1-check")

    # An invalid number: a field-level message as the agent leaves the field, the input kept.
    fill_phone(page, "m1", "12345")
    expect(check).to_contain_text("First number")
    expect(check).to_contain_text("Check the digits")
    expect(phone_field(page, "m1")).to_have_value("12345")
    ui.shot("invalid-number")

    # 1501: the same number twice.
    fill_phone(page, "m1", PARTIES[10])
    expect(check).to_contain_text("✓")
    fill_phone(page, "m2", national(PARTIES[10]))
    page.get_by_label("Reference").fill("REF-1501")
    submit(page)
    alert = page.locator("#mask-result").get_by_role("alert")
    expect(alert).to_contain_text("Not masked")
    expect(alert).to_contain_text("Both numbers are the same")
    expect(alert).to_contain_text("Enter two different numbers")
    expect(phone_field(page, "m1")).to_have_value(PARTIES[10])
    expect(phone_field(page, "m2")).to_have_value(national(PARTIES[10]))
    expect(page.get_by_label("Reference")).to_have_value("REF-1501")
    expect(phone_field(page, "m2")).to_have_attribute("aria-invalid", "true")
    expect(phone_field(page, "m2")).to_be_focused()
    ui.shot("1501-same-numbers")

    # 1503: the pair is already masked.
    first = create_mask(page, PARTIES[11], PARTIES[12], expiry="15 min")
    fill_phone(page, "m1", PARTIES[11])
    fill_phone(page, "m2", PARTIES[12])
    choose_expiry(page, "24 hours")
    page.get_by_label("Reference").fill("REF-1503")
    submit(page)
    expect(alert).to_contain_text("already masked")
    expect(alert).to_contain_text(first)
    expect(alert).to_contain_text("end that mask first or wait")
    # '14:05', or '28 Nov 00:05' when the end is on the next local day.
    expect(alert).to_contain_text(re.compile(r"until (\d+ \w+ )?\d\d:\d\d \(in 1\d min\)"))
    expect(phone_field(page, "m1")).to_have_value(PARTIES[11])
    expect(phone_field(page, "m2")).to_have_value(PARTIES[12])
    expect(page.get_by_role("radio", name="24 hours", exact=True)).to_be_checked()
    expect(page.get_by_label("Reference")).to_have_value("REF-1503")
    ui.shot("1503-already-masked")

    # 1505: every pool number is already in use by the first party (masked through the API).
    busy, other = PARTIES[13], PARTIES[14]
    account = stack.api_account("browser-1505")
    with MaskingClient(stack.url, user_id=account["userId"], token=account["token"]) as api:
        for index in range(500):
            try:
                api.set(busy, f"+9197000{index:05d}", expiry_duration=30)
            except MaskingAPIError as exc:
                assert exc.code == 1505, exc  # the pool is used up for this party
                break
        else:
            raise AssertionError("the pool never ran out")
    fill_phone(page, "m1", busy)
    fill_phone(page, "m2", other)
    page.get_by_label("Reference").fill("REF-1505")
    submit(page)
    expect(alert).to_contain_text("No masking number is free")
    expect(alert).to_contain_text("ask an admin to add numbers to the pool")
    expect(phone_field(page, "m1")).to_have_value(busy)
    expect(phone_field(page, "m2")).to_have_value(other)
    expect(page.get_by_label("Reference")).to_have_value("REF-1505")
    ui.shot("1505-no-number-free")

    # A form error that never reaches the service: custom minutes left empty.
    choose_expiry(page, "Minutes…")
    expect(page.get_by_label("Minutes (with")).to_be_visible()
    submit(page)
    expect(page.locator("#expiry-check")).to_contain_text("Enter the number of minutes")
    expect(page.get_by_label("Minutes (with")).to_be_focused()
    expect(phone_field(page, "m1")).to_have_value(busy)
    ui.shot("custom-minutes-missing")


def test_a_field_the_agent_chose_keeps_the_focus_after_a_refusal(ui, stack):
    """The field to fix takes the focus when the answer settles, a moment after it is shown; an
    agent who has already clicked into another field by then keeps typing there."""
    page = ui.page
    ui.login(stack.user("agent_focus"))
    page.evaluate("htmx.config.defaultSettleDelay = 1500")  # widen that moment so the test can act in it
    fill_phone(page, "m1", PARTIES[80])
    fill_phone(page, "m2", PARTIES[80])
    submit(page)
    page.evaluate("() => { window.settled = new Promise(done => "
                  "document.addEventListener('htmx:afterSettle', () => done(true), {once: true})); }")
    first = phone_field(page, "m1")
    first.focus()  # the agent moves to m1 before the answer settles
    assert page.evaluate("document.activeElement.id") == "m1"
    assert page.evaluate("window.settled") is True  # waits for the settle
    expect(page.locator("#mask-result")).to_contain_text("Both numbers are the same")
    expect(first).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.type("1")
    expect(first).to_have_value(PARTIES[80][:-1] + "1")
    expect(phone_field(page, "m2")).to_have_value(PARTIES[80])
    # Untouched, the field to fix takes the focus: test_each_refusal_in_plain_words_with_the_input_kept.


def hold_posts(page, pattern: str) -> list:
    """Keep the POSTs to ``pattern`` on their way: the test answers (``continue_``) or fails
    (``abort``) each held route itself."""
    held = []

    def hold(route):
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route(pattern, hold)
    return held


def test_the_form_takes_no_keys_while_it_is_on_its_way(ui, stack):
    """The answer replaces the whole form with what was sent, so the fields are read-only until
    it comes: keys typed meanwhile would otherwise vanish without a word."""
    page = ui.page
    ui.login(stack.user("agent_inflight"))
    held = hold_posts(page, "**/masks")  # answered below, after the agent has tried to type
    fill_phone(page, "m1", PARTIES[82])
    fill_phone(page, "m2", PARTIES[83])
    page.get_by_role("button", name="Mask these numbers").click()
    expect(page.locator("#mask-busy")).to_be_visible()
    first = phone_field(page, "m1")
    expect(first).to_have_js_property("readOnly", True)
    first.focus()
    page.keyboard.type("99")
    expect(first).to_have_value(PARTIES[82])
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator("#mask-result").get_by_role("heading", name="Masked")).to_be_visible()
    page.unroute("**/masks")
    expect(phone_field(page, "m1")).to_have_js_property("readOnly", False)


def test_the_expiry_choice_is_held_while_the_form_is_on_its_way(ui, stack):
    """Radio buttons cannot be read-only: while the form is on its way, another expiry choice
    (a click on it or its label, the arrow keys) is refused on the spot, and the choices say they
    are held; the answer would otherwise undo it without a word. Afterwards they work again, also
    after a request that failed (not swapped: the same form is let go)."""
    page = ui.page
    ui.login(stack.user("agent_inflight_expiry"))
    held = hold_posts(page, "**/masks")  # answered below, after the agent has tried another choice
    form = page.locator("#mask-form")
    sent, other = (page.get_by_role("radio", name=name, exact=True) for name in ("Minutes…", "4 hours"))
    minutes = page.get_by_label("Minutes (with")
    fill_phone(page, "m1", PARTIES[84])
    fill_phone(page, "m2", PARTIES[85])
    choose_expiry(page, "Minutes…")
    minutes.fill("30")
    page.get_by_role("button", name="Mask these numbers").click()
    expect(page.locator("#mask-busy")).to_be_visible()
    other.click(force=True)  # a real click (force: Playwright would wait for it to be enabled)
    expect(sent).to_be_checked()
    expect(other).not_to_be_checked()
    page.get_by_text("Until…", exact=True).click(force=True)  # its label
    expect(sent).to_be_checked()
    sent.focus()
    page.keyboard.press("ArrowRight")  # the arrow keys of a radio group check the next one
    expect(sent).to_be_checked()
    expect(minutes).to_have_value("30")
    expect(minutes).to_have_js_property("readOnly", True)
    expect(form).to_have_attribute("aria-busy", "true")
    expect(other).to_be_disabled()  # aria-disabled: what a screen reader announces
    ui.shot("held")
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator("#mask-result").get_by_role("heading", name="Masked")).to_be_visible()
    expect(sent).to_be_checked()  # what the agent saw all along is what was sent
    expect(form).not_to_have_attribute("aria-busy", "true")
    expect(other).to_be_enabled()
    choose_expiry(page, "4 hours")  # check() fails unless the radio ends up checked
    expect(sent).not_to_be_checked()

    # A request that fails leaves the form in place: it is let go all the same, exactly.
    ui.allow(r"htmx:(afterRequest|sendError)|net::ERR_FAILED")
    page.get_by_role("button", name="Mask these numbers").click()
    expect(form).to_have_attribute("aria-busy", "true")
    page.get_by_role("radio", name="1 hour", exact=True).click(force=True)
    expect(other).to_be_checked()
    assert len(held) == 2
    held[1].abort()
    expect(page.locator("#connection-problem")).to_contain_text("cannot be reached")
    expect(form).not_to_have_attribute("aria-busy", "true")
    expect(form.locator("[data-held], [readonly], [aria-disabled]")).to_have_count(0)
    choose_expiry(page, "1 hour")
    expect(other).not_to_be_checked()
    page.unroute("**/masks")


def test_a_database_outage_is_told_in_plain_words_and_the_typed_numbers_stay(ui, stack):
    """The server answers a dashboard request 503 when its database is down or not migrated
    (tests/test_database_readiness.py); here that answer is given to the page on purpose."""
    page = ui.page
    ui.login(stack.user("agent_outage"))
    fill_phone(page, "m1", national(PARTIES[40]))
    fill_phone(page, "m2", national(PARTIES[41]))
    ui.allow(r"status of 503|Error Code 503")
    page.route("**/masks", lambda route: route.fulfill(status=503, content_type="text/html", body="<h1>down</h1>"))
    page.get_by_role("button", name="Mask these numbers").click()
    expect(page.locator("#connection-problem")).to_have_text(
        "The dashboard cannot use its database right now; nothing was saved. What you typed is still here: "
        "try again in a minute.")
    expect(phone_field(page, "m1")).to_have_value(national(PARTIES[40]))
    expect(phone_field(page, "m2")).to_have_value(national(PARTIES[41]))
    ui.shot("database down")
    page.unroute("**/masks")
    submit(page)  # the database is back: the same numbers, sent again
    expect(page.locator("#mask-result").get_by_role("heading", name="Masked")).to_be_visible()
    expect(page.locator("#connection-problem")).to_be_hidden()


def test_end_with_confirmation_and_extend(ui, stack):
    page = ui.page
    ui.login(stack.user("agent_end"))
    keep = create_mask(page, PARTIES[20], PARTIES[21], expiry="15 min")
    drop = create_mask(page, PARTIES[22], PARTIES[23], expiry="15 min")
    rows = my_masks(page).locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(drop)  # newest first
    ui.shot("two-masks")

    # Extend: a new duration from now.
    row = mask_row(page, keep)
    row.get_by_label("New duration from now").select_option(label="24 hours")
    row.get_by_role("button", name=re.compile("^Extend")).click()
    notice = my_masks(page).locator(".notice-area")
    expect(notice).to_contain_text(f"The mask on {keep} now ends at")
    expect(notice).to_contain_text(re.compile(r"in (23 h 5\d min|24 h)"))
    expect(mask_row(page, keep)).to_contain_text(re.compile(r"in (23 h 5\d min|24 h)"))
    ui.shot("extended")

    # End now asks first; "Cancel" keeps the mask.
    dialogs = []

    def answer(accept):
        def handle(dialog):
            dialogs.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    page.once("dialog", answer(False))
    mask_row(page, drop).get_by_role("button", name=re.compile("^End")).click()
    _wait_for(lambda: len(dialogs) == 1)
    # The question names the parties: two masks on one masking number are told apart.
    assert f"End the mask on {drop} between {shown(PARTIES[22])} and {shown(PARTIES[23])} now?" in dialogs[0]
    time.sleep(0.3)
    expect(mask_row(page, drop)).to_have_count(1)

    page.once("dialog", answer(True))
    mask_row(page, drop).get_by_role("button", name=re.compile("^End")).click()
    expect(notice).to_contain_text(f"The mask on {drop} has ended.")
    expect(mask_row(page, drop)).to_have_count(0)
    expect(mask_row(page, keep)).to_have_count(1)
    expect(my_masks(page).get_by_role("heading")).to_contain_text("(1)")
    ui.shot("ended")


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_narrow_window_is_still_usable(make_ui, stack):
    ui = make_ui(viewport={"width": 400, "height": 800})
    page = ui.page
    username = stack.user("agent_narrow")
    page.goto("/login")
    _assert_fits(page)
    ui.shot("login")
    ui.login(username)
    _assert_fits(page)
    ui.shot("form")

    mask = create_mask(page, PARTIES[35], PARTIES[36], expiry="1 hour", reference="NARROW-1")
    _assert_fits(page)
    row = mask_row(page, mask)
    for name in ("Copy", "End", "Extend"):
        button = row.get_by_role("button", name=re.compile(f"^{name}"))
        button.scroll_into_view_if_needed()
        expect(button).to_be_in_viewport()
    ui.shot("masked")

    fill_phone(page, "m1", "12345")
    expect(page.locator("#m1-check")).to_contain_text("Check the digits")
    _assert_fits(page)
    ui.shot("field-error")

    row.get_by_label("New duration from now").select_option(label="4 hours")
    row.get_by_role("button", name=re.compile("^Extend")).click()
    expect(my_masks(page).locator(".notice-area")).to_contain_text("now ends at")
    _assert_fits(page)
    ui.shot("extended")


def _assert_fits(page) -> None:
    """No sideways scrolling, and no element sticking out of the window."""
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    wide = page.evaluate("""(width) => Array.from(document.querySelectorAll('body *'))
        .filter(e => e.offsetParent !== null && e.getBoundingClientRect().right > width + 1
                     && !e.closest('.visually-hidden, .skip-link, .offscreen'))
        .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className)""", width)
    assert not wide, f"sticking out of a {width}px window: {wide}"


def test_masks_leave_the_list_on_their_own(expiring, stack):
    """One mask expires (an end time a minute ahead, made when this module started); another is
    ended in another browser session. The first session's list drops both by itself (polling)."""
    ui, expiring_mask, ended_elsewhere, ends = expiring
    page = ui.page
    expect(my_masks(page).locator("tbody tr")).to_have_count(2)
    page.get_by_role("heading", name="New mask").click()  # focus out of the list (it polls then)

    other = ui.new_page()  # another browser session of the same agent
    ui.login("agent_expiry", page=other)
    other.once("dialog", lambda dialog: dialog.accept())
    mask_row(other, ended_elsewhere).get_by_role("button", name=re.compile("^End")).click()
    expect(mask_row(other, ended_elsewhere)).to_have_count(0)
    ui.shot("ended-in-other-session", page=other)

    expect(mask_row(page, ended_elsewhere)).to_have_count(0, timeout=20_000)
    ui.shot("ended-one-gone")

    seconds_left = ends.timestamp() - time.time()
    expect(mask_row(page, expiring_mask)).to_have_count(0, timeout=int((max(seconds_left, 0) + 20) * 1000))
    expect(my_masks(page)).to_contain_text("No active masks")
    ui.shot("expired-one-gone")
