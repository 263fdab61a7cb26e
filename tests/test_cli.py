"""The operator commands, through Flask's CLI runner: pool, api-user, sweep.

Each command is checked for its exit status, what it prints (stdout and stderr apart),
what it leaves in the database, and that it never ends in a traceback.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime

import pytest
from sqlalchemy import event, insert, select

from masking.models import NEVER_ALLOCATED, ApiAccount, PoolNumber
from masking.web.extensions import db
from masking.web.service_client import BUILTIN_USER_ID, ensure_builtin_account
from tests.admin_helpers import audit_trail
from tests.conftest import PARTIES, POOL, add_pool, make_account

SET = "/api/v2/Masking/set"
UNSET = "/api/v2/Masking/unset"
GET = "/api/v2/Masking/get"
LIST = "/api/v2/Masking/list"
LOGIN = "/api/v2/Auth/login"


def invoke(runner, *args: str, exit_code: int = 0):
    result = runner.invoke(args=list(args))
    # A command that failed with anything but a clean exit would have shown a traceback.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args} raised {result.exception!r}") from result.exception
    assert "Traceback" not in result.output
    assert result.exit_code == exit_code, (args, result.exit_code, result.output)
    return result


def pool_rows(app) -> dict[str, tuple[str, str]]:
    """number -> (country, status), straight from the database."""
    with app.app_context():
        return {p.number: (p.country, p.status) for p in db.session.scalars(select(PoolNumber))}


def api(client, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200
    return response.get_json()


# ---------------------------------------------------------------- pool add

def test_pool_add_normalises_and_adds(app, runner):
    result = invoke(runner, "pool", "add", "+918041234500", "080 4123 4501", "00918041234502", "8041234503")
    assert result.stdout == "numbers: 4 added, 0 already in the pool, 0 rejected\n"
    assert result.stderr == ""
    assert pool_rows(app) == {n: ("IN", "active") for n in POOL[:4]}


def test_pool_add_reserved(app, runner):
    invoke(runner, "pool", "add", "--status", "reserved", POOL[0])
    assert pool_rows(app) == {POOL[0]: ("IN", "reserved")}


def test_pool_add_reports_bad_numbers_and_keeps_good_ones(app, runner):
    add_pool(app, POOL[0])
    result = invoke(runner, "pool", "add", POOL[1], "abc", "+91 80412 34500", "+9180", POOL[1], POOL[2],
                    exit_code=1)
    assert result.stdout == "numbers: 2 added, 2 already in the pool, 2 rejected\n"
    assert result.stderr.splitlines() == [
        "  argument 2: 'abc' is not a phone number",
        "  argument 4: '+9180' is not a valid phone number",
    ]
    assert set(pool_rows(app)) == set(POOL[:3])


def test_pool_add_a_second_time_adds_nothing(app, runner):
    invoke(runner, "pool", "add", POOL[0], POOL[1])
    result = invoke(runner, "pool", "add", "08041234500", POOL[1])
    assert result.stdout == "numbers: 0 added, 2 already in the pool, 0 rejected\n"
    assert len(pool_rows(app)) == 2


@pytest.mark.parametrize("args", [["pool", "add"], ["pool", "add", "--status", "retired", POOL[0]]])
def test_pool_add_usage_errors(app, runner, args):
    result = invoke(runner, *args, exit_code=2)
    assert "Usage:" in result.stderr
    assert pool_rows(app) == {}


# ---------------------------------------------------------------- pool import

MESSY_CSV = (
    "# masking numbers from the carrier, March\n"  # 1
    "number,status\n"  # 2: the header, after a comment
    "+918041234500\n"  # 3
    "\n"  # 4
    "080 4123 4501,reserved\n"  # 5
    "not a number\n"  # 6
    "  # an indented comment\n"  # 7
    "+918041234502,retired,extra\n"  # 8: too many columns
    "+918041234503,frozen\n"  # 9: unknown status
    "\"+91 80412 34504\",Active\n"  # 10: quoted, status in any case
    "+918041234500\n"  # 11: again in the same file
    ",\n"  # 12: blank cells
    "12345\n"  # 13
)


def test_pool_import_reports_bad_lines_by_number_and_keeps_good_ones(app, runner, tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text(MESSY_CSV, encoding="utf-8")
    result = invoke(runner, "pool", "import", str(path), exit_code=1)
    assert result.stdout == f"{path}: 3 added, 1 already in the pool, 4 rejected\n"
    assert result.stderr.splitlines() == [
        "  line 6: 'not a number' is not a phone number",
        "  line 8: too many columns; expected number[,status]",
        "  line 9: status must be one of active, reserved, retired, got 'frozen'",
        "  line 13: '12345' is not a valid phone number",
    ]
    assert pool_rows(app) == {POOL[0]: ("IN", "active"), POOL[1]: ("IN", "reserved"), POOL[4]: ("IN", "active")}

    # The same file again adds nothing and changes nothing.
    again = invoke(runner, "pool", "import", str(path), exit_code=1)
    assert again.stdout == f"{path}: 0 added, 4 already in the pool, 4 rejected\n"
    assert again.stderr == result.stderr
    assert len(pool_rows(app)) == 3


def test_pool_import_clean_file(app, runner, tmp_path):
    path = tmp_path / "clean.csv"
    # Excel's "CSV UTF-8" starts with a byte-order mark and ends lines with CRLF.
    path.write_bytes("\ufeffNumber,Status\r\n+918041234500,active\r\n+918041234501,reserved\r\n".encode())
    result = invoke(runner, "pool", "import", str(path))
    assert result.stdout == f"{path}: 2 added, 0 already in the pool, 0 rejected\n"
    assert result.stderr == ""
    assert pool_rows(app) == {POOL[0]: ("IN", "active"), POOL[1]: ("IN", "reserved")}


def test_pool_import_status_never_overwrites(app, runner, tmp_path):
    add_pool(app, POOL[0])
    path = tmp_path / "pool.csv"
    path.write_text(f"{POOL[0]},retired\n{POOL[1]},retired\n")
    result = invoke(runner, "pool", "import", str(path))
    assert result.stdout == f"{path}: 1 added, 1 already in the pool, 0 rejected\n"
    assert pool_rows(app) == {POOL[0]: ("IN", "active"), POOL[1]: ("IN", "retired")}


def test_pool_import_refuses_a_file_that_is_not_utf8(app, runner, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("numéro\n+918041234500\n".encode("latin-1"))
    result = invoke(runner, "pool", "import", str(path), exit_code=1)
    assert result.stderr == "Error: The file is not UTF-8 text; save it as CSV (UTF-8).\n"
    assert result.stdout == ""
    assert pool_rows(app) == {}


def test_pool_import_refuses_a_binary_file(app, runner, tmp_path):
    path = tmp_path / "pool.xlsx"
    path.write_bytes(b"PK\x03\x04\x00\x00+918041234500\x00")
    result = invoke(runner, "pool", "import", str(path), exit_code=1)
    assert result.stderr == "Error: The file is not a text CSV file.\n"
    assert pool_rows(app) == {}


def test_pool_import_of_a_missing_file_is_a_usage_error(app, runner, tmp_path):
    result = invoke(runner, "pool", "import", str(tmp_path / "nope.csv"), exit_code=2)
    assert "does not exist" in result.stderr


# ---------------------------------------------------------------- pool list

def test_pool_list_table_and_json_count_active_maskings(app, runner, client, clock, account):
    add_pool(app, POOL[0], POOL[1])
    invoke(runner, "pool", "add", "--status", "reserved", POOL[2])
    assert api(client, SET, {**account, "m1": PARTIES[0], "m2": PARTIES[1], "expiry_duration": 5})["status"] == \
        "success"
    assert api(client, SET, {**account, "m1": PARTIES[0], "m2": PARTIES[2], "expiry_duration": 10})["status"] == \
        "success"
    assert api(client, SET, {**account, "m1": PARTIES[3], "m2": PARTIES[4], "expiry_duration": 10})["status"] == \
        "success"

    table = invoke(runner, "pool", "list").stdout.splitlines()
    assert table[0].split() == ["number", "country", "status", "active", "allocations"]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:-1]}
    assert table[-1] == "3 numbers"
    assert sorted(int(r[2]) for n, r in rows.items() if n != POOL[2]) == [1, 2]
    assert rows[POOL[2]] == ["IN", "reserved", "0", "0"]

    listed = json.loads(invoke(runner, "pool", "list", "--json").stdout)
    assert [r["number"] for r in listed] == POOL[:3]
    assert {r["number"]: (r["active_maskings"], r["allocations"]) for r in listed if r["number"] != POOL[2]} == {
        n: (int(rows[n][2]), int(rows[n][3])) for n in POOL[:2]}
    assert sum(r["active_maskings"] for r in listed) == 3
    assert {r["country"] for r in listed} == {"IN"}

    assert invoke(runner, "pool", "list", "--status", "reserved").stdout.splitlines()[-1] == "1 number"
    reserved = json.loads(invoke(runner, "pool", "list", "--json", "--status", "reserved").stdout)
    assert reserved == [{"number": POOL[2], "country": "IN", "status": "reserved", "active_maskings": 0,
                         "allocations": 0}]

    clock.advance(minutes=5)  # the first masking expires exactly now
    after = json.loads(invoke(runner, "pool", "list", "--json").stdout)
    assert sum(r["active_maskings"] for r in after) == 2
    assert sum(r["allocations"] for r in after) == 3


def test_pool_list_of_an_empty_pool(app, runner):
    assert invoke(runner, "pool", "list").stdout.splitlines()[-1] == "0 numbers"
    assert json.loads(invoke(runner, "pool", "list", "--json").stdout) == []


# ---------------------------------------------------------------- reserve, retire, activate

def test_reserve_retire_activate_steer_allocation(app, runner, client, account):
    add_pool(app, POOL[0])
    assert invoke(runner, "pool", "reserve", "08041234500").stdout == f"{POOL[0]} is now reserved\n"
    assert pool_rows(app)[POOL[0]][1] == "reserved"
    assert api(client, SET, {**account, "m1": PARTIES[0], "m2": PARTIES[1]})["code"] == 1505

    assert invoke(runner, "pool", "activate", POOL[0]).stdout == f"{POOL[0]} is now active\n"
    masking = api(client, SET, {**account, "m1": PARTIES[0], "m2": PARTIES[1]})
    assert masking["data"]["mask"] == POOL[0]

    assert invoke(runner, "pool", "retire", "+91 80412 34500").stdout == f"{POOL[0]} is now retired\n"
    assert pool_rows(app)[POOL[0]][1] == "retired"
    assert api(client, SET, {**account, "m1": PARTIES[2], "m2": PARTIES[3]})["code"] == 1505
    # The masking it already serves runs on.
    listed = api(client, LIST, {**account, "status": "active"})
    assert [m["id"] for m in listed["data"]["maskings"]] == [masking["data"]["id"]]


@pytest.mark.parametrize("command", ["reserve", "retire", "activate"])
def test_status_of_an_unknown_or_bad_number(app, runner, command):
    add_pool(app, POOL[0])
    unknown = invoke(runner, "pool", command, POOL[9], exit_code=1)
    assert unknown.stderr == f"Error: {POOL[9]} is not in the pool\n"
    bad = invoke(runner, "pool", command, "abc", exit_code=1)
    assert bad.stderr == "Error: 'abc' is not a phone number\n"
    missing = invoke(runner, "pool", command, exit_code=2)
    assert "Missing argument" in missing.stderr
    assert pool_rows(app) == {POOL[0]: ("IN", "active")}


# ---------------------------------------------------------------- api-user

def test_api_user_create_prints_credentials_that_work(app, runner, client, pool_of_three):
    result = invoke(runner, "api-user", "create", "Acme support")
    match = re.fullmatch(r"userId: (u[0-9a-f]{16})\ntoken:  (mtk_\S+)\n", result.stdout)
    assert match, result.stdout
    assert "only its hash is stored" in result.stderr
    user_id, token = match.groups()
    created = api(client, SET, {"userId": user_id, "token": token, "m1": PARTIES[0], "m2": PARTIES[1]})
    assert created["status"] == "success", created
    with app.app_context():
        stored = db.session.scalar(select(ApiAccount).where(ApiAccount.user_id == user_id))
        assert stored.name == "Acme support" and stored.can_write
        assert token not in (stored.token_hash, stored.user_id)


def test_api_user_create_json_is_one_parsable_object(app, runner, client, pool_of_three):
    result = invoke(runner, "api-user", "create", "--json", "Acme")
    credentials = json.loads(result.stdout)
    assert set(credentials) == {"userId", "token"}
    assert result.stderr == ""
    login = api(client, LOGIN, credentials)
    assert login["status"] == "success", login
    ssid = {"ssid": login["data"]["ssid"]}
    assert api(client, SET, {**ssid, "m1": PARTIES[0], "m2": PARTIES[1]})["status"] == "success"
    # Two accounts never share credentials.
    other = json.loads(invoke(runner, "api-user", "create", "--json", "Acme").stdout)
    assert other["userId"] != credentials["userId"] and other["token"] != credentials["token"]


def test_api_user_create_read_only(app, runner, client, pool_of_three):
    owner = json.loads(invoke(runner, "api-user", "create", "--json", "CRM").stdout)
    made = api(client, SET, {**owner, "m1": PARTIES[0], "m2": PARTIES[1]})["data"]
    credentials = json.loads(invoke(runner, "api-user", "create", "--read-only", "--reads-for", owner["userId"],
                                    "--json", "Auditor").stdout)
    denied = api(client, SET, {**credentials, "m1": PARTIES[2], "m2": PARTIES[3]})
    assert (denied["status"], denied["code"]) == ("error", 1015)
    assert api(client, UNSET, {**credentials, "m1": PARTIES[0]})["code"] == 1015
    listed = api(client, LIST, credentials)["data"]["maskings"]
    assert [m["id"] for m in listed] == [made["id"]]  # the owner's maskings, read, not changed
    assert api(client, GET, {**credentials, "id": made["id"]})["data"]["status"] == "active"
    assert (f"{credentials['userId']}  read-only   Auditor  (reads for {owner['userId']})"
            in invoke(runner, "api-user", "list").stdout)
    # --reads-for alone makes a read-only account too.
    alone = json.loads(invoke(runner, "api-user", "create", "--reads-for", owner["userId"], "--json", "BI").stdout)
    assert api(client, SET, {**alone, "m1": PARTIES[2], "m2": PARTIES[3]})["code"] == 1015
    assert [m["id"] for m in api(client, LIST, alone)["data"]["maskings"]] == [made["id"]]


def test_api_user_create_read_only_refuses_what_it_cannot_read_for(app, runner):
    owner = make_account(app, "CRM")
    reader = make_account(app, "Old reader", can_write=False)
    leaver = make_account(app, "Leaver")
    invoke(runner, "api-user", "revoke", leaver["userId"])
    for args, error in (
            (["--read-only"], "a read-only account needs --reads-for USERID"),
            (["--reads-for", " "], "--reads-for needs the userId of the account to read for"),
            (["--reads-for", "u0000000000000000"], "There is no API account 'u0000000000000000' to read for."),
            (["--reads-for", reader["userId"]], f"{reader['userId']} is read-only itself"),
            (["--reads-for", leaver["userId"]], f"{leaver['userId']} is revoked"),
            # Bytes a terminal could not decode (a lone surrogate) and control characters name no
            # account; the lookup would have failed with a traceback (the database cannot hold them).
            (["--reads-for", "u\udcff"], "There is no API account 'u\\udcff' to read for."),
            (["--reads-for", "u\x00\x1b"], "There is no API account 'u\\x00\\x1b' to read for."),
    ):
        result = invoke(runner, "api-user", "create", *args, "Auditor", exit_code=1)
        assert result.stderr.startswith(f"Error: {error}"), (args, result.stderr)
    with app.app_context():
        names = db.session.scalars(select(ApiAccount.name)).all()
    assert sorted(names) == ["CRM", "Leaver", "Old reader"]  # nothing half-made
    assert f"{owner['userId']}  read-write  CRM" in invoke(runner, "api-user", "list").stdout


def test_api_user_list_says_a_reader_of_a_revoked_account_reads_nothing(app, runner):
    owner = make_account(app, "CRM")
    reader = make_account(app, "Auditor", can_write=False, reads_for=owner)
    invoke(runner, "api-user", "revoke", owner["userId"])
    assert (f"{reader['userId']}  read-only   Auditor  (reads for {owner['userId']}, revoked: reads nothing)"
            in invoke(runner, "api-user", "list").stdout)


@pytest.mark.parametrize("name", ["", "   ", "x" * 121])
def test_api_user_create_refuses_bad_names(app, runner, name):
    result = invoke(runner, "api-user", "create", name, exit_code=1)
    assert result.stderr == "Error: The account name must be 1 to 120 characters.\n"
    with app.app_context():
        assert db.session.scalars(select(ApiAccount)).all() == []


def test_api_user_revoke_refuses_its_token_and_its_ssids(app, runner, client, pool_of_three):
    credentials = json.loads(invoke(runner, "api-user", "create", "--json", "Leaver").stdout)
    keeper = make_account(app, "Keeper")
    ssid = {"ssid": api(client, LOGIN, credentials)["data"]["ssid"]}
    assert api(client, LIST, ssid)["status"] == "success"

    result = invoke(runner, "api-user", "revoke", credentials["userId"])
    assert re.fullmatch(rf"{credentials['userId']} \(Leaver\) revoked at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n",
                        result.stdout), result.stdout

    for body in (credentials, {**credentials, "m1": PARTIES[0], "m2": PARTIES[1]}):
        assert api(client, SET, body)["code"] == 1014
    assert api(client, LIST, ssid)["code"] == 1014
    assert api(client, LOGIN, credentials)["code"] == 1014
    # Another account is untouched.
    assert api(client, SET, {**keeper, "m1": PARTIES[0], "m2": PARTIES[1]})["status"] == "success"

    # Revoking again is harmless and keeps the first instant.
    assert invoke(runner, "api-user", "revoke", credentials["userId"]).stdout == result.stdout
    listing = invoke(runner, "api-user", "list").stdout
    assert f"{credentials['userId']}  revoked     Leaver" in listing
    assert f"{keeper['userId']}  read-write  Keeper" in listing


def test_api_user_revoke_of_an_unknown_user(app, runner):
    result = invoke(runner, "api-user", "revoke", "u0000000000000000", exit_code=1)
    assert result.stderr == "Error: no API account with userId 'u0000000000000000'\n"
    # Bytes the terminal could not decode (a lone surrogate): the same answer, not a traceback.
    result = invoke(runner, "api-user", "revoke", "u\udcff", exit_code=1)
    assert result.stderr == "Error: no API account with userId 'u\\udcff'\n"


def test_api_user_list_never_shows_tokens(app, runner):
    first = make_account(app, "First")
    second = make_account(app, "Second", can_write=False)  # made before accounts could read for another
    listing = invoke(runner, "api-user", "list").stdout
    assert listing.splitlines() == [f"{first['userId']}  read-write  First", f"{second['userId']}  read-only   Second"]
    assert first["token"] not in listing and second["token"] not in listing


# ---------------------------------------------------------------- the audit log

def test_each_change_is_audited_once_and_a_repeat_changes_nothing(app, runner, tmp_path):
    invoke(runner, "pool", "add", POOL[0], "080 4123 4501")
    path = tmp_path / "carrier.csv"
    path.write_text(f"{POOL[2]}\n")
    invoke(runner, "pool", "import", str(path))
    assert invoke(runner, "pool", "reserve", POOL[0]).stdout == f"{POOL[0]} is now reserved\n"
    assert invoke(runner, "pool", "reserve", POOL[0]).stdout == f"{POOL[0]} is already reserved\n"
    assert invoke(runner, "pool", "activate", POOL[1]).stdout == f"{POOL[1]} is already active\n"
    credentials = json.loads(invoke(runner, "api-user", "create", "--json", "Acme").stdout)
    first = invoke(runner, "api-user", "revoke", credentials["userId"]).stdout
    assert invoke(runner, "api-user", "revoke", credentials["userId"]).stdout == first
    assert audit_trail(app) == [
        ("command line", "pool.add", "2 numbers"),
        ("command line", "pool.import", "carrier.csv"),
        ("command line", "pool.reserve", POOL[0]),
        ("command line", "api_account.create", credentials["userId"]),
        ("command line", "api_account.revoke", credentials["userId"]),
    ]
    assert pool_rows(app) == {POOL[0]: ("IN", "reserved"), POOL[1]: ("IN", "active"), POOL[2]: ("IN", "active")}


def test_refused_changes_write_nothing(app, runner, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert invoke(runner, "pool", "import", str(empty), exit_code=1).stderr == "Error: The file is empty.\n"
    invoke(runner, "pool", "add", "abc", exit_code=1)
    invoke(runner, "api-user", "create", " ", exit_code=1)
    invoke(runner, "pool", "retire", POOL[0], exit_code=1)
    assert audit_trail(app) == [] and pool_rows(app) == {}


def test_revoking_the_dashboards_own_account_takes_force(app, runner):
    with app.app_context():
        ensure_builtin_account()
    refused = invoke(runner, "api-user", "revoke", BUILTIN_USER_ID, exit_code=1)
    assert "the dashboard's own account" in refused.stderr and "--force" in refused.stderr
    assert "read-write" in invoke(runner, "api-user", "list").stdout
    invoke(runner, "api-user", "revoke", "--force", BUILTIN_USER_ID)
    assert invoke(runner, "api-user", "list").stdout.split()[:2] == [BUILTIN_USER_ID, "revoked"]
    invoke(runner, "api-user", "revoke", BUILTIN_USER_ID)  # already revoked: nothing to force
    assert audit_trail(app) == [("command line", "api_account.revoke", BUILTIN_USER_ID)]


# ---------------------------------------------------------------- api-user rotate

def _token_hash(app, user_id: str) -> str:
    with app.app_context():
        return db.session.scalar(select(ApiAccount.token_hash).where(ApiAccount.user_id == user_id))


def test_api_user_rotate_prints_a_new_token_and_stops_the_old_one(app, runner, client, pool_of_three):
    credentials = json.loads(invoke(runner, "api-user", "create", "--json", "Acme").stdout)
    made = api(client, SET, {**credentials, "m1": PARTIES[0], "m2": PARTIES[1]})["data"]
    ssid = {"ssid": api(client, LOGIN, credentials)["data"]["ssid"]}
    result = invoke(runner, "api-user", "rotate", credentials["userId"])
    match = re.fullmatch(rf"userId: {credentials['userId']}\ntoken:  (mtk_[A-Za-z0-9_-]{{43}})\n"
                         r"old token stopped now; the account's open ssids were revoked\n", result.stdout)
    assert match, result.stdout
    assert result.stderr == "Keep the token now: only its hash is stored, it cannot be shown again.\n"
    new = {"userId": credentials["userId"], "token": match.group(1)}
    assert api(client, LIST, credentials)["code"] == 1014
    assert api(client, LIST, ssid)["code"] == 1014
    # The new token reaches the maskings made with the old one.
    assert api(client, GET, {**new, "id": made["id"]})["data"]["mask"] == made["mask"]
    assert api(client, UNSET, {**new, "m1": PARTIES[0]})["data"]["count"] == 1
    assert audit_trail(app)[-1] == ("command line", "api_account.rotate", credentials["userId"])


def test_api_user_rotate_json_with_a_grace(app, runner, client, clock):
    credentials = make_account(app, "Acme")
    clock.set(datetime(2030, 1, 1, 6, 30, 0, 500000))
    result = invoke(runner, "api-user", "rotate", credentials["userId"], "--grace-minutes", "60", "--json")
    answer = json.loads(result.stdout)
    assert list(answer) == ["userId", "token", "previous_token_until"] and result.stdout.count("\n") == 1
    assert answer["userId"] == credentials["userId"] and answer["token"].startswith("mtk_")
    assert answer["previous_token_until"] == "2030-01-01T07:30:00Z"
    assert api(client, LIST, credentials)["status"] == "success"  # still, for an hour
    assert api(client, LIST, {"userId": answer["userId"], "token": answer["token"]})["status"] == "success"
    clock.set(datetime(2030, 1, 1, 7, 30))
    assert api(client, LIST, credentials)["code"] == 1014
    without_grace = json.loads(invoke(runner, "api-user", "rotate", "--json", credentials["userId"]).stdout)
    assert without_grace["previous_token_until"] is None
    plain = invoke(runner, "api-user", "rotate", credentials["userId"], "--grace-minutes", " 10080 ").stdout
    assert plain.endswith("old token works until 2030-01-08T07:30:00Z\n")


@pytest.mark.parametrize("grace, message", [
    ("abc", "--grace-minutes must be a whole number of minutes from 0 to 10080 (7 days), not 'abc'"),
    ("-5", "--grace-minutes must be a whole number of minutes from 0 to 10080 (7 days), not '-5'"),
    ("1.5", "--grace-minutes must be a whole number of minutes from 0 to 10080 (7 days), not '1.5'"),
    ("", "--grace-minutes must be a whole number of minutes from 0 to 10080 (7 days), not ''"),
    ("\u0663", "--grace-minutes must be a whole number of minutes from 0 to 10080 (7 days), not '\u0663'"),
    ("9" * 5000, "--grace-minutes must be a whole number of minutes from 0 to 10080 (7 days), not '999"),
    ("10081", "The old token may keep working for 0 to 10080 minutes (7 days), not 10081."),
])
def test_api_user_rotate_refuses_a_bad_grace(app, runner, grace, message):
    credentials = make_account(app, "Acme")
    result = invoke(runner, "api-user", "rotate", credentials["userId"], "--grace-minutes", grace, exit_code=1)
    assert result.stderr.startswith(f"Error: {message}") and result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert _token_hash(app, credentials["userId"]) == hashlib.sha256(credentials["token"].encode()).hexdigest()
    assert audit_trail(app) == []


def test_api_user_rotate_refuses_unknown_revoked_and_the_dashboards_own_account(app, runner, client):
    for user_id, shown in (("u0000000000000000", "'u0000000000000000'"), ("u\udcff", "'u\\udcff'")):
        result = invoke(runner, "api-user", "rotate", user_id, exit_code=1)
        assert result.stderr == f"Error: no API account with userId {shown}\n"
    leaver = make_account(app, "Leaver")
    invoke(runner, "api-user", "revoke", leaver["userId"])
    result = invoke(runner, "api-user", "rotate", leaver["userId"], exit_code=1)
    assert result.stderr == (f"Error: A revoked account cannot be given a new token, and {leaver['userId']} is "
                             "revoked; create a new account instead.\n")
    with app.app_context():
        user_id, token = ensure_builtin_account()
    result = invoke(runner, "api-user", "rotate", BUILTIN_USER_ID, exit_code=1)
    assert result.stderr == ("Error: dashboard is the dashboard's own account: its token is derived from SECRET_KEY, "
                             "so it cannot be given a new one here (a new SECRET_KEY gives it a new token).\n")
    assert api(client, LIST, {"userId": user_id, "token": token})["status"] == "success"
    assert [action for _actor, action, _target in audit_trail(app)] == ["api_account.revoke"]


def test_api_user_rotate_dashboard_before_its_first_call(app, runner):
    result = invoke(runner, "api-user", "rotate", BUILTIN_USER_ID, exit_code=1)
    assert result.stderr == ("Error: no API account with userId 'dashboard' yet: the dashboard's own account is "
                             "made at the dashboard's first call to the service\n")


def test_the_account_the_dashboard_masks_through_keeps_working_through_a_rotation(app, runner, client, clock):
    """MASKING_API_USER_ID names an account of this service: stopping its old token at once would
    leave every agent unable to mask a number until the setting changes, so it takes --force."""
    credentials = make_account(app, "Dashboard of floor 2")
    app.config.update(MASKING_API_USER_ID=credentials["userId"], MASKING_API_TOKEN=credentials["token"])
    clock.set(datetime(2030, 1, 1, 6, 30))
    refused = invoke(runner, "api-user", "rotate", credentials["userId"], exit_code=1)
    assert refused.stderr == (
        f"Error: {credentials['userId']} is the account the dashboard masks through (MASKING_API_USER_ID): "
        "if its old token stops at once, no agent can mask a number until MASKING_API_TOKEN holds the new one and "
        "the app is restarted. Choose a time for the old token to stop, and change MASKING_API_TOKEN before then. "
        "Add --force to stop it at once anyway.\n")
    assert _token_hash(app, credentials["userId"]) == hashlib.sha256(credentials["token"].encode()).hexdigest()
    assert audit_trail(app) == []
    graced = invoke(runner, "api-user", "rotate", credentials["userId"], "--grace-minutes", "60")
    assert graced.stdout.endswith("old token works until 2030-01-01T07:30:00Z\n")
    assert graced.stderr == ("The dashboard masks numbers through this account: set MASKING_API_TOKEN to the new "
                             "token and restart the app before then.\n"
                             "Keep the token now: only its hash is stored, it cannot be shown again.\n")
    assert api(client, LIST, credentials)["status"] == "success"  # the dashboard's old token, for the hour
    assert (f"{credentials['userId']}  read-write  Dashboard of floor 2  (old token works until 2030-01-01T07:30:00Z)"
            in invoke(runner, "api-user", "list").stdout)
    forced = invoke(runner, "api-user", "rotate", "--force", credentials["userId"])
    assert "old token stopped now" in forced.stdout and "restart the app.\n" in forced.stderr
    assert api(client, LIST, credentials)["code"] == 1014
    assert "old token works" not in invoke(runner, "api-user", "list").stdout
    # Revoking it takes --force too, like the built-in account.
    refused = invoke(runner, "api-user", "revoke", credentials["userId"], exit_code=1)
    assert "is the account the dashboard masks through (MASKING_API_USER_ID): revoking it" in refused.stderr
    invoke(runner, "api-user", "revoke", "--force", credentials["userId"])
    assert [action for _actor, action, _target in audit_trail(app)] == ["api_account.rotate"] * 2 + [
        "api_account.revoke"]


def test_the_grace_of_an_old_token_is_listed_until_it_ends(app, runner, clock):
    credentials = make_account(app, "Acme")
    clock.set(datetime(2030, 1, 1, 6, 30))
    invoke(runner, "api-user", "rotate", credentials["userId"], "--grace-minutes", "1440")
    line = f"{credentials['userId']}  read-write  Acme  (old token works until 2030-01-02T06:30:00Z)\n"
    assert invoke(runner, "api-user", "list").stdout == line
    clock.set(datetime(2030, 1, 2, 6, 30))
    assert invoke(runner, "api-user", "list").stdout == f"{credentials['userId']}  read-write  Acme\n"


def test_api_user_revoke_names_the_readers_that_read_nothing_more(app, runner):
    owner = make_account(app, "CRM")
    readers = sorted([make_account(app, "Auditor", can_write=False, reads_for=owner)["userId"],
                      make_account(app, "BI", can_write=False, reads_for=owner)["userId"]])
    gone = make_account(app, "Old BI", can_write=False, reads_for=owner)
    invoke(runner, "api-user", "revoke", gone["userId"])
    result = invoke(runner, "api-user", "revoke", owner["userId"])
    assert result.stdout.endswith(f"\nits readers read nothing more: {readers[0]}, {readers[1]}\n")
    assert not invoke(runner, "api-user", "revoke", gone["userId"]).stdout.count("readers")


# ---------------------------------------------------------------- sweep

def test_sweep_removes_only_what_has_passed(app, runner, client, clock, account, pool_of_three):
    # app's COOLOFF_SECONDS is 300: a lease is held for five minutes after its masking ends.
    short = api(client, SET, {**account, "m1": PARTIES[0], "m2": PARTIES[1], "expiry_duration": 1})
    ended = api(client, SET, {**account, "m1": PARTIES[2], "m2": PARTIES[3], "expiry_duration": 60})
    long = api(client, SET, {**account, "m1": PARTIES[4], "m2": PARTIES[5], "expiry_duration": 60})
    assert {short["status"], ended["status"], long["status"]} == {"success"}
    assert api(client, UNSET, {**account, "mask": ended["data"]["mask"], "m1": PARTIES[2]})["data"]["action"] == \
        "ended"

    assert invoke(runner, "sweep").stdout == "removed 0 routes and 0 pairs\n"
    clock.advance(minutes=1)  # the short masking has expired, its lease is still held
    assert invoke(runner, "sweep").stdout == "removed 0 routes and 1 pairs\n"
    clock.advance(seconds=300)  # both cool-offs are over
    assert invoke(runner, "sweep").stdout == "removed 4 routes and 0 pairs\n"
    assert invoke(runner, "sweep").stdout == "removed 0 routes and 0 pairs\n"

    # The live masking still routes, and its pair still blocks a second masking.
    assert api(client, SET, {**account, "m1": PARTIES[5], "m2": PARTIES[4]})["code"] == 1503
    active = api(client, LIST, {**account, "status": "active"})["data"]["maskings"]
    assert [m["id"] for m in active] == [long["data"]["id"]]
    # The swept parties can be masked again at once.
    assert api(client, SET, {**account, "m1": PARTIES[0], "m2": PARTIES[1]})["status"] == "success"


def test_sweep_removes_a_backlog_a_batch_at_a_time(app, client, clock, account, pool_of_three):
    from masking import service
    from masking.models import ActivePair, Route

    for i in range(3):
        api(client, SET, {**account, "m1": PARTIES[2 * i], "m2": PARTIES[2 * i + 1], "expiry_duration": 1})
    clock.advance(minutes=6)  # expired, and the five-minute cool-off is over
    with app.app_context():
        assert service.sweep(db.session(), clock(), batch=2) == {"routes": 6, "pairs": 3}
        assert db.session.scalars(select(Route)).all() == [] and db.session.scalars(select(ActivePair)).all() == []
        assert service.sweep(db.session(), clock(), batch=2) == {"routes": 0, "pairs": 0}


# ---------------------------------------------------------------- two writers at once

def test_a_number_added_elsewhere_at_the_same_moment_is_one_clear_line(app, runner):
    """Another writer pools a number between the command's check and its insert: the unique index
    refuses the insert, the command's transaction is rolled back whole, and it says so."""
    with app.app_context():
        engine = db.engine
    sneaked = []

    def sneak_in(conn, clauseelement, multiparams, params, execution_options):
        if not sneaked and getattr(clauseelement, "table", None) is PoolNumber.__table__ and \
                clauseelement.is_insert:
            sneaked.append(True)
            conn.execute(insert(PoolNumber.__table__).values(
                number=POOL[1], country="IN", status="active", allocation_count=0,
                created_at=datetime(2026, 1, 1), last_allocated_at=NEVER_ALLOCATED))

    event.listen(engine, "before_execute", sneak_in)
    try:
        result = invoke(runner, "pool", "add", POOL[0], POOL[1], exit_code=1)
    finally:
        event.remove(engine, "before_execute", sneak_in)
    assert sneaked
    assert result.stderr.startswith("Error: another change to the pool added some of these numbers")
    assert pool_rows(app) == {}  # neither the command's numbers nor the sneaked one (same transaction)
    assert audit_trail(app) == []
