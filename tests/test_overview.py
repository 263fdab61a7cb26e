"""The supervisors' overview: the figures (masking/overview.py), the chart geometry
(masking/charts.py) and the page (masking/web/overview.py) for every role."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from masking import accounts, attempts, charts, explain, overview
from masking import pool as pool_rules
from masking.models import MaskAttempt
from masking.web.extensions import db
from masking.web.service_client import ensure_builtin_account
from tests.api_helpers import pool_status
from tests.conftest import PARTIES, POOL, add_pool, make_account
from tests.dashboard_helpers import HX, assert_no_inline_code, logged_in_client, make_user, text_of

IST = ZoneInfo("Asia/Kolkata")
# 2026-11-27 12:00 UTC = 17:30 IST; the IST day 27 Nov runs 26 Nov 18:30 UTC .. 27 Nov 18:30 UTC.
NOW = datetime(2026, 11, 27, 12, 0)


@pytest.fixture
def app(app, clock):
    app.config["WTF_CSRF_ENABLED"] = False
    clock.set(NOW)
    return app


def _attempt(app, user_id: int, at: datetime, *, action: str = "set", outcome: str = "success",
             code: int | None = None, expires_minutes: int = 60) -> None:
    with app.app_context():
        attempts.record(db.session(), user_id=user_id, action=action, now=at, outcome=outcome, error_code=code,
                        m1=PARTIES[0], m2=PARTIES[1], mask=POOL[0] if outcome == "success" else None,
                        expires_at=at + timedelta(minutes=expires_minutes) if outcome == "success" else None)
        db.session.commit()


def _api_set(client, clock, account: dict, party: int, at: datetime) -> dict:
    """A masking made through the real API at ``at`` (parties ``party`` and ``party + 1``)."""
    clock.set(at)
    body = client.post("/api/v2/Masking/set", json={**account, "m1": PARTIES[party], "m2": PARTIES[party + 1],
                                                     "expiry_duration": 30}).get_json()
    assert body["status"] == "success", body
    clock.set(NOW)
    return body["data"]


def _builtin_account(app) -> dict:
    """The dashboard's own API account, as the dashboard creates it at its first call."""
    with app.app_context():
        user_id, token = ensure_builtin_account()
    return {"userId": user_id, "token": token}


def _figures(app, fn, *args, **kwargs):
    with app.app_context():
        result = fn(db.session(), *args, **kwargs)
        db.session.rollback()
        return result


def _seed(app) -> dict:
    """Two agents, attempts on three local days, failures of every kind, one old attempt outside the window."""
    asha = make_user(app, "asha", "agent")
    ravi = make_user(app, "ravi", "agent")
    today = NOW - timedelta(hours=1)
    for _ in range(3):
        _attempt(app, asha, today)
    _attempt(app, asha, today, outcome="error", code=1505)
    _attempt(app, ravi, today, outcome="unavailable")
    _attempt(app, ravi, today, action="unset", outcome="error", code=1506)  # not a mask, but a failure
    _attempt(app, ravi, today, action="extend")  # neither
    # 26 Nov 18:29 UTC is 26 Nov 23:59 IST; 18:31 UTC is already 27 Nov in IST.
    _attempt(app, ravi, datetime(2026, 11, 26, 18, 29))
    _attempt(app, ravi, datetime(2026, 11, 26, 18, 31), outcome="error", code=1503)
    _attempt(app, asha, datetime(2026, 11, 20, 6, 0), outcome="error", code=1505)
    _attempt(app, asha, datetime(2026, 10, 20, 6, 0))  # 38 days ago: outside the 30 days
    return {"asha": asha, "ravi": ravi}


# ---------------------------------------------------------------- the figures

def test_masks_per_day_by_local_day(app):
    _seed(app)
    days = _figures(app, overview.masks_per_day, NOW, IST)
    assert len(days) == 30
    assert days[-1].day == date(2026, 11, 27) and days[0].day == date(2026, 10, 29)
    by_day = {d.day: (d.successes, d.failures) for d in days if d.total}
    assert by_day == {
        date(2026, 11, 27): (3, 3),  # 3 ok; 1505, unavailable, and the 1503 at 18:31 UTC the day before
        date(2026, 11, 26): (1, 0),  # 23:59 IST
        date(2026, 11, 20): (0, 1),
    }


