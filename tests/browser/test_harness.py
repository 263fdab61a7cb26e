"""The checks every browser test relies on do catch what they claim to: a Content-Security-Policy
violation, a console error, an uncaught exception; and the dashboard's real pages send the CSP."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

PAGE = """<!doctype html><html><head><title>t</title></head><body>
<p>inline code the policy forbids:</p>
<script>document.title = "ran";</script>
<p style="color: red">styled</p>
<script src="/static/js/app.js"></script>
</body></html>"""


def test_csp_violations_console_errors_and_exceptions_are_caught(ui, stack):
    page = ui.page
    response = page.goto("/login")
    assert "script-src 'self'" in response.headers["content-security-policy"]

    # Serve a page under the dashboard's own policy, with inline code in it.
    policy = response.headers["content-security-policy"]
    page.route("**/csp-probe", lambda route: route.fulfill(
        status=200, body=PAGE, headers={"Content-Type": "text/html", "Content-Security-Policy": policy}))
    page.goto("/csp-probe")
    page.wait_for_load_state("load")
    assert page.title() == "t"  # the inline script did not run
    page.evaluate("setTimeout(() => { throw new Error('boom') }, 0); console.error('logged on purpose')")
    page.wait_for_timeout(200)

    problems = "\n".join(ui.unexpected_problems())
    assert "CSP violation: script-src" in problems, problems
    assert "CSP violation: style-src" in problems, problems
    assert "logged on purpose" in problems, problems
    assert "boom" in problems, problems
    ui.problems.clear()  # caught as expected: not a failure of this test


def test_htmx_abort_is_allowed_only_as_a_pair(ui, stack):
    ui.problems[:] = ["console error on /: htmx:afterRequest, [object HTMLParagraphElement]",
                      "console error on /: htmx:sendAbort, [object HTMLParagraphElement]",
                      "console error on /: htmx:afterRequest, [object HTMLFormElement]",
                      "console error on /: htmx:sendError, [object HTMLFormElement]"]
    assert ui.unexpected_problems() == ui.problems[2:]
    ui.problems.clear()

