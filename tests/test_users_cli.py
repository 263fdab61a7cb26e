"""`flask --app app users ...`: passwords from stdin only, clear errors, audit entries."""
import pytest
from sqlalchemy import select

from masking import users
from masking.models import AuditEntry, User
from masking.web.extensions import db
from tests.admin_helpers import audit_trail
from tests.dashboard_helpers import PASSWORD, login


@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF has its own tests in test_dashboard_auth.py
    return app


def _user(app, name):
    with app.app_context():
        return db.session.scalar(select(User).where(User.username == name))


def test_create_reads_the_password_from_stdin(app, runner):
    result = runner.invoke(args=["users", "create", "Asha", "--role", "admin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created admin 'asha'" in result.output
    user = _user(app, "asha")
    assert user.role == "admin" and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert login(app.test_client(), "ASHA").status_code == 303  # usernames are case-insensitive
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry))
        assert (entry.actor_name, entry.action, entry.target) == ("command line", "user.create", "asha")


def test_password_is_never_an_argument(runner):
    result = runner.invoke(args=["users", "create", "asha", PASSWORD, "--role", "agent"], input=PASSWORD + "\n")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_bad_input_gives_one_clear_line(app, runner):
    cases = [
        (["users", "create", "asha", "--role", "agent"], "short\n", "at least 10 characters"),
        (["users", "create", "asha", "--role", "agent"], "asha-is-my-password\n", "must not contain the username"),
        (["users", "create", "asha", "--role", "agent"], "aaaaaaaaaaaa\n", "more different characters"),
        (["users", "create", "a b", "--role", "agent"], PASSWORD + "\n", "a username is 2 to 64 characters"),
        (["users", "create", "asha", "--role", "agent"], "", "no password on standard input"),
        (["users", "create", "asha", "--role", "boss"], PASSWORD + "\n", "Invalid value for '--role'"),
        (["users", "create", "asha"], PASSWORD + "\n", "Missing option '--role'"),
    ]
    for args, stdin, message in cases:
        result = runner.invoke(args=args, input=stdin)
        assert result.exit_code in (1, 2), (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert _user(app, "asha") is None


def test_duplicate_user_is_refused(runner):
    assert runner.invoke(args=["users", "create", "asha", "--role", "agent"], input=PASSWORD + "\n").exit_code == 0
    result = runner.invoke(args=["users", "create", "ASHA", "--role", "admin"], input=PASSWORD + "\n")
    assert result.exit_code == 1 and "already exists" in result.output


def test_list_set_password_disable_enable(app, runner):
    runner.invoke(args=["users", "create", "ravi", "--role", "supervisor"], input=PASSWORD + "\n")
    listing = runner.invoke(args=["users", "list"])
    assert "ravi" in listing.output and "supervisor" in listing.output and listing.output.endswith("\n1 user\n")

    browser = app.test_client()
    assert login(browser, "ravi").status_code == 303
    assert browser.get("/").status_code == 200

    result = runner.invoke(args=["users", "set-password", "ravi"], input="another-good-one\n")
    assert result.exit_code == 0, result.output
    assert browser.get("/").status_code == 302  # the old session ended with the new password
    assert login(app.test_client(), "ravi").status_code == 200  # old password refused
    assert login(browser, "ravi", "another-good-one").status_code == 303

    assert runner.invoke(args=["users", "disable", "ravi"]).exit_code == 0
    assert browser.get("/").status_code == 302  # disabling ends the session
    assert login(app.test_client(), "ravi", "another-good-one").status_code == 200  # and refuses logins
    assert "disabled" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "enable", "ravi"]).exit_code == 0
    assert login(app.test_client(), "ravi", "another-good-one").status_code == 303

    missing = runner.invoke(args=["users", "disable", "nobody"])
    assert missing.exit_code == 1 and "no user named 'nobody'" in missing.output


def test_the_last_active_admin_cannot_be_disabled_and_repeats_change_nothing(app, runner):
    for name in ("asha", "ravi"):
        assert runner.invoke(args=["users", "create", name, "--role", "admin"], input=PASSWORD + "\n").exit_code == 0
    assert runner.invoke(args=["users", "disable", "ravi"]).output == "'ravi' is disabled\n"
    refused = runner.invoke(args=["users", "disable", "asha"])
    assert refused.exit_code == 1 and "asha is the last active admin" in refused.output
    assert _user(app, "asha").disabled_at is None
    assert runner.invoke(args=["users", "disable", "ravi"]).output == "'ravi' is disabled\n"  # already: no change
    assert runner.invoke(args=["users", "enable", "asha"]).output == "'asha' is enabled\n"
    assert audit_trail(app) == [
        ("command line", "user.create", "asha"), ("command line", "user.create", "ravi"),
        ("command line", "user.disable", "ravi")]


def test_rules_directly():
    assert users.check_username("  Priya.K ") == "priya.k"
    for bad in ("", "x", "-lead", "has space", "a" * 65):
        try:
            users.check_username(bad)
        except users.UserError:
            continue
        raise AssertionError(f"{bad!r} accepted")
    users.check_password("a fine passphrase")
    for bad in (" leading-space-pw", "x" * 300):
        try:
            users.check_password(bad)
        except users.UserError:
            continue
        raise AssertionError(f"{bad!r} accepted")
