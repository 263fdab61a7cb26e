"""One log line per API call: account, endpoint, code, latency; phone numbers partly hidden."""
import logging
import re

from tests.conftest import PARTIES


def api_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "masking.api"]


def test_a_set_logs_one_line_with_numbers_hidden(client, account, pool_of_three, caplog):
    caplog.set_level(logging.INFO, logger="masking")
    reply = client.post("/api/v2/Masking/set", json={**account, "m1": PARTIES[0], "m2": PARTIES[1]}).get_json()
    mask = reply["data"]["mask"]
    (line,) = api_lines(caplog)
    assert f"account={account['userId']}" in line
    assert "endpoint=masking/set code=0 http=200" in line
    assert re.search(r"ms=\d+\.\d", line)
    for number in (PARTIES[0], PARTIES[1], mask):
        assert number not in line and number[3:] not in line  # neither E.164 nor national digits
    assert "+91 98XXXXX200" in line and "+91 98XXXXX201" in line


def test_an_unset_logs_its_numbers_hidden_too(client, account, pool_of_three, caplog):
    mask = client.post("/api/v2/Masking/set",
                       json={**account, "m1": PARTIES[0], "m2": PARTIES[1]}).get_json()["data"]["mask"]
    caplog.set_level(logging.INFO, logger="masking")
    client.post("/api/v2/Masking/unset", json={**account, "mask": mask})
    (line,) = [line for line in api_lines(caplog) if "endpoint=masking/unset" in line]
    assert "endpoint=masking/unset code=0" in line
    assert PARTIES[0] not in line and mask not in line
    assert "+91 98XXXXX200" in line


def test_refusals_are_logged_with_their_code(client, account, caplog):
    caplog.set_level(logging.INFO, logger="masking")
    client.post("/api/v2/Masking/set", json={**account, "m1": PARTIES[0], "m2": PARTIES[0]})
    client.post("/api/v2/Masking/set", json={"userId": "nobody", "token": "wrong", "m1": PARTIES[0]})
    lines = api_lines(caplog)
    assert "code=1501" in lines[0] and "code=1014" in lines[1] and "account=-" in lines[1]
    assert all(PARTIES[0] not in line for line in lines)


def test_database_errors_are_logged_without_the_numbers(client, account, pool_of_three, app, caplog):
    """A refused insert logs the database error, never the phone numbers bound to the query."""
    from tests.test_api_set import _allow_inserts, _refuse_inserts

    _refuse_inserts(app, None)
    try:
        caplog.set_level(logging.INFO, logger="masking")
        reply = client.post("/api/v2/Masking/set", json={**account, "m1": PARTIES[0], "m2": PARTIES[1]})
    finally:
        _allow_inserts(app)
    assert reply.get_json()["code"] == 1504
    (error,) = [r for r in caplog.records if r.name == "masking.service"]
    assert "masking not stored" in error.getMessage() and "refused by the test" in error.getMessage()
    assert "[SQL" not in error.getMessage()  # neither the statement nor its parameters
    for record in caplog.records:
        assert PARTIES[0] not in record.getMessage() and PARTIES[0][3:] not in record.getMessage()