def test_failures_by_code_include_every_action(app):
    _seed(app)
    failures = _figures(app, overview.failures_by_code, NOW, IST)
    assert [(f.code, f.count) for f in failures] == [(1505, 2), (1503, 1), (1506, 1), (None, 1)]
    assert failures[0].label == "1505 no number free"
    assert failures[-1].label == "service unreachable"
    assert explain.code_label(4242) == "code 4242"


def test_busiest_agents_last_seven_days(app):
    ids = _seed(app)
    busiest = _figures(app, overview.busiest_agents, NOW, IST)
    # The last 7 local days are 21..27 Nov. asha: 3 ok + 1505 today, 1505 on 20 Nov (out); ravi: unavailable today,
    # two sets on 26 Nov (the unset and the extend are not masks).
    assert [(a.username, a.successes, a.failures) for a in busiest] == [("asha", 3, 1), ("ravi", 1, 2)]
    assert busiest[0].user_id == ids["asha"]
    assert [a.username for a in _figures(app, overview.busiest_agents, NOW, IST, limit=1)] == ["asha"]


def test_pool_use_counts_numbers_serving_a_live_mask(app, client, clock, account):
    add_pool(app, *POOL[:3])
    pool_status(app, POOL[2], "reserved")
    made = []
    for i in range(2):
        body = client.post("/api/v2/Masking/set", json={**account, "m1": PARTIES[10 + i], "m2": PARTIES[20 + i],
                                                         "expiry_duration": 30 + 60 * i}).get_json()
        assert body["status"] == "success", body
        made.append(body)
    use = {p.status: (p.total, p.in_use, p.free) for p in _figures(app, pool_rules.use_by_status, clock())}
    assert use == {"active": (2, 2, 0), "reserved": (1, 0, 1)}
    clock.advance(minutes=45)  # the 30-minute mask has expired, the 90-minute one is live
    use = {p.status: (p.total, p.in_use, p.free) for p in _figures(app, pool_rules.use_by_status, clock())}
    assert use == {"active": (2, 1, 1), "reserved": (1, 0, 1)}


def test_closed_days_are_counted_once(app, clock):
    ids = _seed(app)
    cache = overview.ClosedDays()
    fresh = _figures(app, overview.overview, NOW, IST)
    cached = _figures(app, overview.overview, NOW, IST, cache=cache)
    assert (cached.days, cached.failures, cached.busiest) == (fresh.days, fresh.failures, fresh.busiest)
    assert cache.get(IST, date(2026, 11, 26)) and cache.get(IST, date(2026, 11, 27)) is None  # today stays live
    # Today's new attempts show at once; a row written into a closed day (an import) is not recounted.
    _attempt(app, ids["ravi"], NOW - timedelta(minutes=1), outcome="error", code=1505)
    _attempt(app, ids["ravi"], datetime(2026, 11, 25, 6, 0))
    again = _figures(app, overview.overview, NOW, IST, cache=cache)
    assert again.days[-1].failures == 4 and again.days[-3].total == 0
    assert _figures(app, overview.masks_per_day, NOW, IST)[-3].total == 1  # without the cache it is there
    # Just after midnight the day before is not yet closed (a request may still commit into it).
    just_after = datetime(2026, 11, 27, 18, 32)  # 28 Nov 00:02 IST
    assert overview.day_window(just_after, IST, 30)[0][-1] == date(2026, 11, 28)
    later = _figures(app, overview.overview, just_after, IST, cache=cache)
    assert cache.get(IST, date(2026, 11, 27)) is None and later.days[-2].failures == 4
    _figures(app, overview.overview, just_after + timedelta(minutes=5), IST, cache=cache)
    assert cache.get(IST, date(2026, 11, 27)) is not None


