"""masking.driver: the driver-level SQL of the hot path agrees with the ORM on both backends."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from masking import driver
from masking.models import PoolNumber
from masking.web.extensions import db


def test_one_sql_text_serves_both_parameter_styles():
    statement = driver.Statement("""
        SELECT :a, ':not_a_parameter', x::date, y LIKE '50%'
        FROM t WHERE b = :b_2
    """)
    assert statement.named == "SELECT :a, ':not_a_parameter', x::date, y LIKE '50%' FROM t WHERE b = :b_2"
    assert statement.pyformat == "SELECT %(a)s, ':not_a_parameter', x::date, y LIKE '50%%' FROM t WHERE b = %(b_2)s"


INSERT_NUMBER = driver.Statement(
    "INSERT INTO pool_numbers (number, country, status, last_allocated_at, allocation_count, created_at) "
    "VALUES (:number, 'IN', 'active', :allocated, 0, :created)")
COMPARE = driver.Statement(
    "SELECT last_allocated_at = :moment, last_allocated_at < :later, last_allocated_at FROM pool_numbers "
    "WHERE number = :number")


def test_timestamps_written_by_the_driver_read_back_equal_through_the_orm(app):
    moment = datetime(2030, 5, 6, 7, 8, 9, 123456)
    with app.app_context():
        conn = driver.of_session(db.session())
        conn.execute(INSERT_NUMBER, {"number": "+918041100000", "allocated": conn.timestamp(moment),
                                     "created": conn.timestamp(datetime(2030, 1, 1))})
        db.session.commit()
        assert db.session.query(PoolNumber).one().last_allocated_at == moment
        # and the other way round: an ORM-written time compares in SQL as the driver binds it
        db.session.add(PoolNumber(number="+918041100001", country="IN", status="active",
                                  last_allocated_at=moment, allocation_count=0, created_at=moment))
        db.session.commit()
        conn = driver.of_session(db.session())
        equal, earlier, raw = conn.first(COMPARE, {"number": "+918041100001", "moment": conn.timestamp(moment),
                                                   "later": conn.timestamp(moment.replace(microsecond=123457))})
        assert bool(equal) and bool(earlier)
        assert driver.read_timestamp(raw) == moment
        db.session.rollback()


def test_driver_errors_are_sqlalchemy_errors_without_the_parameters(app):
    with app.app_context():
        with driver.checkout(db.engine) as conn:
            conn.execute(INSERT_NUMBER, {"number": "+918041100000", "allocated": conn.timestamp(datetime(2030, 1, 1)),
                                         "created": conn.timestamp(datetime(2030, 1, 1))})
            conn.raw.commit()
            with pytest.raises(IntegrityError) as refused:
                conn.execute(INSERT_NUMBER, {"number": "+918041100000",
                                             "allocated": conn.timestamp(datetime(2030, 1, 1)),
                                             "created": conn.timestamp(datetime(2030, 1, 1))})
            assert "parameters hidden" in str(refused.value)
            # What the log may show: the kind of refusal, never the row (PostgreSQL's DETAIL
            # repeats the duplicate key).
            described = driver.describe_error(refused.value)
            assert "+918041100000" not in described
            assert "unique" in described.lower()
            conn.raw.rollback()
            with pytest.raises((OperationalError, ProgrammingError)):
                conn.execute(driver.Statement("SELECT no_such_column FROM pool_numbers"))


def test_a_session_connection_leaves_the_transaction_to_the_session(app):
    with app.app_context():
        conn = driver.of_session(db.session())
        with pytest.raises(RuntimeError):
            with conn.write_transaction():
                pass
        db.session.rollback()


def test_checkout_returns_the_connection_to_the_pool_even_on_error(app):
    with app.app_context():
        before = db.engine.pool.checkedout()
        with pytest.raises(ZeroDivisionError):
            with driver.checkout(db.engine):
                assert db.engine.pool.checkedout() == before + 1
                1 / 0
        assert db.engine.pool.checkedout() == before
