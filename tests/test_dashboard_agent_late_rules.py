"""The rules of ``masking.attempts`` for answers that came too late, on the real database
(SQLite and PostgreSQL): which timed-out attempt may adopt a masking the service made late,
and how an end or extend carried out late is taken in. The maskings are dicts in the shape
``Masking/list`` and ``Masking/get`` answer (the whole round trip is in
test_dashboard_agent_late.py)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from masking import attempts
from masking.clock import utcnow
from masking.db import write_transaction
from masking.models import MaskAttempt
from masking.web.extensions import db
from tests.conftest import PARTIES, POOL
from tests.dashboard_helpers import make_user

T0 = utcnow().replace(microsecond=0)
TIMEOUT = "timeout: the masking service did not answer in time (http://127.0.0.1:5001/api/v2/Masking/set)"


def _iso(moment) -> str:
    return moment.isoformat() + "Z"


def _masking(masking_id=7, m1=PARTIES[0], m2=PARTIES[1], minutes=60, event_id=None, created=T0 + timedelta(seconds=13),
             status="active", **extra) -> dict:
    return {"id": masking_id, "mask": POOL[0], "m1": m1, "m2": m2, "eventId": event_id, "status": status,
            "created_at": _iso(created), "expires_at": _iso(created + timedelta(minutes=minutes)), "ended_at": None,
            **extra}


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session()


@pytest.fixture
def agents(app):
    return make_user(app, "asha"), make_user(app, "ravi")


def _set(session, user_id, *, m1=PARTIES[0], m2=PARTIES[1], at=T0, minutes=60, event_id=None, message=TIMEOUT,
         outcome="unavailable", **fields) -> MaskAttempt:
    row = attempts.record(session, user_id=user_id, action="set", now=at, outcome=outcome, m1=m1, m2=m2,
                          requested_minutes=minutes, event_id=event_id, error_message=message, **fields)
    session.commit()
    return row


def test_only_the_one_agent_whose_timed_out_request_matches_may_adopt(session, agents):
    asha, ravi = agents
    mine = _set(session, asha, event_id="T-1")
    _set(session, asha, m1=PARTIES[2], m2=PARTIES[3])  # another pair
    _set(session, asha, at=T0 - timedelta(minutes=30))  # too long before the masking was made
    _set(session, asha, message="unreachable: the masking service cannot be reached")  # never arrived

    assert attempts.adoptable(session, asha, _masking(event_id="T-1")) == mine
    assert attempts.adoptable(session, asha, _masking(event_id="T-1", m1=PARTIES[1], m2=PARTIES[0])) == mine
    assert attempts.adoptable(session, ravi, _masking(event_id="T-1")) is None  # not his request
    assert attempts.adoptable(session, asha, _masking(event_id="T-2")) is None  # another reference
    assert attempts.adoptable(session, asha, _masking(event_id="T-1", minutes=240)) is None  # another duration
    assert attempts.adoptable(session, asha, _masking(event_id="T-1", status="ended")) is None
    assert attempts.adoptable(session, asha, _masking(event_id="T-1", created=T0 + timedelta(minutes=20))) is None

    with write_transaction(session):
        adopted = attempts.adopt(session, mine.id, _masking(event_id="T-1"), T0 + timedelta(minutes=1))
    assert (adopted.outcome, adopted.masking_id, adopted.mask) == ("success", 7, POOL[0])
    assert adopted.expires_at == T0 + timedelta(seconds=13, minutes=60)
    assert attempts.status(adopted, T0 + timedelta(minutes=1)) == attempts.ACTIVE
    assert adopted.error_message.startswith("timeout") and "made after the timeout" in adopted.error_message
    # Known now: never adopted twice, by anyone.
    assert attempts.adoptable(session, asha, _masking(event_id="T-1")) is None
    with write_transaction(session):
        assert attempts.adopt(session, mine.id, _masking(masking_id=8, event_id="T-1"), T0) is None


def test_two_agents_timed_out_on_one_pair_is_nobodys(session, agents):
    asha, ravi = agents
    _set(session, asha)
    _set(session, ravi, at=T0 + timedelta(seconds=2), m1=PARTIES[1], m2=PARTIES[0])
    assert attempts.adoptable(session, asha, _masking()) is None
    assert attempts.adoptable(session, ravi, _masking()) is None
    # A reference tells them apart.
    _set(session, asha, m1=PARTIES[4], m2=PARTIES[5], event_id="A")
    _set(session, ravi, m1=PARTIES[4], m2=PARTIES[5], event_id="R")
    assert attempts.adoptable(session, ravi, _masking(m1=PARTIES[4], m2=PARTIES[5], event_id="R")).user_id == ravi


def test_what_my_active_masks_rechecks(session, agents):
    asha, _ = agents
    now = T0 + timedelta(minutes=1)
    late = _set(session, asha)
    assert attempts.sets_to_recheck(session, asha, now) == [late]
    assert attempts.has_timed_out_set(session, asha, PARTIES[1], PARTIES[0])
    assert attempts.sets_to_recheck(session, asha, T0 + attempts.RECHECK_WINDOW + timedelta(seconds=1)) == []
    # Masked since (the timed-out request could only have been refused): nothing to look for.
    _set(session, asha, m1=PARTIES[1], m2=PARTIES[0], outcome="success", message=None, masking_id=3,
         expires_at=T0 + timedelta(hours=1), at=T0 + timedelta(seconds=30))
    assert attempts.sets_to_recheck(session, asha, now) == []


def test_an_extend_carried_out_late_is_taken_in(session, agents):
    asha, _ = agents
    mask = _set(session, asha, outcome="success", message=None, masking_id=7, mask=POOL[0],
                expires_at=T0 + timedelta(minutes=15))
    extend = attempts.record(session, user_id=asha, action="extend", now=T0, outcome="unavailable",
                             requested_minutes=240, error_message=TIMEOUT, masking_id=7, target=mask)
    session.commit()
    now = T0 + timedelta(minutes=1)
    assert attempts.changes_to_recheck(session, asha, now) == [extend]
    with write_transaction(session):  # not (yet) carried out: nothing changes
        assert attempts.follow_change(session, extend.id, _masking(created=T0, minutes=15), now) is None
    served = _masking(created=T0, minutes=15, expires_at=_iso(T0 + timedelta(seconds=13, minutes=240)))
    with write_transaction(session):
        assert attempts.follow_change(session, extend.id, served, now) == attempts.EXTENDED
    assert mask.expires_at == T0 + timedelta(seconds=13, minutes=240)
    assert (extend.outcome, extend.expires_at) == ("success", mask.expires_at)
    assert attempts.changes_to_recheck(session, asha, now) == []


def test_an_end_is_never_overwritten_and_the_agents_own_answer_wins_a_guess(session, agents):
    asha, ravi = agents
    mask = _set(session, asha, outcome="success", message=None, masking_id=7, mask=POOL[0],
                expires_at=T0 + timedelta(hours=1))
    with write_transaction(session):  # a request that heard 1506 first guessed "outside the dashboard"
        assert attempts.follow_missing(session, mask.id, _masking(status="ended", ended_at=_iso(T0)), T0)
    assert (mask.ended_by_id, mask.end_note) == (None, attempts.ENDED_OUTSIDE)
    attempts.ended_by_request(mask, T0 + timedelta(seconds=1), asha)  # the request the service ended it for
    assert (mask.ended_at, mask.ended_by_id, mask.end_note) == (T0, asha, None)
    with write_transaction(session):  # ended: a late 1506 changes nothing
        assert not attempts.follow_missing(session, mask.id, None, T0 + timedelta(minutes=1))
    attempts.ended_by_request(mask, T0 + timedelta(minutes=2), ravi)
    attempts.mark_ended(mask, T0 + timedelta(minutes=2), by_user_id=None, note=attempts.ENDED_OUTSIDE)
    assert (mask.ended_at, mask.ended_by_id, mask.end_note) == (T0, asha, None)
