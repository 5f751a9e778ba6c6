"""One mechanism keeps derived data fresh (issue 11): database triggers raise the calendar feeds'
version (migration ``0012_feed_versions``) and mark the usage summary's days (migration
``20261208_usage_triggers``) in the same transaction as the write, so a plain SQL statement that no
ORM listener sees changes every feed's ETag and the usage report alike, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlmodel import Session

from confsvc.calendar import feeds
from confsvc.calendar.models import FeedScope, FeedVersion
from confsvc.calendar.tokens import create_feed_token
from confsvc.config import Settings
from confsvc.stats import summary, usage
from confsvc.stats.schemas import GroupBy, Period
from confsvc.users import service as users
from confsvc.users.models import Role
from tests import stats_scenario as sc
from tests.factories import make_user

#: Plain SQL writes to each kind of table both derived products read, with the figure they change.
WRITES = {
    "occurrences": ("UPDATE occurrences SET status = 'cancelled' WHERE id = :o1", "cancelled"),
    "meetings": ("UPDATE meetings SET check_lead_minutes = 0 WHERE id = :m1", "connected_hours"),
    "participants": ("DELETE FROM meeting_participants WHERE meeting_id = :m1 AND endpoint_id = :e2",
                     "sites_invited"),
}


def _report(session: Session, settings: Settings, principal) -> dict:
    return usage.usage_report(session, settings, principal, group_by=GroupBy.unit, period=Period.month,
                              from_date=date(2026, 10, 3), to_date=date(2026, 12, 1), now=sc.NOW)


def _version(session: Session) -> int:
    return session.execute(sa.select(FeedVersion.version)).scalar_one()


@pytest.mark.parametrize("table", list(WRITES))
def test_a_plain_sql_write_refreshes_the_feed_etag_and_the_usage_summary(
        session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch, table: str):
    s = sc.build(session, settings)
    principal = users.principal_for(session, make_user(session, Role.admin))
    token, _ = create_feed_token(session, principal, scope=FeedScope.province, scope_id=s.province)
    before = _report(session, settings, principal)
    session.commit()  # PostgreSQL raises the feed version at COMMIT
    assert summary.fresh_days(session, settings, date(2026, 10, 31), date(2026, 11, 2)).fresh == {
        date(2026, 10, 31), date(2026, 11, 1)}  # stored by the report: the next one reads them
    version = _version(session)
    etag = feeds.feed_state(session, settings, token, base_url="http://testserver", now=sc.NOW).etag
    statement, figure = WRITES[table]
    ids = {"o1": s.o1, "m1": s.m1, "e2": s.e2}
    session.exec(text(statement).bindparams(**{k: v for k, v in ids.items() if f":{k}" in statement}))
    session.commit()

    assert _version(session) > version
    assert feeds.feed_state(session, settings, token, base_url="http://testserver", now=sc.NOW).etag != etag
    assert summary.fresh_days(session, settings, date(2026, 10, 31), date(2026, 11, 2)).fresh == frozenset()
    after = _report(session, settings, principal)
    with monkeypatch.context() as m:
        m.setattr(usage, "summary_total", lambda *args: None)
        live = _report(session, settings, principal)
    assert after == live
    assert after["totals"][figure] != before["totals"][figure]


def test_a_booking_far_ahead_writes_no_usage_mark(session: Session, settings: Settings):
    """Its window opens after now + 4 days: no stored day can depend on it (migration
    ``20261208_usage_triggers``), so the booking's many participant rows cost no mark."""
    from datetime import timedelta

    from sqlmodel import select

    from confsvc.clock import utc_now
    from tests.factories import make_bridge, make_endpoint, make_meeting, make_room, make_unit

    unit = make_unit(session, name="Xã Đồi Chè")
    make_bridge(session, name="MCU Tỉnh", port_capacity=10)
    rooms = [make_room(session, unit, name=f"Phòng {n}") for n in range(3)]
    for room in rooms:
        make_endpoint(session, room, name=f"Thiết bị {room.name}")
    start = (utc_now() + timedelta(days=14)).replace(microsecond=0)
    make_meeting(session, chair_room=rooms[0], rooms=rooms[1:], start=start, end=start + timedelta(hours=2),
                 user=make_user(session, Role.admin), settings=settings, title="Họp tuần sau nữa")
    session.flush()
    assert session.exec(select(summary.UsageDirty.id)).all() == []
