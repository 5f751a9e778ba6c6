"""The bookings' exclusion constraints (SPEC conflict rules 1 and 3) are declared on the ``Booking``
model for PostgreSQL only, and the migrated PostgreSQL database holds exactly those (issue 11: they
used to exist only as SQL in migration 0002, where the model-vs-schema comparison could not see them)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.engine import Engine
from sqlalchemy.schema import AddConstraint, CreateTable

from confsvc.scheduling.models import Booking

NAMES = {"ex_bookings_resource_window", "ex_bookings_conference_number"}


def _declared() -> dict[str, ExcludeConstraint]:
    return {c.name: c for c in Booking.__table__.constraints if isinstance(c, ExcludeConstraint)}


def _in_database(conn: sa.Connection) -> dict[str, str]:
    rows = conn.exec_driver_sql("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                "WHERE conrelid = 'bookings'::regclass AND contype = 'x'")
    return dict(rows.all())


def test_the_model_declares_them_for_postgresql_only() -> None:
    assert set(_declared()) == NAMES
    for name, constraint in _declared().items():
        assert str(AddConstraint(constraint).compile(dialect=postgresql.dialect())).startswith(
            f"ALTER TABLE bookings ADD CONSTRAINT {name} EXCLUDE USING gist (")
    assert "EXCLUDE" not in str(CreateTable(Booking.__table__).compile(dialect=sqlite.dialect()))


@pytest.mark.postgresql_only
def test_the_database_holds_the_constraints_the_model_declares(engine: Engine) -> None:
    with engine.connect() as conn:
        migrated = _in_database(conn)
        assert set(migrated) == NAMES
        assert migrated["ex_bookings_resource_window"] == (
            "EXCLUDE USING gist (resource_id WITH =, resource_kind WITH =, "
            "tstzrange(window_start, window_end, '[)'::text) WITH &&) "
            "WHERE (((resource_kind)::text = ANY ((ARRAY['endpoint'::character varying, "
            "'room'::character varying])::text[])))")
        # The model's DDL, run in a transaction that is rolled back, gives the same definitions.
        for name, constraint in _declared().items():
            conn.exec_driver_sql(f"ALTER TABLE bookings DROP CONSTRAINT {name}")
            conn.execute(AddConstraint(constraint))
        assert _in_database(conn) == migrated
        conn.rollback()
        assert _in_database(conn) == migrated
