"""Pool use, as every screen reads it: ``pool list`` (CLI), the admin pool page and its summary,
and the overview's per-status bars. They all count live maskings from the routing leases, so
they must agree with each other and with the maskings themselves, at every instant: ended,
extended and expired maskings (at the exact second) included, and whatever the numbers' status."""
from __future__ import annotations

from datetime import timedelta

from masking import administration, pool
from masking.models import Masking
from masking.web.extensions import db
from tests.api_helpers import UNSET, ok, pool_status, set_masking
from tests.conftest import PARTIES, POOL, add_pool


def _readings(app, now) -> dict:
    with app.app_context():
        session = db.session()
        listed = {use.number.number: use.active_maskings for use in pool.list_numbers(session, now)}
        paged = {use.number.number: use.active_maskings for use in administration.pool_page(session, now).numbers}
        summary = administration.pool_summary(session, now)
        by_status = {use.status: (use.total, use.in_use) for use in pool.use_by_status(session, now)}
        # The truth, from the maskings table itself.
        truth = {number: 0 for number in listed}
        for masking in session.query(Masking):
            if masking.status_at(now) == "active":
                truth[masking.mask_number] += 1
        db.session.rollback()
    return {"listed": listed, "paged": paged, "summary": summary, "by_status": by_status, "truth": truth}


def _assert_agree(app, now, statuses: dict[str, str]) -> dict[str, int]:
    seen = _readings(app, now)
    assert seen["listed"] == seen["paged"] == seen["truth"]
    in_use = {number for number, live in seen["truth"].items() if live}
    expected = {}
    for number, status in statuses.items():
        total, used = expected.get(status, (0, 0))
        expected[status] = (total + 1, used + (number in in_use))
    assert seen["by_status"] == expected
    assert seen["summary"]["in_use"] == len(in_use)
    assert all(seen["summary"][status] == expected.get(status, (0, 0))[0] for status in ("active", "reserved",
                                                                                       "retired"))
    return seen["truth"]


def test_every_reading_of_pool_use_agrees_at_every_instant(app, client, clock, account):
    add_pool(app, *POOL[:3])
    statuses = {number: "active" for number in POOL[:3]}
    start = clock()
    short = set_masking(client, account, PARTIES[0], PARTIES[1], expiry_duration=5)
    shared = set_masking(client, account, PARTIES[0], PARTIES[2], expiry_duration=10)  # m1 busy on short's number
    ended = set_masking(client, account, PARTIES[3], PARTIES[4], expiry_duration=10)
    extended = set_masking(client, account, PARTIES[5], PARTIES[6], expiry_duration=2)
    assert short["mask"] != shared["mask"]
    assert sum(_assert_agree(app, clock(), statuses).values()) == 4

    ok(client, UNSET, {**account, "mask": ended["mask"], "m1": PARTIES[3], "m2": PARTIES[4]})
    ok(client, UNSET, {**account, "mask": extended["mask"], "m1": PARTIES[5], "expiry_duration": 60})
    pool_status(app, short["mask"], "retired")  # its masking runs on, and is counted under "retired"
    statuses[short["mask"]] = "retired"
    assert sum(_assert_agree(app, clock(), statuses).values()) == 3

    clock.set(start + timedelta(minutes=5) - timedelta(seconds=1))
    assert sum(_assert_agree(app, clock(), statuses).values()) == 3
    clock.set(start + timedelta(minutes=5))  # the short masking expires at this very second
    assert sum(_assert_agree(app, clock(), statuses).values()) == 2
    clock.set(start + timedelta(minutes=30))  # the cool-off has passed too; only the extended one is left
    live = _assert_agree(app, clock(), statuses)
    assert sum(live.values()) == 1 and live[extended["mask"]] == 1
