from masking.client import MaskingClient
from tests.conftest import PARTIES


def test_gunicorn_serves_set(live_server, account, pool_of_three):
    client = MaskingClient(live_server.url, user_id=account["userId"], token=account["token"])
    masking = client.set(PARTIES[0], PARTIES[1], expiry_duration=5)
    assert masking["mask"] in pool_of_three
