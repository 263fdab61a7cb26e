"""Browser tests: Playwright (sync API) in the system's real Chromium, against the app served as
`make run` serves it (``python -m masking.web.serve``: the public and the internal gunicorn).

* ``browser``: one headless Chromium for the whole session (per test worker).
* ``stack``: one launcher per backend (SQLite, and PostgreSQL when TEST_DATABASE_URL is set)
  for the session (per test worker), over a fresh migrated database of its own, with a pool of
  numbers. Tests share it, so each test uses its own users (``stack.user(...)``) and party numbers.
* ``ui``: a fresh browser context and page for one test. ``ui.shot("step")`` saves a full-page
  screenshot to ``test-artifacts/screenshots/<test>-<step>.png`` and checks that the page has
  logged no console error, uncaught exception or Content-Security-Policy violation so far.

Chromium is NOT downloaded by Playwright (``playwright install`` cannot reach its CDN here):
the tests use ``/usr/bin/chromium`` (Debian's package, which ``.ci/run`` installs with apt).
Without it the tests fail with instructions; they are never skipped.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app import create_app
from masking.web.extensions import db
from tests.conftest import BACKENDS, POOL, ROOT, LiveStack, add_pool, migrated_postgresql_database
from tests.dashboard_helpers import PASSWORD, make_user

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
STACK_SECRET = LiveStack.SECRET
POOL_SIZE = 40

# Console messages that are not problems: htmx logs an aborted request (hx-sync="...:abort", an
# inline check cut short by the submit) as two errors, "htmx:afterRequest, <elt>" then
# "htmx:sendAbort, <elt>"; the first is allowed only right before the second. Tests may allow
# more (``ui.allow(...)``) where they provoke an error on purpose.
ALWAYS_ALLOWED = (re.compile(r"htmx:sendAbort"),)
ABORT_PAIR = re.compile(r"htmx:afterRequest, (.*)$")

# Reports every Content-Security-Policy violation on the console, where the checks see it.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                " at " + (e.sourceFile || "") + ":" + (e.lineNumber || ""));
}, true);
"""


def pytest_runtest_makereport(item, call):
    if call.when == "call":
        item.browser_failed = call.excinfo is not None


# ---------------------------------------------------------------- the browser

@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}, and it is missing. Install it with "
            "`sudo apt-get install -y chromium` (Debian/Ubuntu; .ci/run does this in CI), or point "
            "CHROMIUM_PATH at a Chromium binary. (`playwright install` cannot download browsers here.)",
            pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True,
                                              args=["--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


# ---------------------------------------------------------------- the app, as `make run` serves it

@pytest.fixture(scope="session")
def browser_postgresql_database():
    """A migrated PostgreSQL database of this worker's browser tests (apart from the one other
    tests truncate between tests)."""
    with migrated_postgresql_database("browser") as url:
        yield url


@dataclass
class Stack:
    """The running launcher (``url``), and an app over the same database to seed it."""

    backend: str
    url: str
    internal_url: str
    app: object
    _users: set = field(default_factory=set)

    def user(self, username: str, role: str = "agent") -> str:
        """Create the user (once per module) with ``tests.dashboard_helpers.PASSWORD``."""
        if username not in self._users:
            make_user(self.app, username, role)
            self._users.add(username)
        return username

    def api_account(self, name: str) -> dict:
        from tests.conftest import make_account

        return make_account(self.app, name)


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request, tmp_path_factory):
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("browser") / "masking.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("browser_postgresql_database")
    seeding = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": STACK_SECRET})
    add_pool(seeding, *POOL[:POOL_SIZE])
    live = LiveStack(url)
    try:
        yield Stack(request.param, live.url, live.internal_url, seeding)
    finally:
        live.stop()
        with seeding.app_context():
            db.engine.dispose()


# ---------------------------------------------------------------- one test's browser tab

def _slug(text_: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text_).strip("-")


class UI:
    """A browser context and page for one test, with screenshots and console checks."""

    def __init__(self, browser, stack: Stack, test_name: str, viewport=None):
        self.browser = browser
        self.stack = stack
        self.test_name = _slug(test_name)
        self.problems: list[str] = []
        self.allowed = list(ALWAYS_ALLOWED)
        self.contexts = []
        self.steps = 0
        self.page = self.new_page(viewport=viewport)

    def new_page(self, viewport=None, context=None):
        """A page in a new context (another browser session) or in ``context`` (another tab)."""
        if context is None:
            context = self.browser.new_context(
                base_url=self.stack.url, viewport=viewport or {"width": 1280, "height": 900},
                locale="en-IN", timezone_id="Asia/Kolkata", reduced_motion="reduce")
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=self.stack.url)
            context.add_init_script(CSP_LISTENER)
            context.set_default_timeout(10_000)
            self.contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception on {page.url}: {error}"))
        return page

    def _console(self, page, message) -> None:
        if message.type in ("error", "assert") or message.text.startswith("CSP violation"):
            self.problems.append(f"console {message.type} on {page.url}: {message.text}")

    def allow(self, pattern: str) -> None:
        """Do not count console errors matching ``pattern`` (a test provoking one on purpose)."""
        self.allowed.append(re.compile(pattern))

    def unexpected_problems(self) -> list[str]:
        problems = []
        for index, problem in enumerate(self.problems):
            if any(a.search(problem) for a in self.allowed):
                continue
            pair = ABORT_PAIR.search(problem)
            following = self.problems[index + 1] if index + 1 < len(self.problems) else ""
            if pair and f"htmx:sendAbort, {pair.group(1)}" in following:
                continue
            problems.append(problem)
        return problems

    def assert_clean(self) -> None:
        problems = self.unexpected_problems()
        assert not problems, "the browser reported problems:\n" + "\n".join(problems)

    def shot(self, step: str, page=None) -> Path:
        """Save a full-page screenshot of ``page`` (default: the test's page); check the console."""
        page = page or self.page
        self.steps += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test_name}-{self.steps:02d}-{_slug(step)}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        self.assert_clean()
        return path

    # -- common steps

    def login(self, username: str, password: str = PASSWORD, page=None) -> None:
        page = page or self.page
        page.goto("/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r"^(?!.*/login).*$"))

    def close(self) -> None:
        for context in self.contexts:
            try:
                context.close()
            except Exception:
                pass


@pytest.fixture
def make_ui(browser, stack, request):
    """Build the test's UI, optionally with another viewport: ``make_ui(viewport={...})``."""
    made: list[UI] = []
    for old in SCREENSHOTS.glob(f"{_slug(request.node.name)}-*.png"):  # from an earlier run
        old.unlink(missing_ok=True)

    def build(viewport=None) -> UI:
        ui = UI(browser, stack, request.node.name, viewport)
        made.append(ui)
        return ui

    yield build
    for ui in made:
        if getattr(request.node, "browser_failed", False):
            for index, context in enumerate(ui.contexts):
                for number, page in enumerate(context.pages):
                    try:
                        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(SCREENSHOTS / f"{ui.test_name}-FAILED-{index}-{number}.png"),
                                        full_page=True)
                    except Exception:
                        pass
        problems = ui.unexpected_problems()
        ui.close()
        assert not problems, "the browser reported problems:\n" + "\n".join(problems)


@pytest.fixture
def ui(make_ui) -> UI:
    return make_ui()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
