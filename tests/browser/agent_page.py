"""Steps on the agent's page, as a user does them (labels, roles and visible text first)."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from masking.humanize import phone

ZONE = ZoneInfo("Asia/Kolkata")
FIELDS = {"m1": "First number", "m2": "Second number"}


def national(number: str) -> str:
    """'+919876543201' as an agent in India types it: '98765 43201'."""
    digits = number.removeprefix("+91")
    return f"{digits[:5]} {digits[5:]}"


def shown(number: str) -> str:
    """How the dashboard shows a number: '+91 98765 43201' (mobile) or '+91 80 4123 4500'."""
    return phone(number)


def phone_field(page: Page, name: str):
    return page.get_by_label(FIELDS[name])


def fill_phone(page: Page, name: str, value: str) -> None:
    """Type a number and leave the field (the inline check runs on change)."""
    field = phone_field(page, name)
    field.fill(value)
    field.press("Tab")
    expect(page.locator(f"#{name}-check")).not_to_be_empty()


def choose_expiry(page: Page, label: str) -> None:
    page.get_by_role("radio", name=label, exact=True).check()


def submit(page: Page, key: str | None = None) -> None:
    """Submit the form (click, or ``key`` on the focused element) and wait for the new panel."""
    old = page.locator("#mask-panel").element_handle()
    if key:
        page.keyboard.press(key)
    else:
        page.get_by_role("button", name="Mask these numbers").click()
    old.wait_for_element_state("hidden")  # htmx swapped the whole panel (outerHTML)
    expect(page.locator("#mask-panel")).to_be_visible()


def create_mask(page: Page, m1: str, m2: str, expiry: str = "1 hour", reference: str | None = None) -> str:
    """Fill the form, submit it, expect success; returns the masking number as shown."""
    fill_phone(page, "m1", m1)
    fill_phone(page, "m2", m2)
    choose_expiry(page, expiry)
    if reference is not None:
        page.get_by_label("Reference").fill(reference)
    submit(page)
    result = page.locator("#mask-result")
    expect(result.get_by_role("heading", name="Masked")).to_be_visible()
    return result.locator(".mask-number").inner_text().strip()


def my_masks(page: Page):
    return page.locator("#my-masks")


def mask_row(page: Page, mask: str):
    return my_masks(page).get_by_role("row").filter(has_text=mask)


def until_value(min_seconds: int = 20) -> tuple[str, datetime]:
    """The soonest whole local minute at least ``min_seconds`` ahead, as a datetime-local value."""
    now = datetime.now(ZONE)
    target = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (target - now).total_seconds() < min_seconds:
        target += timedelta(minutes=1)
    return target.strftime("%Y-%m-%dT%H:%M"), target