def test_a_closed_day_is_counted_again_when_its_timed_out_attempt_turns_out_made(app, clock):
    """A set that timed out at 23:50 IST yesterday, found made after midnight (attempts.adopt):
    the cached day moves it from failed to made, in this worker and in any other."""
    agent = make_user(app, "asha", "agent")
    at = datetime(2026, 11, 26, 18, 20)  # 26 Nov 23:50 IST
    with app.app_context():
        timed_out = attempts.record(db.session(), user_id=agent, action="set", now=at, outcome="unavailable",
                                    m1=PARTIES[0], m2=PARTIES[1], requested_minutes=60,
                                    error_message="timeout: the masking service did not answer in time")
        db.session.commit()
        attempt_id = timed_out.id
    caches = overview.ClosedDays(), overview.ClosedDays()  # two workers
    for cache in caches:
        before = _figures(app, overview.overview, NOW, IST, cache=cache)
        assert (before.days[-2].made, before.days[-2].failures) == (0, 1)
        assert cache.get(IST, date(2026, 11, 26)) is not None
    with app.app_context():
        adopted = attempts.adopt(db.session(), attempt_id, {"id": 4242, "mask": POOL[0], "status": "active",
                                                            "expires_at": "2026-11-27T19:20:00Z"}, NOW)
        assert adopted is not None and adopted.outcome == "success"
        db.session.commit()
    for cache in caches:
        after = _figures(app, overview.overview, NOW, IST, cache=cache)
        assert (after.days[-2].made, after.days[-2].failures) == (1, 0)
        assert after.failures == []
    assert _figures(app, overview.overview, NOW, IST).days[-2].made == 1  # as counted without a cache


def test_overview_of_an_empty_database(app):
    data = _figures(app, overview.overview, NOW, IST)
    assert data.is_empty and data.masks == 0 and data.pool == [] and data.busiest == [] and data.failures == []
    assert len(data.days) == 30 and all(d.total == 0 for d in data.days)


# ---------------------------------------------------------------- masks made through the API

def test_api_maskings_count_on_their_local_day(app, client, clock):
    add_pool(app, *POOL[:3])
    acme = make_account(app, "Acme")
    # The window's first local day, 29 Oct IST, begins at 28 Oct 18:30 UTC; 27 Nov at 26 Nov 18:30 UTC.
    _api_set(client, clock, acme, 0, datetime(2026, 10, 28, 18, 29, 59))  # 28 Oct 23:59:59 IST: outside
    _api_set(client, clock, acme, 2, datetime(2026, 10, 28, 18, 30))  # 29 Oct 00:00 IST
    _api_set(client, clock, acme, 4, datetime(2026, 11, 26, 18, 29, 59))  # 26 Nov 23:59:59 IST
    _api_set(client, clock, acme, 6, datetime(2026, 11, 26, 18, 30))  # 27 Nov 00:00 IST
    _api_set(client, clock, acme, 8, NOW - timedelta(hours=1))
    days = _figures(app, overview.masks_per_day, NOW, IST)
    assert {d.day: (d.successes, d.failures, d.api) for d in days if d.total} == {
        date(2026, 10, 29): (0, 0, 1), date(2026, 11, 26): (0, 0, 1), date(2026, 11, 27): (0, 0, 2)}
    assert days[-1].made == 2


def test_api_maskings_follow_daylight_saving_time(app, client, clock):
    # Europe/London leaves BST on 25 Oct 2026: that local day runs 24 Oct 23:00 UTC .. 26 Oct 00:00 UTC.
    add_pool(app, *POOL[:3])
    acme = make_account(app, "Acme")
    for i, at in enumerate([datetime(2026, 10, 24, 22, 59), datetime(2026, 10, 24, 23, 0),
                            datetime(2026, 10, 25, 23, 59), datetime(2026, 10, 26, 0, 0)]):
        _api_set(client, clock, acme, 2 * i, at)
    days = _figures(app, overview.masks_per_day, datetime(2026, 10, 27, 12, 0), ZoneInfo("Europe/London"), 4)
    assert [(d.day.day, d.api) for d in days] == [(24, 1), (25, 2), (26, 1), (27, 0)]


def test_the_dashboards_own_maskings_are_not_counted_twice(app, client, clock):
    add_pool(app, *POOL[:3])
    asha = make_user(app, "asha", "agent")
    at = NOW - timedelta(hours=2)
    # What an agent's mask leaves: a masking of the dashboard's account, and the dashboard's attempt.
    _api_set(client, clock, _builtin_account(app), 0, at)
    _attempt(app, asha, at)
    configured = make_account(app, "Dashboard, configured")  # as MASKING_API_USER_ID names it
    _api_set(client, clock, configured, 2, at)
    _api_set(client, clock, make_account(app, "Acme"), 4, at)

    today = _figures(app, overview.masks_per_day, NOW, IST)[-1]
    assert (today.successes, today.api, today.made) == (1, 2, 3)  # the configured account is an integrator here
    ours = {accounts.DASHBOARD_USER_ID, configured["userId"]}
    today = _figures(app, overview.masks_per_day, NOW, IST, dashboard_user_ids=ours)[-1]
    assert (today.successes, today.api, today.made) == (1, 1, 2)

    # The page leaves out the built-in account and the configured one.
    app.config["MASKING_API_USER_ID"] = configured["userId"]
    html = logged_in_client(app, "supervisor").get("/overview").get_data(as_text=True)
    [column] = [g for g in _groups(html, "day") if g["day"] == "2026-11-27"]
    assert (column["successes"], column["api"], column["failures"]) == ("1", "1", "0")
    assert "2 masks made: 1 in the dashboard, 1 through the API. 0 failed attempts in the dashboard." in text_of(html)


