"""Feed ETags from a fingerprint of the inputs (``feeds.feed_state``), on both backends: a 304 is
answered without rendering, every visible change changes the ETag, an unchanged feed keeps it and
its bytes, and rendered feeds are served from the cache only for their own fingerprint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.db import make_session
from confsvc.endpoints.models import Bridge, Room
from confsvc.calendar import feeds
from confsvc.calendar import feed_ical
from confsvc.calendar.models import FeedToken, FeedVersion
from confsvc.scheduling.models import Meeting, Occurrence
from confsvc.users.models import Role, User
from tests.factories import bearer, make_user
from tests.calendar.test_ical_feeds import _feed_url, _series, _setup, _single_c


def _etag(client: TestClient, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return r.headers["etag"]


def _unfolded(client: TestClient, url: str) -> bytes:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return r.content.replace(b"\r\n ", b"")


def _admin(engine: Engine) -> dict[str, str]:
    with make_session(engine) as session:
        headers = bearer(session, make_user(session, Role.admin))
        session.commit()
    return headers


def _rendering_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("the feed was rendered")
    monkeypatch.setattr(feed_ical, "feed", refuse)
    monkeypatch.setattr(feeds, "_Loader", refuse)


def test_304_is_answered_from_the_fingerprint_without_rendering(client: TestClient, engine: Engine,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ids, h = _setup(engine)
    _series(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_a"])
    first, second = client.get(url), client.get(url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content  # byte-identical between fetches
    etag = first.headers["etag"]
    assert etag == second.headers["etag"] and etag.startswith('"') and len(etag) == 66

    _rendering_forbidden(monkeypatch)
    not_modified = client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert not_modified.headers["last-modified"] == first.headers["last-modified"]
    assert client.get(url, headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": first.headers["last-modified"]}).status_code == 304
    # A warm 200 comes from the rendered-feed cache, unrendered too, with the same bytes.
    warm = client.get(url, headers={"If-None-Match": '"other"'})
    assert warm.status_code == 200 and warm.content == first.content and warm.headers["etag"] == etag
    # The token check still comes first: a wrong token is a 404 whatever the ETag.
    wrong = client.get(url.split("?")[0] + "?token=cal_wrong", headers={"If-None-Match": etag})
    assert wrong.status_code == 404


def test_renaming_a_room_or_unit_in_the_feed_changes_the_etag(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    _series(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "unit", ids["commune_b"])
    before = _etag(client, url)
    assert _etag(client, url) == before

    admin = _admin(engine)
    r = client.patch(f"/api/v1/rooms/{ids['room_a']}", headers=admin, json={"name": "Hội trường mới"})
    assert r.status_code == 200, r.text
    after_room = _etag(client, url)
    assert after_room != before
    assert "LOCATION:Hội trường mới\\, Tỉnh Phú Thọ".encode() in _unfolded(client, url)
    assert client.get(url, headers={"If-None-Match": before}).status_code == 200

    r = client.patch(f"/api/v1/units/{ids['province']}", headers=admin, json={"name": "Tỉnh Phú Thọ mới"})
    assert r.status_code == 200, r.text
    after_unit = _etag(client, url)
    assert after_unit not in (before, after_room)
    assert "LOCATION:Hội trường mới\\, Tỉnh Phú Thọ mới".encode() in _unfolded(client, url)
    assert client.get(url, headers={"If-None-Match": after_unit}).status_code == 304


def test_changes_made_by_another_process_change_the_etag(client: TestClient, engine: Engine) -> None:
    """Rows written behind this process's back (another worker, the scheduler) still show."""
    ids, h = _setup(engine)
    series = _series(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "province", ids["province"])
    seen = {_etag(client, url)}

    def changed(statement) -> str:
        with make_session(engine, write=True) as session:
            session.execute(statement)
            session.commit()
        etag = _etag(client, url)
        assert etag not in seen
        seen.add(etag)
        return etag

    changed(sa.update(Bridge).values(sip_domain="mcu2.phutho.gov.vn"))
    assert b"sip:" in _unfolded(client, url) and b"@mcu2.phutho.gov.vn" in _unfolded(client, url)
    changed(sa.update(User).where(User.email == "vanphong@phutho.gov.vn").values(full_name="Chánh Văn phòng"))
    assert 'ORGANIZER;CN="Chánh Văn phòng"'.encode() in _unfolded(client, url)
    changed(sa.update(Room).where(Room.id == ids["room_b"]).values(unit_id=ids["commune_c"]))
    # A title edit stamped earlier than the latest change (two writers racing) is still seen.
    with make_session(engine) as session:
        latest = session.execute(select(sa.func.max(Meeting.updated_at))).scalar_one()
    changed(sa.update(Meeting).where(Meeting.id == series["id"])
            .values(title="Sửa chậm", updated_at=latest - timedelta(seconds=5)))
    assert b"SUMMARY:S\xe1\xbb\xada ch\xe1\xba\xadm" in _unfolded(client, url)
    # An occurrence added without touching its meeting (the scheduler extending a series).
    with make_session(engine) as session:
        row = session.execute(select(Occurrence).where(Occurrence.meeting_id == series["id"])
                              .order_by(Occurrence.start.desc())).scalars().first()
        values = {c.name: getattr(row, c.name) for c in Occurrence.__table__.c if c.name != "id"}
    start = values["start"] + timedelta(weeks=4)
    changed(sa.insert(Occurrence).values({**values, "recurrence_id": start, "start": start,
                                          "end": start + (values["end"] - values["start"])}))


