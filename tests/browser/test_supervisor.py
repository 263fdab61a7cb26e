"""The supervisor's history in a real browser: attempts made by agents in the browser, filtered
(agent, outcome, partial digits), bookmarked, revealed, exported to CSV; pages; bad filters."""
from __future__ import annotations

import csv
import json
import io
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from masking import attempts
from masking.clock import utcnow
from masking.models import AttemptAction, AttemptOutcome
from masking.web.extensions import db
from tests.browser.agent_page import create_mask, fill_phone, mask_row, submit
from tests.conftest import PARTIES, POOL
from tests.dashboard_helpers import make_user

pytestmark = pytest.mark.slow


def _query(page) -> dict:
    """The filters in the address bar (the default "starts with" left out)."""
    query = {name: values[0] for name, values in parse_qs(urlsplit(page.url).query).items()}
    if query.get("match") == "starts":
        del query["match"]
    return query


def _show(page) -> None:
    """Apply the filters (htmx swaps the results and pushes the URL)."""
    old = page.locator("#history").element_handle()
    page.get_by_role("button", name="Show", exact=True).click()
    old.wait_for_element_state("hidden")


def _rows(page):
    return page.locator("#history-results tbody tr")


def _download(page, button_name: str = "Export CSV", name: str = "masking-history") -> list[dict]:
    with page.expect_download() as info:
        page.get_by_role("button", name=button_name).click()
    download = info.value
    assert re.fullmatch(rf"{name}-\d{{8}}-\d{{4}}\.csv", download.suggested_filename)
    text = download.path().read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_filter_bookmark_reveal_and_export_the_history(ui, stack):
    # Agents at work, in their own browser sessions.
    asha, ravi = stack.user("sup_asha"), stack.user("sup_ravi")
    agent = ui.new_page()
    ui.login(asha, page=agent)
    create_mask(agent, PARTIES[60], PARTIES[61], reference="SUP-1")
    fill_phone(agent, "m1", PARTIES[62])
    fill_phone(agent, "m2", PARTIES[62])
    submit(agent)
    expect(agent.locator("#mask-result")).to_contain_text("Both numbers are the same")
    create_mask(agent, PARTIES[63], PARTIES[64])
    other = ui.new_page()
    ui.login(ravi, page=other)
    ended = create_mask(other, PARTIES[65], PARTIES[66])
    other.once("dialog", lambda dialog: dialog.accept())
    mask_row(other, ended).get_by_role("button", name=re.compile("^End")).click()
    expect(mask_row(other, ended)).to_have_count(0)

    # The supervisor opens the history from the header.
    page = ui.page
    ui.login(stack.user("sup_boss", "supervisor"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="Masking history")).to_be_visible()
    table = page.locator("#history-results")
    expect(table).to_contain_text("sup_asha")
    expect(table).to_contain_text("sup_ravi")
    # Numbers partly hidden: '+91 98XXXXX260', never in full.
    expect(table).to_contain_text("+91 98XXXXX260")
    assert "43260" not in table.inner_text()
    ui.shot("all")

    # Agent filter: the URL follows, so the view can be bookmarked.
    page.get_by_label("Agent").select_option("sup_asha")
    _show(page)
    assert _query(page) == {"agent": "sup_asha"}
    expect(_rows(page)).to_have_count(3)
    expect(table).not_to_contain_text("sup_ravi")
    ui.shot("agent")

    # ... combined with an outcome: the failed attempt and its code.
    page.get_by_label("Outcome").select_option(label="Failed: 1501 same numbers")
    _show(page)
    assert _query(page) == {"agent": "sup_asha", "outcome": "failed:1501"}
    expect(_rows(page)).to_have_count(1)
    expect(_rows(page)).to_contain_text("Failed")
    expect(_rows(page)).to_contain_text("1501 same numbers")
    ui.shot("agent-and-failure")

    # ... or with a part of a number, "contain the digits".
    page.get_by_label("Outcome").select_option(label="Any outcome")
    page.get_by_label("Number (either party)").fill("43263")
    page.get_by_role("radio", name="contain the digits").check()
    _show(page)
    assert _query(page) == {"agent": "sup_asha", "number": "43263", "match": "contains"}
    expect(_rows(page)).to_have_count(1)
    expect(_rows(page)).to_contain_text("+91 98XXXXX263")
    ui.shot("agent-and-digits")

    # The bookmarked address opens the same view, filters filled in.
    shared = ui.new_page(context=page.context)
    shared.goto(page.url)
    expect(shared.get_by_label("Agent")).to_have_value("sup_asha")
    expect(shared.get_by_label("Number (either party)")).to_have_value("43263")
    expect(shared.get_by_role("radio", name="contain the digits")).to_be_checked()
    expect(_rows(shared)).to_have_count(1)
    ui.shot("bookmark", page=shared)
    shared.close()

    # Reveal the numbers of that row (recorded in the audit log).
    _rows(page).get_by_role("button", name=re.compile("^Reveal")).click()
    expect(_rows(page)).to_contain_text("+91 98765 43263")
    expect(_rows(page)).to_contain_text("recorded in the audit log")
    ui.shot("revealed")

    # Export what the filter shows: numbers hidden, then in full.
    page.get_by_label("Number (either party)").fill("")
    _show(page)
    expect(_rows(page)).to_have_count(3)
    rows = _download(page)
    assert len(rows) == 3 and {row["agent"] for row in rows} == {"sup_asha"}
    assert [row["error_code"] for row in rows].count("1501") == 1
    assert all("X" in row["first_number"] and "43260" not in row["first_number"] for row in rows)
    page.get_by_role("radio", name="full numbers").check()
    rows = _download(page)
    assert {row["first_number"].lstrip("'") for row in rows} == {PARTIES[60], PARTIES[62], PARTIES[63]}
    ui.shot("exported")

    # Ended early, and by whom.
    page.get_by_label("Agent").select_option("sup_ravi")
    page.get_by_label("Outcome").select_option(label="Ended early")
    _show(page)
    expect(_rows(page)).to_have_count(1)
    expect(_rows(page)).to_contain_text("Ended")
    expect(_rows(page)).to_contain_text("by sup_ravi")
    ui.shot("ended-early")

    # The reveal and the exports are in the audit log, which supervisors may read.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    log = page.locator("#audit-results")
    expect(log).to_contain_text("reveal numbers")
    expect(log).to_contain_text("export history")
    expect(log).to_contain_text("numbers full")
    ui.shot("audit-log")


