from tests.conftest import PARTIES


def test_set_then_unset_round_trip(client, account, pool_of_three):
    body = {**account, "m1": PARTIES[0], "m2": PARTIES[1], "expiry_duration": 10}
    created = client.post("/api/v2/Masking/set", json=body).get_json()
    assert created["status"] == "success", created
    assert created["data"]["mask"] in pool_of_three
    ended = client.post("/api/v2/Masking/unset", json={**account, "mask": created["data"]["mask"]}).get_json()
    assert ended["data"]["action"] == "ended"
    assert ended["data"]["maskings"][0]["status"] == "ended"