def test_a_meeting_leaving_the_scope_changes_etag_and_last_modified(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    single = _single_c(client, ids, h)
    _, url = _feed_url(client, h["secretariat"], "room", ids["room_c"])
    first = client.get(url)
    assert single["uid"].encode() in first.content
    r = client.patch(f"/api/v1/meetings/{single['id']}", headers=h["secretariat"],
                     json={"chair_room_id": ids["room_b"], "participant_room_ids": []})
    assert r.status_code == 200, r.text
    after = client.get(url, headers={"If-None-Match": first.headers["etag"],
                                     "If-Modified-Since": first.headers["last-modified"]})
    assert after.status_code == 200 and single["uid"].encode() not in after.content
    assert after.headers["etag"] != first.headers["etag"]
    with make_session(engine) as session:
        updated = session.get(Meeting, single["id"]).updated_at
        changed = session.execute(select(FeedVersion.changed_at)).scalar_one()
    # The meeting is no longer in this feed, yet its change is the feed's last modification: the
    # feed version's, stamped by the database when the change committed (not before the edit).
    assert after.headers["last-modified"] == changed.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert changed.replace(microsecond=0) >= updated.replace(microsecond=0)


def test_the_window_moves_by_whole_days(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    _series(client, ids, h)
    token_id, _ = _feed_url(client, h["secretariat"], "room", ids["room_a"])
    settings = client.app.state.settings
    with make_session(engine) as session:
        token = session.get(FeedToken, token_id)
        morning = datetime(2030, 3, 4, 0, 0, 1, tzinfo=UTC)

        def state(now: datetime) -> feeds.FeedState:
            return feeds.feed_state(session, settings, token, base_url="https://lich", now=now)

        assert state(morning).window_start == datetime(2029, 12, 4, tzinfo=UTC)  # 90 days before, midnight UTC
        assert state(morning).etag == state(morning + timedelta(hours=23, minutes=59)).etag
        assert state(morning).etag != state(morning + timedelta(days=1)).etag
        assert state(morning).etag != feeds.feed_state(session, settings, token, base_url="https://other",
                                                       now=morning).etag
        assert state(morning).last_modified >= datetime(2030, 3, 4, tzinfo=UTC)


def test_feeds_of_different_tokens_have_different_etags(client: TestClient, engine: Engine) -> None:
    ids, h = _setup(engine)
    _series(client, ids, h)
    _, url_unit = _feed_url(client, h["secretariat"], "unit", ids["commune_b"], include_sub_units=False)
    _, url_room = _feed_url(client, h["secretariat"], "room", ids["room_b"])
    unit, room = client.get(url_unit), client.get(url_room)
    assert unit.headers["etag"] != room.headers["etag"]
    assert client.get(url_room, headers={"If-None-Match": unit.headers["etag"]}).status_code == 200
    assert Calendar.from_ical(unit.content)["X-WR-CALNAME"] != Calendar.from_ical(room.content)["X-WR-CALNAME"]
