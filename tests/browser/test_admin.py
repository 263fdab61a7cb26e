"""The admin's pool page in a real browser: import a CSV file with bad lines, see the per-line
report, the good lines kept and listed; the import is in the audit log."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from masking.client import MaskingAPIError, MaskingClient

pytestmark = pytest.mark.slow

GOOD = ["+918041299901", "08041299902", "+918041299903"]
POOL_FILE = "\n".join([
    "number,status",
    GOOD[0],
    "not a number",  # line 3
    f"{GOOD[1]},reserved",
    "+91 80412 999",  # line 5: too short
    f"{GOOD[2]},sleeping",  # line 6: no such status
    GOOD[0],  # line 7: twice in the file
]) + "\n"


def test_import_a_pool_file_with_bad_lines(ui, stack):
    page = ui.page
    ui.login(stack.user("adm_pool", "admin"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pool").click()
    expect(page.get_by_role("heading", name="Pool of masking numbers")).to_be_visible()
    expect(page.get_by_role("heading", name="Import a CSV file")).to_be_visible()
    ui.shot("pool-page")

    page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "numbers.csv", "mimeType": "text/csv", "buffer": POOL_FILE.encode("utf-8")})
    page.get_by_role("button", name="Import", exact=True).click()

    report = page.locator("#import-report")
    expect(report.get_by_role("alert")).to_contain_text(re.compile(r"\d+ added, \d+ already in the pool,\s+\d+ rejected"))
    expect(report).to_contain_text("File: numbers.csv")
    expect(report).to_contain_text("The good lines were kept")
    summary = report.get_by_role("alert").locator("p").first.inner_text()
    added, present, rejected = map(int, re.findall(r"(\d+) (?:added|already|rejected)", summary))
    assert (added, present) == (2, 1), summary  # line 6 has a bad status; line 7 repeats line 2
    rejects = report.get_by_role("table").locator("tbody tr")
    assert rejected == rejects.count() >= 3, summary
    lines = [rejects.nth(i).locator("td").first.inner_text() for i in range(rejects.count())]
    reasons = [rejects.nth(i).locator("td").nth(1).inner_text() for i in range(rejects.count())]
    for bad in ("3", "5", "6"):
        assert any(re.search(rf"\b{bad}\b", line) for line in lines), (bad, lines)
    assert all(reason.strip() for reason in reasons), reasons
    # The file input keeps the chosen file (the form is not swapped).
    assert page.get_by_label("CSV file", exact=True).evaluate("e => e.files.length") == 1
    ui.shot("import-report")

    # The good lines are in the pool list, refreshed without a reload, with their status.
    numbers = page.locator("#pool-list")
    expect(numbers).to_contain_text("+91 80 4129 9901")
    row = numbers.get_by_role("row").filter(has_text="+91 80 4129 9902")
    expect(row).to_contain_text("reserved")
    ui.shot("pool-list")

    # Importing the same file again: nothing added, the good lines already present.
    page.get_by_role("button", name="Import", exact=True).click()
    expect(report.get_by_role("alert")).to_contain_text("0 added, 3 already in the pool")

    # The imports are in the audit log.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    expect(page.locator("#audit-results")).to_contain_text("numbers.csv")
    ui.shot("audit-log")


def test_import_refuses_a_file_that_is_not_text(ui, stack):
    page = ui.page
    ui.login(stack.user("adm_binary", "admin"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pool").click()
    page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"})
    page.get_by_role("button", name="Import", exact=True).click()
    alert = page.locator("#import-report").get_by_role("alert")
    expect(alert).to_contain_text("photo.png")
    ui.shot("not-text")


def test_a_read_only_account_is_made_to_read_for_a_read_write_one(ui, stack):
    """The "Reads the masks of" choice shows only for read-only; a refusal keeps what was typed."""
    page = ui.page
    ui.login(stack.user("adm_creds", "admin"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API credentials").click()
    form = page.locator("#credential-create")
    reads_for = form.get_by_label("Reads the masks of")
    form.get_by_label("Name").fill("Browser CRM")
    expect(reads_for).to_be_hidden()  # read-write is the default
    form.get_by_role("button", name="Create account").click()
    expect(form.get_by_role("status").first).to_contain_text("Account created")
    crm_user_id = form.locator("code.secret").first.inner_text()

    form.get_by_label("Name").fill("Browser BI")
    form.get_by_label(re.compile("read-only")).check()
    expect(reads_for).to_be_visible()
    form.get_by_role("button", name="Create account").click()  # no account chosen
    expect(form.get_by_role("alert")).to_contain_text("Choose the read-write account whose masks it reads")
    expect(form.get_by_label("Name")).to_have_value("Browser BI")
    expect(form.get_by_label(re.compile("read-only"))).to_be_checked()
    ui.shot("reads-for-refused")

    reads_for.select_option(label=f"Browser CRM ({crm_user_id})")
    form.get_by_role("button", name="Create account").click()
    expect(form.get_by_role("status").first).to_contain_text("Account created")
    expect(form).to_contain_text(f"read-only, reads the masks of Browser CRM {crm_user_id}")
    row = page.locator("#credential-list tr", has_text="Browser BI")
    expect(row).to_contain_text(f"reads the masks of Browser CRM {crm_user_id}")
    ui.shot("reader-created")


def test_an_account_is_given_a_new_token_and_keeps_the_old_one_for_an_hour(ui, stack):
    """New token: the choice of when the old token stops, the confirmation, the token shown once with
    its copy button; both tokens work during the hour."""
    account = stack.api_account("Browser rotation")
    user_id = account["userId"]
    page = ui.page
    ui.login(stack.user("adm_rotate", "admin"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API credentials").click()
    row = page.locator("#credential-list tr", has_text=user_id)
    row.get_by_label("Old token stops").select_option(label="in 1 hour")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name=f"New token for {user_id}").click()
    shown = page.locator("#credential-list .token-once")
    expect(shown).to_contain_text(f"New token for {user_id}: copy it now")
    expect(shown).to_contain_text("The old token works until")
    assert asked and asked[0].startswith(f"Give {user_id} (Browser rotation) a new token?")
    token = shown.locator("#rotated-token").inner_text()
    copy = shown.get_by_role("button", name="Copy the token")
    expect(copy).to_be_focused()
    copy.click()
    expect(shown.locator(".copied")).to_have_text(f"{token} copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    expect(page.locator("#credential-list tr", has_text=user_id)).to_contain_text("its old token works until")
    ui.shot("new-token")
    for credentials in (account, {"userId": user_id, "token": token}):
        with MaskingClient(stack.url, user_id=user_id, token=credentials["token"]) as api:
            assert api.list(limit=1)["maskings"] == []

    # At once: the old token stops now (the confirmation is declined first: nothing changes).
    row = page.locator("#credential-list tr", has_text=user_id)
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name=f"New token for {user_id}").click()
    expect(shown.locator("#rotated-token")).to_have_text(token)
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"New token for {user_id}").click()
    expect(shown).to_contain_text("The old token no longer works")
    newest = shown.locator("#rotated-token").inner_text()
    assert newest != token
    for old in (account["token"], token):
        with MaskingClient(stack.url, user_id=user_id, token=old) as api, pytest.raises(MaskingAPIError) as refused:
            api.list(limit=1)
        assert refused.value.code == 1014
    ui.shot("new-token-at-once")
