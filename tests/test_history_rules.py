"""masking/history.py: reading the filters, the query for every filter and their combinations,
keyset pages, the CSV export (and its defence against formulas), the query plans on SQLite."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from masking import attempts, history
from masking.clock import local_midnight_utc
from masking.models import MaskAttempt
from app import create_app
from masking.web.extensions import db
from tests.conftest import TEST_DATABASE_URL
from tests.dashboard_helpers import make_user

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 27, 6, 0)  # 11:30 in India
CC = "91"


def test_local_days_become_utc_instants():
    assert local_midnight_utc(date(2026, 11, 27), IST) == datetime(2026, 11, 26, 18, 30)
    assert local_midnight_utc(date(2026, 3, 29), ZoneInfo("Europe/Berlin")) == datetime(2026, 3, 28, 23, 0)


@pytest.mark.parametrize("prefix, upper", [("9198", "9199"), ("9199", "92"), ("1", "2"), ("999", None), ("0", "1")])
def test_prefix_upper_bound(prefix, upper):
    assert history.prefix_upper_bound(prefix) == upper


def test_digit_prefixes_try_the_country_code_and_drop_a_trunk_zero():
    assert history.digit_prefixes("98765", CC) == ["98765", "9198765"]
    assert history.digit_prefixes("098765", CC) == ["098765", "9198765"]
    assert history.digit_prefixes("9198765", CC) == ["9198765", "919198765"]
    assert history.digit_prefixes("98765", "") == ["98765"]


@pytest.mark.parametrize("typed, digits", [("98765", "98765"), ("+91 98765-432", "9198765432"), ("(080) 4123", "0804123")])
def test_search_digits(typed, digits):
    assert history.search_digits(typed) == digits


@pytest.mark.parametrize("typed, message", [("abc", "digits only"), ("98a7", "digits only"), ("987", "at least 4"),
                                            ("1234567890123456", "at most 15"), ("--", "enter some digits")])
def test_search_digits_refusals(typed, message):
    with pytest.raises(ValueError, match=message):
        history.search_digits(typed)


@pytest.mark.parametrize("value, cell", [
    ("=1+1", "'=1+1"), ("+919876543210", "'+919876543210"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=x", "'\t=x"), ("\r=x", "'\r=x"), ("asha", "asha"), ("ticket =1", "ticket =1"), (None, ""), (42, "42"),
])
def test_csv_cells_never_start_a_formula(value, cell):
    assert history.csv_cell(value) == cell


def test_cursor_tokens():
    cursor = history.Cursor(datetime(2026, 11, 27, 13, 45, 0, 123456), 42)
    assert cursor.token() == "20261127T134500.123456_42"
    assert history.Cursor.parse(cursor.token()) == cursor
    assert history.Cursor.parse("") is None
    for bad in ("zzz", "20261327T134500.123456_42", "20261127T134500.123456_", "1_2", "20261127T134500.123456_" + "9" * 30):
        with pytest.raises(ValueError):
            history.Cursor.parse(bad)


def test_outcome_choices_list_states_and_codes():
    values = [value for value, _ in history.outcome_choices()]
    assert values[:6] == ["", "active", "expired", "ended", "failed", "unavailable"]
    assert "failed:1503" in values and "failed:1505" in values


# ---------------------------------------------------------------- reading a query string

@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session()


def _parse(session, **args):
    return history.parse(args, session=session, zone=IST)


def test_parse_reads_every_filter(app, session):
    asha = make_user(app, "asha")
    query = _parse(session, agent="Asha", start="2026-11-01", end="2026-11-27", outcome="failed:1503",
                   number="+91 98765", mask="8041", match="contains", junk="x")
    assert query.ok and query.notice is None
    assert query.filters == history.Filters(
        user_id=asha, since=datetime(2026, 10, 31, 18, 30), until=datetime(2026, 11, 27, 18, 30),
        outcome="failed:1503", number="9198765", mask="8041", match="contains")
    assert query.params() == {"agent": "Asha", "start": "2026-11-01", "end": "2026-11-27", "outcome": "failed:1503",
                              "number": "+91 98765", "mask": "8041", "match": "contains"}
    assert "agent=Asha" in query.describe()
    assert _parse(session).describe() == "no filter"
    assert _parse(session, outcome="failed:9999").ok  # a code the labels don't know yet


@pytest.mark.parametrize("args, field, words", [
    ({"agent": "nobody"}, "agent", "no user called"),
    ({"start": "2026-13-01"}, "start", "YYYY-MM-DD"),
    ({"end": "yesterday"}, "end", "YYYY-MM-DD"),
    ({"start": "0001-01-01"}, "start", "YYYY-MM-DD"),
    ({"start": "2026-11-27", "end": "2026-11-01"}, "end", "before the From date"),
    ({"outcome": "sideways"}, "outcome", "choose one"),
    ({"outcome": "failed:abc"}, "outcome", "choose one"),
    ({"number": "abc"}, "number", "digits only"),
    ({"mask": "12"}, "mask", "at least 4"),
    ({"match": "regex"}, "match", "starts with"),
])
def test_parse_explains_bad_input_and_keeps_it(app, session, args, field, words):
    query = _parse(session, **args)
    assert not query.ok and words in query.errors[field]
    for name, value in args.items():
        if name != "match":
            assert query.form[name] == value  # kept as typed, for the form


def test_a_bad_page_cursor_is_a_notice_not_an_error(app, session):
    query = _parse(session, before="../../etc/passwd")
    assert query.ok and query.before is None and "not valid" in query.notice
    assert _parse(session, after="99999999T999999.999999_1").notice


# ---------------------------------------------------------------- the query over real rows

@pytest.fixture
def seeded(app):
    """A small history: two agents, every outcome, times on both sides of local midnight."""
    asha, ravi = make_user(app, "asha"), make_user(app, "ravi")
    made = {}
    with app.app_context():
        s = db.session()

        def add(name, user, minutes_ago, **fields):
            fields.setdefault("outcome", "success")
            fields.setdefault("action", "set")
            made[name] = attempts.record(s, user_id=user, now=NOW - timedelta(minutes=minutes_ago), **fields).id

        add("active", asha, 10, m1="+919876543210", m2="+919812345678", mask="+918041234500",
            expires_at=NOW + timedelta(hours=1))
        add("expired", ravi, 60 * 24, m1="+919876500001", m2="+919812300002", mask="+918041234501",
            expires_at=NOW - timedelta(hours=23))
        add("ended", asha, 60 * 5, m1="+919876500003", m2="+919812300004", mask="+918041234502",
            expires_at=NOW + timedelta(hours=3))
        add("busy", ravi, 60 * 12, outcome="error", error_code=1503, m1="+919876543210", m2="+919812345678",
            error_message="pair already masked")
        add("nopool", asha, 60 * 11, outcome="error", error_code=1505, m1="+14155550123", m2="+919812300009",
            error_message="no number")
        add("down", asha, 60 * 11 + 1, outcome="unavailable", m1="+919876500005", m2="+919812300006",
            error_message="unreachable")
        add("end", asha, 60 * 4, action="unset", m1="+919876500003", m2="+919812300004", mask="+918041234502")
        ended = s.get(MaskAttempt, made["ended"])
        attempts.mark_ended(ended, NOW - timedelta(hours=4), by_user_id=asha)
        s.commit()
    return {"ids": made, "asha": asha, "ravi": ravi}


def _ids(session, filters, **kwargs):
    return [row.id for row in history.page(session, filters, NOW, country_code=CC, **kwargs).rows]


def _names(seeded, names):
    return [seeded["ids"][name] for name in names]


NEWEST_FIRST = ["active", "end", "ended", "nopool", "down", "busy", "expired"]


@pytest.mark.parametrize("filters, expected", [
    (history.Filters(), NEWEST_FIRST),
    (history.Filters(outcome="active"), ["active"]),
    (history.Filters(outcome="expired"), ["expired"]),
    (history.Filters(outcome="ended"), ["ended"]),
    (history.Filters(outcome="failed"), ["nopool", "down", "busy"]),
    (history.Filters(outcome="unavailable"), ["down"]),
    (history.Filters(outcome="failed:1503"), ["busy"]),
    (history.Filters(outcome="failed:1501"), []),
    (history.Filters(number="9876543210"), ["active", "busy"]),  # national number, behind +91
    (history.Filters(number="919812345"), ["active", "busy"]),  # international prefix, second party
    (history.Filters(number="09876500003"), ["end", "ended"]),  # trunk zero
    (history.Filters(number="4155550"), []),  # not a prefix of +1 415...
    (history.Filters(number="4155550", match="contains"), ["nopool"]),
    (history.Filters(number="300004", match="contains"), ["end", "ended"]),
    (history.Filters(mask="8041234502"), ["end", "ended"]),
    (history.Filters(mask="234501", match="contains"), ["expired"]),
    (history.Filters(outcome="failed", number="98765"), ["down", "busy"]),
])
def test_each_filter(app, session, seeded, filters, expected):
    assert _ids(session, filters) == _names(seeded, expected)


def test_agent_and_dates_alone_and_combined(app, session, seeded):
    asha, ravi = seeded["asha"], seeded["ravi"]
    assert _ids(session, history.Filters(user_id=ravi)) == _names(seeded, ["busy", "expired"])
    # NOW is 11:30 on 27 Nov in India; "busy" (12 h ago) was 23:30 on the 26th local, 18:00 UTC.
    today = history.Filters(since=local_midnight_utc(date(2026, 11, 27), IST))
    assert _ids(session, today) == _names(seeded, ["active", "end", "ended", "nopool", "down"])
    yesterday = history.Filters(since=local_midnight_utc(date(2026, 11, 26), IST),
                                until=local_midnight_utc(date(2026, 11, 27), IST))
    assert _ids(session, yesterday) == _names(seeded, ["busy", "expired"])
    combined = history.Filters(user_id=asha, since=today.since, outcome="failed", number="98765")
    assert _ids(session, combined) == _names(seeded, ["down"])


def test_keyset_pages_walk_everything_once_both_ways(app, session, seeded):
    # Two rows at the same instant as "active": the id breaks the tie.
    with app.app_context():
        s = db.session()
        for _ in range(2):
            attempts.record(s, user_id=seeded["asha"], action="set", now=NOW - timedelta(minutes=10), outcome="error",
                            error_code=1501, m1="+919876500007", m2="+919876500007")
        s.commit()
    everything = _ids(session, history.Filters(), size=100)
    assert len(everything) == 9
    seen, cursor, pages = [], None, []
    while True:
        page = history.page(session, history.Filters(), NOW, before=cursor, size=2)
        pages.append(page)
        seen += [row.id for row in page.rows]
        if page.older is None:
            break
        cursor = page.older
    assert seen == everything and len(pages) == 5
    assert pages[0].newer is None and pages[1].newer is not None
    # Back up from the last page with the "newer" links.
    back, page = [], pages[-1]
    back = [row.id for row in page.rows]
    while page.newer is not None:
        page = history.page(session, history.Filters(), NOW, after=page.newer, size=2)
        back = [row.id for row in page.rows] + back
    assert back == everything
    # A "newer" link past the newest row: the newest page.
    top = history.page(session, history.Filters(), NOW, after=history.Cursor(NOW + timedelta(days=1), 1), size=2)
    assert [row.id for row in top.rows] == everything[:2]


def test_status_words_and_failure_labels(app, session, seeded):
    rows = {row.id: row for row in history.page(session, history.Filters(), NOW).rows}
    ids = seeded["ids"]
    assert attempts.status(rows[ids["ended"]], NOW) == "ended"
    assert history.failure_label(rows[ids["busy"]]) == "1503 pair already masked"
    assert history.failure_label(rows[ids["down"]]) == "service unreachable"
    # A code the dashboard has no words for (a newer service) is shown once, not "4242 code 4242".
    assert history.failure_label(MaskAttempt(outcome="error", error_code=4242)) == "code 4242"


# ---------------------------------------------------------------- the export

def _csv(chunks) -> list[dict]:
    body = "".join(chunks)
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body[1:])))


def test_export_all_rows_in_batches_hidden_or_full(app, session, seeded):
    rows = _csv(history.export_csv(session, history.Filters(), NOW, zone=IST, country_code=CC, batch_size=2))
    assert [int(row["id"]) for row in rows] == _names(seeded, NEWEST_FIRST)
    active = rows[0]
    assert active["first_number"] == "'+91 98XXXXX210" and active["result"] == "active"
    assert active["masking_number"] == "'+918041234500"
    assert active["time"] == "2026-11-27 11:20:00" and active["time_utc"] == "2026-11-27T05:50:00Z"
    assert active["agent"] == "asha"
    full = _csv(history.export_csv(session, history.Filters(), NOW, zone=IST, numbers=history.FULL, country_code=CC))
    assert full[0]["first_number"] == "'+919876543210" and full[0]["second_number"] == "'+919812345678"
    by_id = {int(row["id"]): row for row in full}
    busy = by_id[seeded["ids"]["busy"]]
    assert (busy["result"], busy["error_code"], busy["error"]) == ("failed", "1503", "pair already masked")
    assert busy["note"] == "pair already masked"
    ended = by_id[seeded["ids"]["ended"]]
    assert ended["result"] == "ended" and ended["ended_by"] == "asha" and ended["ended"]
    end = by_id[seeded["ids"]["end"]]
    assert end["action"] == "unset" and end["result"] == "unset"
    down = by_id[seeded["ids"]["down"]]
    assert down["error"] == "service unreachable" and down["error_code"] == ""


def test_export_follows_the_filters(app, session, seeded):
    rows = _csv(history.export_csv(session, history.Filters(outcome="failed", user_id=seeded["asha"]), NOW,
                                   zone=IST, batch_size=1))
    assert [int(row["id"]) for row in rows] == _names(seeded, ["nopool", "down"])
    assert _csv(history.export_csv(session, history.Filters(outcome="failed:1"), NOW, zone=IST)) == []


def test_export_batches_are_keyset_queries(app, session, seeded):
    batches = list(history.export_batches(session, history.Filters(), NOW, batch_size=3))
    assert [len(batch) for batch in batches] == [3, 3, 1]


# ---------------------------------------------------------------- query plans (SQLite plans without statistics)

PLANS = [
    (history.Filters(), "ix_mask_attempts_created_at"),
    (history.Filters(user_id=1), "ix_mask_attempts_user_created"),
    (history.Filters(since=NOW, until=NOW), "ix_mask_attempts_created_at"),
    (history.Filters(user_id=1, since=NOW), "ix_mask_attempts_user_created"),
    (history.Filters(outcome="failed:1503"), "ix_mask_attempts_outcome"),
    (history.Filters(outcome="unavailable"), "ix_mask_attempts_outcome"),
    (history.Filters(outcome="failed"), "ix_mask_attempts_created_at"),
    (history.Filters(outcome="expired"), "ix_mask_attempts_created_at"),
    (history.Filters(outcome="ended"), "ix_mask_attempts_created_at"),
    (history.Filters(outcome="active"), "ix_mask_attempts_expires_at"),
    (history.Filters(number="98765"), "ix_mask_attempts_m1_digits"),
    (history.Filters(mask="8041"), "ix_mask_attempts_mask_digits"),
    (history.Filters(number="98765", match="contains", since=NOW), "ix_mask_attempts_created_at"),
]


def _app_on(url: str):
    return create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "plans"})


@pytest.mark.parametrize("filters, index", PLANS)
@pytest.mark.parametrize("cursor", [None, history.Cursor(NOW, 10)])
def test_sqlite_query_plans_use_the_history_indexes(sqlite_file_app, filters, index, cursor):
    """SQLite only: its planner is what these plans pin (PostgreSQL plans from statistics)."""
    with sqlite_file_app.app_context():
        engine = db.engine
        stmt = history.statement(filters, NOW, country_code=CC, before=cursor)
        compiled = stmt.compile(engine, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup]
        with engine.connect() as conn:
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), tuple(params))]
    assert any(index in step for step in plan), plan
    assert not any(step.startswith("SCAN mask_attempts") and "INDEX" not in step for step in plan), plan
    if index in ("ix_mask_attempts_created_at", "ix_mask_attempts_user_created", "ix_mask_attempts_outcome"):
        assert not any("TEMP B-TREE" in step for step in plan), plan  # in time order: no sort


def _postgresql_can_answer_every_filter_from_an_index(postgresql_database):
    """On PostgreSQL the planner picks by statistics; with sequential scans priced out, every filter
    must still have an index plan (the million-row plans are in the module's docstring)."""
    application = _app_on(postgresql_database)
    with application.app_context():
        engine = db.engine
        with Session(engine) as s:
            s.execute(text("SET LOCAL enable_seqscan = off"))
            for filters, _ in PLANS:
                if filters.match == "contains":
                    continue
                stmt = history.statement(filters, NOW, country_code=CC, before=history.Cursor(NOW, 10))
                sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
                plan = "\n".join(row[0] for row in s.execute(text("EXPLAIN " + sql)))
                assert "Seq Scan" not in plan, plan
        engine.dispose()


if TEST_DATABASE_URL:  # like every PostgreSQL test: collected when the suite has a PostgreSQL
    test_postgresql_can_answer_every_filter_from_an_index = _postgresql_can_answer_every_filter_from_an_index