def test_pages_of_history(ui, stack):
    """More rows than a page: Older and Newer links, in the URL too."""
    user_id = make_user(stack.app, "sup_bulk")
    start = utcnow() - timedelta(days=2)
    with stack.app.app_context():
        for index in range(57):
            attempts.record(db.session(), user_id=user_id, action=AttemptAction.SET, now=start + timedelta(minutes=index),
                            outcome=AttemptOutcome.SUCCESS, m1=PARTIES[70], m2=PARTIES[71 + index % 20],
                            mask=POOL[index % 10], requested_minutes=15,
                            expires_at=start + timedelta(minutes=index + 15), event_id=f"BULK-{index:02d}")
        db.session.commit()

    page = ui.page
    ui.login(stack.user("sup_pager", "supervisor"))
    page.goto("/history?agent=sup_bulk")
    expect(_rows(page)).to_have_count(50)
    expect(_rows(page).first).to_contain_text("BULK-56")  # newest first
    expect(_rows(page).first).to_contain_text("Expired")
    ui.shot("first-page")

    page.get_by_role("link", name="Older →").click()
    expect(_rows(page)).to_have_count(7)
    expect(_rows(page).last).to_contain_text("BULK-00")
    assert _query(page).get("agent") == "sup_bulk" and "before" in _query(page)
    ui.shot("second-page")

    page.get_by_role("link", name="← Newer").click()
    expect(_rows(page)).to_have_count(50)
    expect(_rows(page).first).to_contain_text("BULK-56")
    page.go_back()
    expect(_rows(page)).to_have_count(7)


def test_bad_filters_are_said_in_words(ui, stack):
    page = ui.page
    ui.login(stack.user("sup_typo", "supervisor"))
    response = page.goto("/history?start=2026-02-31&number=98x76")
    assert response.status == 200
    alert = page.locator("#history-results").get_by_role("alert")
    expect(alert).to_contain_text("fix them to see results")
    expect(page.get_by_label("From date")).to_have_value("2026-02-31")  # kept, to be corrected
    expect(page.get_by_label("From date")).to_have_attribute("aria-invalid", "true")
    ui.shot("bad-filters")


def test_all_masks_lists_api_and_dashboard_masks_with_their_makers(ui, stack):
    """A mask an agent made in the browser and one an integrator made through the API, side by
    side on All masks, each with who made it; a number filter; Show numbers."""
    import requests

    agent = stack.user("agent_allmasks")
    ui.login(agent)
    dashboard_mask = create_mask(ui.page, PARTIES[86], PARTIES[87], reference="ALLMASKS-DASH")
    integrator = stack.api_account("Browser CRM (all masks)")
    made = requests.post(f"{stack.url}/api/v2/Masking/set", timeout=10, data=json.dumps(
        {**integrator, "m1": PARTIES[88], "m2": PARTIES[89], "eventId": "ALLMASKS-API"})).json()
    assert made["status"] == "success", made

    page = ui.new_page()
    ui.login(stack.user("sup_allmasks", "supervisor"), page=page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="All masks").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("All masks")
    rows = page.locator("#maskings tbody tr")

    page.get_by_label("Number", exact=True).fill(PARTIES[88][3:])  # national digits of the API mask's first party
    page.get_by_role("button", name="Show", exact=True).click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Browser CRM (all masks)")
    expect(rows.first).to_contain_text(integrator["userId"])
    expect(rows.first).to_contain_text("ALLMASKS-API")
    expect(rows.first).to_contain_text("Live")
    assert "number=" in page.url  # bookmarkable

    page.get_by_label("Number", exact=True).fill(PARTIES[86])
    page.get_by_role("button", name="Show", exact=True).click()
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_contain_text(f"Dashboard: {agent}")
    expect(row).to_contain_text(" ".join(dashboard_mask.split()))
    expect(row).not_to_contain_text("98765 43286")  # hidden until shown
    ui.shot("all masks, one row", page)
    row.get_by_role("button", name=re.compile("Show the numbers")).click()
    expect(rows.first).to_contain_text("98765 43286")
    expect(rows.first).to_contain_text("recorded in the audit log")
    ui.shot("all masks, numbers shown", page)

    # Download CSV carries the filters shown (this one row), numbers hidden unless asked for.
    [exported] = _download(page, "Download CSV", "all-masks")
    assert (exported["made_by"], exported["state"]) == (f"Dashboard: {agent}", "active")
    assert exported["first_number"] == "'+91 98XXXXX286"
    page.get_by_label("the parties' numbers in full").check()
    [exported] = _download(page, "Download CSV", "all-masks")
    assert (exported["first_number"], exported["second_number"]) == ("'" + PARTIES[86], "'" + PARTIES[87])
