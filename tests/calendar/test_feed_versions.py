"""The feed version (migration ``0012_feed_versions``): database triggers raise it in the same
transaction as every change a calendar feed can show, on both backends, and only then; feed ETags
follow it, so a change made by any code, process or plain SQL is never answered 304."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Bridge, Endpoint, Room, Unit
from confsvc.calendar import feeds
from confsvc.calendar import feed_ical
from confsvc.calendar.models import FeedVersion
from confsvc.scheduling.models import Meeting, MeetingParticipant, Occurrence, OccurrenceParticipant
from confsvc.users.models import Role, User
from tests.factories import bearer, make_user
from tests.calendar.test_ical_feeds import _feed_url, _series, _setup

#: Every column a feed shows (``calendar.feeds``: ``_MEETING_RAW``, ``_OCCURRENCE_RAW``, ``_Loader``'s
#: inventory reads, ``_scope``'s names, ``_candidates``' links), with a new value for it.
SHOWN = [
    (Meeting, "title", "Tiêu đề mới"), (Meeting, "description", "Mô tả mới"), (Meeting, "pin", "999999"),
    (Meeting, "sequence", 42), (Meeting, "rrule", "FREQ=WEEKLY;COUNT=2"), (Meeting, "exdates", []),
    (Meeting, "check_lead_minutes", 15), (Meeting, "timezone", "UTC"), (Meeting, "conference_number", 4321),
    (Occurrence, "status", "cancelled"), (Occurrence, "is_exception", True),
    (Occurrence, "participants_overridden", True),
    (Unit, "name", "Xã mới"), (Unit, "parent_id", None),
    (Room, "name", "Phòng mới"), (Endpoint, "name", "Thiết bị mới"),
    (Bridge, "sip_domain", "mcu2.phutho.gov.vn"), (Bridge, "h323_prefix", "99"),
    (User, "full_name", "Chánh Văn phòng"), (User, "email", "chanhvp@phutho.gov.vn"),
]
#: Columns no feed shows: changing them must keep every feed's ETag (and its clients' 304s).
NOT_SHOWN = [
    (Endpoint, "status", "fault"), (Endpoint, "last_seen_at", datetime(2030, 1, 1, tzinfo=UTC)),
    (Endpoint, "firmware", "9.9"),
    (Room, "seats", 99), (Room, "contact_phone", "0210 999"), (Unit, "search_text", "x"),
    (User, "active", False), (User, "password_hash", "x"),
]


def _version(engine: Engine) -> tuple[int, object]:
    """(version, changed_at); (0, None) while the row is missing (every table was just emptied)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(FeedVersion.version, FeedVersion.changed_at)).one_or_none()
    return (row.version, row.changed_at) if row else (0, None)


def _write(engine: Engine, statement: sa.Executable) -> int:
    with make_session(engine) as session:
        result = session.execute(statement)
        session.commit()
        return result.rowcount


def _first_id(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.min(model.__table__.c[_key(model)]))).scalar_one()


def _key(model: type) -> str:
    return "id" if "id" in model.__table__.c else list(model.__table__.primary_key.columns)[0].name


@pytest.mark.parametrize(("model", "column", "value"), SHOWN, ids=[f"{m.__tablename__}.{c}" for m, c, _ in SHOWN])
def test_a_shown_column_raises_the_version(client: TestClient, engine: Engine, model: type, column: str,
                                           value: object) -> None:
    ids, h = _setup(engine)
    _series(client, ids, h)
    before, changed_before = _version(engine)
    table = model.__table__
    row_id = ids["commune_b"] if model is Unit else _first_id(engine, model)
    assert _write(engine, sa.update(table).where(table.c.id == row_id).values({column: value})) == 1
    after, changed_after = _version(engine)
    assert after == before + 1
    assert changed_before is None or changed_after >= changed_before


@pytest.mark.parametrize(("model", "column", "value"), NOT_SHOWN,
                         ids=[f"{m.__tablename__}.{c}" for m, c, _ in NOT_SHOWN])
def test_a_column_no_feed_shows_keeps_the_version(client: TestClient, engine: Engine, model: type, column: str,
                                                  value: object) -> None:
    ids, h = _setup(engine)
    _series(client, ids, h)
    before = _version(engine)
    table = model.__table__
    assert _write(engine, sa.update(table).where(table.c.id == _first_id(engine, model))
                  .values({column: value})) == 1
    assert _version(engine) == before


