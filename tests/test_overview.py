"""The supervisors' overview: the figures (masking/overview.py), the chart geometry
(masking/charts.py) and the page (masking/web/overview.py) for every role."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from masking import attempts, charts, explain, overview
from masking import pool as pool_rules
from masking.models import MaskAttempt
from masking.web.extensions import db
from tests.api_helpers import pool_status
from tests.conftest import PARTIES, POOL, add_pool
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


def test_overview_of_an_empty_database(app):
    data = _figures(app, overview.overview, NOW, IST)
    assert data.is_empty and data.masks == 0 and data.pool == [] and data.busiest == [] and data.failures == []
    assert len(data.days) == 30 and all(d.total == 0 for d in data.days)


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
        assert "SEARCH routes USING INDEX" in text["pool use"]
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

    days = {g["day"]: (int(g["successes"]), int(g["failures"])) for g in _groups(html, "day")}
    assert len(days) == 30
    assert {d: v for d, v in days.items() if v != (0, 0)} == {
        "2026-11-27": (3, 3), "2026-11-26": (1, 0), "2026-11-20": (0, 1)}
    assert "27 Nov: 6 mask attempts, 3 succeeded, 3 failed" in html  # the bar's tooltip

    failures = [(g["code"], g["count"]) for g in _groups(html, "bar-row") if "code" in g]
    assert failures == [("1505", "2"), ("1503", "1"), ("1506", "1"), ("none", "1")]

    pool = [(g["status"], g["in-use"], g["free"]) for g in _groups(html, "bar-row") if "status" in g]
    assert pool == [("active", "1", "2")]

    agents = [(g["user"], g["successes"], g["failures"]) for g in _groups(html, "bar-row") if "user" in g]
    assert agents == [("asha", "3", "1"), ("ravi", "1", "2")]

    text = text_of(html)
    assert "8 mask attempts: 4 succeeded, 4 failed." in text  # in the 30 days (not the one of October)
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
