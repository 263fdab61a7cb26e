"""The pages fit the window at a desktop and at a phone width: long values people type (a
reference of 255 characters without a space, the field's limit, and a CRM link) wrap on the
agent's page and in the history, and the overview's tables of figures keep their headings.
No page may scroll sideways."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.agent_page import create_mask
from tests.conftest import PARTIES

pytestmark = pytest.mark.slow

LONG_REFERENCES = ["x" * 255, "https://crm.example.com/tickets/ABCD-20261128-000123"]
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def sideways_overflow(page) -> int:
    """How many pixels the page is wider than the window (0: it does not scroll sideways)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_long_references_wrap_and_the_figures_keep_their_headings(make_ui, stack, width):
    ui = make_ui(viewport=WIDTHS[width])
    page = ui.page
    ui.login(stack.user(f"agent_long_{width}"))
    offset = 92 if width == "desktop" else 96  # numbers no other browser test uses (the stack is shared)
    for index, reference in enumerate(LONG_REFERENCES):
        create_mask(page, PARTIES[offset + 2 * index], PARTIES[offset + 2 * index + 1], reference=reference)
    expect(page.locator("#mask-result")).to_contain_text(LONG_REFERENCES[-1])
    assert sideways_overflow(page) == 0
    ui.shot(f"agent page {width}")

    supervisor = ui.new_page(viewport=WIDTHS[width])
    ui.login(stack.user(f"sup_long_{width}", "supervisor"), page=supervisor)
    supervisor.goto(f"/history?agent=agent_long_{width}")
    expect(supervisor.get_by_text(LONG_REFERENCES[0][:40], exact=False)).to_be_visible()
    assert sideways_overflow(supervisor) == 0
    ui.shot(f"history {width}", page=supervisor)

    # The charts' figures keep their column headings at every width.
    supervisor.goto("/overview")
    figures = supervisor.locator("details.chart-data").first
    figures.locator("summary").click()
    table = figures.get_by_role("table")
    for heading in ("Day", "Made in the dashboard", "Made through the API", "Failed in the dashboard"):
        expect(table.get_by_role("columnheader", name=heading)).to_be_visible()
    assert table.locator("caption").bounding_box()["width"] > 200  # not squeezed into one column
    assert sideways_overflow(supervisor) == 0
    ui.shot(f"overview figures {width}", page=supervisor)