def test_closed_days_of_api_maskings_are_counted_once(app, client, clock):
    add_pool(app, *POOL[:3])
    acme = make_account(app, "Acme")
    _api_set(client, clock, acme, 0, datetime(2026, 11, 25, 6, 0))
    _api_set(client, clock, acme, 2, NOW - timedelta(hours=1))
    cache = overview.ClosedDays()
    first = _figures(app, overview.overview, NOW, IST, cache=cache)
    assert (first.days[-3].api, first.days[-1].api) == (1, 1)
    assert cache.get(IST, date(2026, 11, 25), overview.MASKINGS)
    assert cache.get(IST, date(2026, 11, 27), overview.MASKINGS) is None  # today stays live
    # Today's new masking shows at once; one written into a closed day after it was counted does not.
    _api_set(client, clock, acme, 4, NOW - timedelta(minutes=1))
    _api_set(client, clock, acme, 6, datetime(2026, 11, 25, 7, 0))
    again = _figures(app, overview.overview, NOW, IST, cache=cache)
    assert (again.days[-3].api, again.days[-1].api) == (1, 2)
    assert _figures(app, overview.overview, NOW, IST).days[-3].api == 2  # without the cache it is there
    assert _figures(app, overview.overview, NOW, IST, cache=overview.ClosedDays()).days[-3].api == 2  # a new cache
    # Just after midnight the day before is not yet closed (a set may still commit into it).
    just_after = datetime(2026, 11, 27, 18, 32)  # 28 Nov 00:02 IST
    assert _figures(app, overview.overview, just_after, IST, cache=cache).days[-2].api == 2
    assert cache.get(IST, date(2026, 11, 27), overview.MASKINGS) is None
    _figures(app, overview.overview, just_after + timedelta(minutes=5), IST, cache=cache)
    assert cache.get(IST, date(2026, 11, 27), overview.MASKINGS) is not None


def test_api_maskings_alone_fill_the_page(app, client, clock):
    add_pool(app, POOL[0])
    _api_set(client, clock, make_account(app, "Acme"), 0, NOW - timedelta(hours=1))
    _api_set(client, clock, make_account(app, "Globex"), 2, datetime(2026, 11, 20, 6, 0))
    html = logged_in_client(app, "supervisor").get("/overview").get_data(as_text=True)
    assert_no_inline_code(html)
    text = text_of(html)
    assert "Nothing to show yet" not in text and "No masks were made" not in text
    assert "No agent made a mask in the dashboard in the last 7 days." in text  # Busiest agents: the dashboard's
    assert "2 masks made: 0 in the dashboard, 2 through the API. 0 failed attempts in the dashboard." in text
    assert html.count('class="bar-api"') == 2 and 'class="bar-ok"' not in html.split("agents-heading")[0]
    assert "by integrators through the API" in text  # the note says what the counts cover


def test_api_maskings_make_the_overview_not_empty():
    def of(day: overview.DayCount) -> overview.Overview:
        return overview.Overview(now=NOW, days=[day], failures=[], pool=[], busiest=[])

    assert of(overview.DayCount(date(2026, 11, 27))).is_empty
    lone = of(overview.DayCount(date(2026, 11, 27), api=3))
    assert not lone.is_empty and (lone.masks_made, lone.api_masks, lone.mask_successes) == (3, 3, 0)


def test_day_window_follows_daylight_saving_time():
    # Europe/London leaves BST on 25 Oct 2026: that local day has 25 hours.
    dates, bounds = overview.day_window(datetime(2026, 10, 27, 12, 0), ZoneInfo("Europe/London"), days=4)
    assert dates == [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26), date(2026, 10, 27)]
    assert bounds[0] == datetime(2026, 10, 23, 23, 0) and bounds[2] == datetime(2026, 10, 26, 0, 0)
    assert bounds[2] - bounds[1] == timedelta(hours=25)


