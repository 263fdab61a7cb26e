"""The agent's whole task with the keyboard alone: no click, no mouse. Log in, reach the form,
fill it, pick an expiry, submit, copy the number, extend a mask, end one (confirming)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.agent_page import mask_row, my_masks, national, phone_field, shown, submit
from tests.conftest import PARTIES
from tests.dashboard_helpers import PASSWORD

pytestmark = pytest.mark.slow

DESCRIBE = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return "body";
  return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " +
         (e.getAttribute("aria-label") || e.textContent || e.value || "").trim().replace(/\\s+/g, " ").slice(0, 60);
}"""


def tab_to(page, predicate: str, limit: int = 40, key: str = "Tab") -> list[str]:
    """Press Tab until ``predicate`` (JS, given the focused element) holds; returns the stops."""
    stops = []
    for _ in range(limit):
        page.keyboard.press(key)
        stops.append(page.evaluate(DESCRIBE))
        if page.evaluate(f"(e => ({predicate}))(document.activeElement)"):
            return stops
    raise AssertionError(f"{predicate} not reached with {key}; focus went: {stops}")


def focus_is_visible(page) -> bool:
    return page.evaluate("""() => {
        const s = getComputedStyle(document.activeElement);
        return document.activeElement.matches(':focus-visible') && s.outlineStyle !== 'none'
               && parseFloat(s.outlineWidth) >= 2;
    }""")


def test_the_agents_whole_task_with_the_keyboard_alone(ui, stack):
    page = ui.page
    username = stack.user("agent_keyboard")

    # Log in: the username field has the focus; Tab to the password; Enter submits.
    page.goto("/login")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="New mask")).to_be_visible()

    # The first Tab reaches "Skip to content"; Enter on it jumps over the header to the form.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    assert focus_is_visible(page)
    ui.shot("skip-link")
    page.keyboard.press("Enter")
    tab_to(page, "e.id === 'm1'", limit=3)
    assert focus_is_visible(page)

    # Fill the form: numbers checked as the agent leaves each field.
    page.keyboard.type(national(PARTIES[50]))
    page.keyboard.press("Tab")
    expect(phone_field(page, "m2")).to_be_focused()
    expect(page.locator("#m1-check")).to_have_text(f"✓ {shown(PARTIES[50])}")
    page.keyboard.type(PARTIES[51])
    page.keyboard.press("Tab")
    expect(page.get_by_role("radio", name="1 hour", exact=True)).to_be_focused()  # the checked choice
    expect(page.locator("#m2-check")).to_have_text(f"✓ {shown(PARTIES[51])}")
    page.keyboard.press("ArrowRight")  # arrows move within the radio group
    expect(page.get_by_role("radio", name="4 hours", exact=True)).to_be_checked()
    assert focus_is_visible(page)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Reference")).to_be_focused()  # the hidden custom fields are skipped
    page.keyboard.type("KB-1")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Mask these numbers")).to_be_focused()
    ui.shot("form-filled")
    submit(page, key="Enter")

    # The masking number, and the focus on its copy button: Space copies it.
    result = page.locator("#mask-result")
    expect(result.get_by_role("heading", name="Masked")).to_be_visible()
    first = result.locator(".mask-number").inner_text().strip()
    copy = result.get_by_role("button", name=re.compile("^Cop"))
    expect(copy).to_be_focused()
    page.keyboard.press("Space")
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == first.replace(" ", "")
    ui.shot("masked-and-copied")

    # A second mask, submitted with Enter from inside a field.
    tab_to(page, "e.id === 'm1'", key="Shift+Tab")
    page.keyboard.type(PARTIES[52])
    page.keyboard.press("Tab")
    page.keyboard.type(PARTIES[53])
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")
    submit(page, key="Enter")
    expect(result.get_by_role("heading", name="Masked")).to_be_visible()
    second = page.locator("#mask-result .mask-number").inner_text().strip()
    expect(my_masks(page).locator("tbody tr")).to_have_count(2)

    # Extend the first mask: Tab to its duration, pick 24 hours by typing, Tab, Space.
    tab_to(page, f"e.id === 'extend-' + {_row_id(page, first)}")
    page.keyboard.type("24")
    expect(mask_row(page, first).get_by_label("New duration from now")).to_have_value("1440")
    page.keyboard.press("Tab")
    expect(mask_row(page, first).get_by_role("button", name=re.compile("^Extend"))).to_be_focused()
    assert focus_is_visible(page)
    ui.shot("extend-focused")
    page.keyboard.press("Space")
    notice = my_masks(page).locator(".notice-area")
    expect(notice).to_contain_text(f"The mask on {first} now ends at")
    expect(notice.locator(".banner")).to_be_focused()  # the list was replaced: focus is not lost
    expect(mask_row(page, first)).to_contain_text(re.compile(r"in (23 h 5\d min|24 h)"))
    ui.shot("extended")

    # End the second mask: Tab to its End button, Enter, confirm (the dialog's OK is the default).
    messages = []

    def confirm(dialog):
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    end = mask_row(page, second).get_by_role("button", name=re.compile("^End"))
    label = f"End the mask on {second} between {shown(PARTIES[52])} and {shown(PARTIES[53])} now"
    tab_to(page, "e.getAttribute('aria-label') === " + repr(label), limit=60)
    expect(end).to_be_focused()
    page.keyboard.press("Enter")
    expect(notice).to_contain_text(f"The mask on {second} has ended.")
    expect(notice.locator(".banner")).to_be_focused()
    assert messages and second in messages[0]
    expect(mask_row(page, second)).to_have_count(0)
    expect(mask_row(page, first)).to_have_count(1)
    ui.shot("ended")


def _row_id(page, mask: str) -> str:
    return repr(mask_row(page, mask).get_attribute("id").removeprefix("mask-"))