def test_rows_added_or_removed_raise_the_version_and_a_rollback_does_not(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    series = _series(client, ids, h)
    occurrence_id = _first_id(engine, Occurrence)
    before, _ = _version(engine)
    _write(engine, sa.insert(OccurrenceParticipant).values(occurrence_id=occurrence_id, endpoint_id=ids["ep_c"]))
    assert _version(engine)[0] == before + 1
    assert _write(engine, sa.delete(OccurrenceParticipant).where(
        OccurrenceParticipant.occurrence_id == occurrence_id)) == 1
    assert _write(engine, sa.delete(MeetingParticipant).where(MeetingParticipant.endpoint_id == ids["ep_b"])) == 1
    assert _version(engine)[0] == before + 3
    with make_session(engine) as session:
        session.execute(sa.update(Meeting).where(Meeting.id == series["id"]).values(title="Không lưu"))
        session.rollback()
    assert _version(engine)[0] == before + 3


@pytest.mark.postgresql_only
def test_one_transaction_raises_the_version_once_at_commit(client: TestClient, engine: Engine) -> None:
    """PostgreSQL: deferred triggers, one bump per transaction, taken at COMMIT (so the counter's
    row lock is the transaction's last lock)."""
    ids, h = _setup(engine)
    _series(client, ids, h)
    before, _ = _version(engine)
    with make_session(engine) as session:
        session.execute(sa.update(Occurrence).values(is_exception=True))
        session.execute(sa.update(Room).values(name=Room.name + " (mới)"))
        inside = session.execute(sa.select(FeedVersion.version)).scalar_one()
        session.commit()
    assert inside == before  # nothing yet before COMMIT
    assert _version(engine)[0] == before + 1


def _etag(client: TestClient, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return r.headers["etag"]


def test_renaming_an_endpoint_changes_its_feed_and_a_status_report_does_not(client: TestClient,
                                                                             engine: Engine) -> None:
    ids, h = _setup(engine)
    _series(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "endpoint", ids["ep_b"])
    etag = _etag(client, url)
    with make_session(engine) as session:  # a new user shows in no feed either
        admin = bearer(session, make_user(session, Role.admin))
        session.commit()
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    # An endpoint's live status changes all day long; no feed shows it, so clients keep their 304.
    r = client.post(f"/api/v1/endpoints/{ids['ep_b']}/status", headers=admin, json={"status": "fault"})
    assert r.status_code == 200, r.text
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    r = client.patch(f"/api/v1/endpoints/{ids['ep_b']}", headers=admin, json={"name": "Poly Studio X70"})
    assert r.status_code == 200, r.text
    renamed = client.get(url, headers={"If-None-Match": etag})
    assert renamed.status_code == 200 and renamed.headers["etag"] != etag
    assert "X-WR-CALNAME:Lịch họp – thiết bị Poly Studio X70".encode() in renamed.content.replace(b"\r\n ", b"")


def test_a_room_rename_by_plain_sql_changes_the_etag(client: TestClient, engine: Engine) -> None:
    """The triggers see writes that bypass the application (another tool, a DBA's UPDATE)."""
    ids, h = _setup(engine)
    _series(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_b"])
    etag = _etag(client, url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rooms SET name = :name WHERE id = :id"), {"name": "Phòng họp xã (mới)",
                                                                               "id": ids["room_b"]})
    renamed = client.get(url, headers={"If-None-Match": etag})
    assert renamed.status_code == 200 and renamed.headers["etag"] != etag
    assert "Phòng họp xã (mới)".encode() in renamed.content.replace(b"\r\n ", b"")


def test_a_missing_version_row_is_version_zero_and_comes_back(client: TestClient, engine: Engine) -> None:
    """Tests empty every table (TRUNCATE on PostgreSQL); the next change inserts the row again."""
    ids, h = _setup(engine)
    series = _series(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_a"])
    _write(engine, sa.delete(FeedVersion))
    empty = _etag(client, url)
    assert client.get(url, headers={"If-None-Match": empty}).status_code == 304
    _write(engine, sa.update(Meeting).where(Meeting.id == series["id"]).values(title="Giao ban tuần (sửa)"))
    assert _version(engine)[0] == 1
    assert _etag(client, url) != empty


def test_warm_up_compiles_without_rendering_or_writing(engine: Engine, tmp_path) -> None:
    settings = Settings(database_url=str(engine.url), data_dir=tmp_path, secret_key="x" * 40,
                        timezone="Europe/Paris")
    feeds.FEED_DOCUMENTS.clear()
    feed_ical.FEED_BLOCKS.clear()
    with make_session(engine) as session:
        before = session.execute(sa.select(FeedVersion.version)).scalar_one_or_none()
    feeds.warm_up(engine, settings)
    assert len(feed_ical.FEED_BLOCKS) == 0 and feeds.FEED_DOCUMENTS.get("anything") is None
    assert feed_ical._zone_form("Europe/Paris") == (";TZID=Europe/Paris", ";TZID=Europe/Paris", "")
    with make_session(engine) as session:
        assert session.execute(sa.select(FeedVersion.version)).scalar_one_or_none() == before


def test_the_version_follows_a_booking_made_through_the_api(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    before, _ = _version(engine)
    series = _series(client, ids, h)  # a booking, an occurrence moved, one cancelled: three transactions
    after, _ = _version(engine)
    assert after >= before + 3
    _, url = _feed_url(client, h["secretariat"], "unit", ids["commune_b"])
    etag = _etag(client, url)
    occs = client.get(f"/api/v1/meetings/{series['id']}/occurrences", headers=h["secretariat"]).json()
    start = datetime.fromisoformat(occs[0]["start"])
    r = client.patch(f"/api/v1/meetings/{series['id']}/occurrences/{occs[0]['id']}", headers=h["secretariat"],
                     json={"start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()})
    assert r.status_code == 200, r.text
    assert _version(engine)[0] > after  # once on PostgreSQL; once per row written on SQLite
    shortened = client.get(url, headers={"If-None-Match": etag})
    assert shortened.status_code == 200 and shortened.headers["etag"] != etag