def test_overview_queries_use_the_indexes(app):
    plans = _figures(app, overview.explain_all, NOW, IST)
    text = {name: " ".join(lines) for name, lines in plans.items()}
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        assert "ix_mask_attempts_created_at" in text["attempts by day, action, outcome, code, user (30 days)"]
        assert "ix_mask_attempts_created_at" in text["attempts of today"]
        assert "ix_mask_attempts_outcome (outcome=? AND error_code=? AND created_at>? AND created_at<?)" in text[
            "unavailable attempts by day (30 days)"]
        assert "SEARCH routes USING INDEX" in text["pool use"]
        assert "ix_maskings_created_at" in text["maskings by day and account (30 days)"]
        assert "ix_maskings_created_at" in text["maskings of today"]
    else:  # PostgreSQL picks by statistics; on an empty table anything goes. The plans exist.
        assert all(text.values())


# ---------------------------------------------------------------- the chart geometry

def test_nice_ceiling():
    assert [charts.nice_ceiling(v) for v in (0, 1, 2, 3, 7, 10, 11, 99, 101, 4500)] == [1, 1, 2, 5, 10, 10, 20, 100,
                                                                                        200, 5000]


def test_day_columns_are_to_scale():
    days = [overview.DayCount(date(2026, 11, 1) + timedelta(days=i), successes=i, failures=i % 2) for i in range(10)]
    chart = charts.day_columns(days)
    assert chart.scale_max == 10  # the busiest day has 9 + 1
    plot = chart.bottom - chart.top
    last = chart.columns[-1]
    ok, bad = last.rects
    assert (ok.css, bad.css) == ("bar-ok", "bar-fail")
    assert ok.height == pytest.approx(plot * 9 / 10, abs=0.01) and bad.height == pytest.approx(plot / 10, abs=0.01)
    assert ok.y + ok.height == pytest.approx(chart.bottom) and bad.y + bad.height == pytest.approx(ok.y)
    assert chart.columns[0].rects == []  # nothing that day: no bar
    assert last.tick == "today"


def test_day_columns_stack_the_api_between_the_dashboards_successes_and_failures():
    chart = charts.day_columns([overview.DayCount(date(2026, 11, 1), successes=2, failures=1, api=5)])
    assert chart.scale_max == 10
    plot = chart.bottom - chart.top
    [column] = chart.columns
    ok, api, bad = column.rects
    assert [r.css for r in column.rects] == ["bar-ok", "bar-api", "bar-fail"]
    assert [r.height for r in column.rects] == pytest.approx([plot * 0.2, plot * 0.5, plot * 0.1], abs=0.01)
    assert ok.y + ok.height == pytest.approx(chart.bottom)
    assert api.y + api.height == pytest.approx(ok.y) and bad.y + bad.height == pytest.approx(api.y)
    assert column.data == {"day": "2026-11-01", "successes": 2, "failures": 1, "api": 5}
    assert column.title == ("1 Nov: 7 masks made, 2 in the dashboard and 5 through the API; "
                            "1 failed attempt in the dashboard")


def test_bar_rows_share_one_scale():
    chart = charts.pool_bars([pool_rules.StatusUse("active", 10, 4), pool_rules.StatusUse("retired", 5, 0)])
    active, retired = chart.rows
    assert [s.width for s in active.segments] == [160, 240]  # 4 and 6 of 10 over 400 units
    assert [s.width for s in retired.segments] == [200]  # 5 free of a scale of 10
    assert chart.table == [["Active", "4", "6", "10"], ["Retired", "0", "5", "5"]]


# ---------------------------------------------------------------- the page, for every role

def test_logged_out_goes_to_the_login_page(app, client):
    response = client.get("/overview")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=%2Foverview"
    htmx = client.get("/overview", headers=HX)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


def test_agents_may_not_see_it(app):
    agent = logged_in_client(app, "agent")
    assert agent.get("/overview").status_code == 403
    assert 'href="/overview"' not in agent.get("/").get_data(as_text=True)  # not in the agent's menu


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_supervisors_and_admins_see_the_empty_state(app, role):
    client = logged_in_client(app, role)
    response = client.get("/overview")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert_no_inline_code(html)
    assert 'href="/overview" aria-current="page"' in html  # in the menu
    text = text_of(html)
    assert "Nothing to show yet" in text and "an admin adds masking numbers to the pool" in text
    assert "in the dashboard or through the API" in text
    assert "<svg" not in html
    assert "HX-Request" in response.headers["Vary"]


def _groups(html: str, css: str) -> list[dict]:
    found = []
    for attrs in re.findall(rf'<g class="{css}"([^>]*)>', html):
        found.append(dict(re.findall(r'data-([a-z-]+)="([^"]*)"', attrs)))
    return found


def test_the_charts_show_the_seeded_numbers(app, client, account):
    _seed(app)
    add_pool(app, *POOL[:3])
    client.post("/api/v2/Masking/set", json={**account, "m1": PARTIES[30], "m2": PARTIES[31], "expiry_duration": 60})
    supervisor = logged_in_client(app, "supervisor")
    html = supervisor.get("/overview").get_data(as_text=True)
    assert_no_inline_code(html)

    days = {g["day"]: (int(g["successes"]), int(g["failures"]), int(g["api"])) for g in _groups(html, "day")}
    assert len(days) == 30
    assert {d: v for d, v in days.items() if v != (0, 0, 0)} == {
        "2026-11-27": (3, 3, 1), "2026-11-26": (1, 0, 0), "2026-11-20": (0, 1, 0)}
    # the bar's tooltip
    assert "27 Nov: 4 masks made, 3 in the dashboard and 1 through the API; 3 failed attempts in the dashboard" in html

    failures = [(g["code"], g["count"]) for g in _groups(html, "bar-row") if "code" in g]
    assert failures == [("1505", "2"), ("1503", "1"), ("1506", "1"), ("none", "1")]

    pool = [(g["status"], g["in-use"], g["free"]) for g in _groups(html, "bar-row") if "status" in g]
    assert pool == [("active", "1", "2")]

    agents = [(g["user"], g["successes"], g["failures"]) for g in _groups(html, "bar-row") if "user" in g]
    assert agents == [("asha", "3", "1"), ("ravi", "1", "2")]

    text = text_of(html)
    # in the 30 days (not the one of October)
    assert "5 masks made: 4 in the dashboard, 1 through the API. 4 failed attempts in the dashboard." in text
    assert "1 of 3 numbers in use now." in text
    assert "Nothing to show yet" not in text


def test_the_charts_are_accessible(app):
    asha = make_user(app, "asha", "agent")
    _attempt(app, asha, NOW - timedelta(hours=2), outcome="error", code=1505)
    html = logged_in_client(app, "supervisor").get("/overview").get_data(as_text=True)
    svgs = re.findall(r"<svg\b[^>]*>.*?</svg>", html, flags=re.S)
    assert len(svgs) == 3  # days, failures, agents (no pool yet)
    for svg in svgs:
        labelled = re.search(r'aria-labelledby="(\S+) (\S+)"', svg)
        assert 'role="img"' in svg and labelled
        assert f'<title id="{labelled.group(1)}">' in svg and f'<desc id="{labelled.group(2)}">' in svg
        assert "style=" not in svg
    # The same figures as a table, and each chart's empty case in words.
    assert html.count('<table class="data">') == 3
    assert ('<th scope="col">Day</th><th scope="col">Made in the dashboard</th><th scope="col">Made through the API'
            '</th>') in html
    assert '<th scope="row">27 Nov 2026</th><td>0</td><td>0</td><td>1</td>' in html
    legend = re.search(r'<ul class="legend" aria-hidden="true">(.*?)</ul>', html, flags=re.S).group(1)
    assert "bar-api" in legend and "Made through the API" in legend
    assert '<th scope="row">1505 no number free</th><td>1</td>' in html
    assert "The pool has no numbers yet" in text_of(html)


def test_htmx_refresh_gets_only_the_charts(app):
    client = logged_in_client(app, "admin")
    response = client.get("/overview", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and html.lstrip().startswith("<div id=\"overview\"")


def test_the_page_reads_only(app):
    asha = make_user(app, "asha", "agent")
    _attempt(app, asha, NOW - timedelta(hours=2))
    client = logged_in_client(app, "supervisor")
    assert client.get("/overview").status_code == 200
    with app.app_context():
        assert db.session.query(MaskAttempt).count() == 1
