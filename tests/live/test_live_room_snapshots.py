"""Room channels' snapshots kept in memory (issue 14, ``live.room_snapshots``): read together, exactly each
room's ``snapshot.snapshot``; forgotten by an event of the room (a booking after a kept snapshot is in the
next display's), by time (a technical check beginning), never trusted over a revoked display token."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

from confsvc.clock import iso_utc
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.live import display
from confsvc.live.hub import Hub
from confsvc.live.room_snapshots import Kept, RoomSnapshots, valid_until
from confsvc.live.snapshot import Scope, room_snapshots, snapshot
from confsvc.main import create_app
from confsvc.scheduling import visibility
from confsvc.users import service as users
from confsvc.users.models import Role
from tests.factories import (
    bearer,
    make_bridge,
    make_endpoint,
    make_meeting,
    make_room,
    make_unit,
    make_user,
    next_monday_local,
)
from tests.live_support import ThreadServer, closed_with, delivered, recv

INVALID = (4401, "invalid_token: invalid display token")


def _room_scope(room_id: int, unit_id: int | None) -> Scope:
    audience = visibility.EVERYONE if unit_id is None else visibility.Audience.of_units({unit_id})
    return Scope("room", room_id, frozenset({room_id}), audience)


def test_room_snapshots_read_together_are_each_rooms_own_snapshot(session: Session, settings: Settings) -> None:
    make_bridge(session)
    unit, other_unit = make_unit(session), make_unit(session)
    a, b, c = make_room(session, unit), make_room(session, unit), make_room(session, other_unit)
    outsider = make_unit(session)  # takes no part: sees "Cuộc họp" for the confidential meeting
    quiet, bare = make_room(session, other_unit), make_room(session, unit)  # an endpoint and no meeting; nothing
    for room in (a, b, c, quiet):
        make_endpoint(session, room)
    make_endpoint(session, a)
    now = datetime.now(UTC)
    soon = (now + timedelta(minutes=30)).replace(second=0, microsecond=0)
    monday = next_monday_local(weeks_ahead=2)
    # Current at ``now`` (its technical check began), confidential, with b and c.
    make_meeting(session, chair_room=b, rooms=[a, c], start=soon, end=soon + timedelta(hours=1), settings=settings,
                 title="Họp mật", confidential=True)
    make_meeting(session, chair_room=a, rooms=[b], start=monday, end=monday + timedelta(hours=2), settings=settings,
                 title="Giao ban sáng")
    make_meeting(session, chair_room=c, rooms=[a], start=monday.replace(hour=14),
                 end=monday.replace(hour=16), settings=settings, title="Họp chiều")
    later = monday + timedelta(days=2)
    make_meeting(session, chair_room=a, start=later, end=later + timedelta(hours=1), settings=settings,
                 title="Họp thứ Tư")
    scopes = [_room_scope(r.id, u) for r in (a, b, c, quiet, bare) for u in (r.unit_id, outsider.id, None)]

    together = room_snapshots(session, scopes, now=now)

    assert together == {scope: snapshot(session, scope, now=now) for scope in scopes}
    first = together[_room_scope(a.id, a.unit_id)]
    assert [i["title"] for i in first["current"]] == ["Họp mật"]
    assert [i["title"] for i in first["next"]] == ["Giao ban sáng", "Họp chiều"]
    assert [i["title"] for i in together[_room_scope(c.id, other_unit.id)]["current"]] == ["Họp mật"]
    assert [i["title"] for i in together[_room_scope(c.id, outsider.id)]["current"]] == ["Cuộc họp"]
    assert together[_room_scope(bare.id, None)]["endpoints"] == []


def test_room_snapshots_take_room_channels_only(session: Session) -> None:
    with pytest.raises(ValueError, match="room channels only"):
        room_snapshots(session, [Scope("unit", 1, frozenset({1}))], now=datetime.now(UTC))


def _data(current: list[tuple[str, str]], upcoming: list[tuple[str, str]]) -> dict[str, Any]:
    return {"current": [{"check_at": c, "end": e} for c, e in current],
            "next": [{"check_at": c, "end": e} for c, e in upcoming]}


def test_a_kept_snapshot_holds_until_a_current_meeting_ends_or_a_listed_check_begins() -> None:
    assert valid_until(_data([], [])) is None
    assert valid_until(_data([("2026-12-07T01:00:00Z", "2026-12-07T03:00:00Z")],
                             [("2026-12-07T02:00:00Z", "2026-12-07T04:00:00Z")])) == datetime(2026, 12, 7, 2, tzinfo=UTC)
    assert valid_until(_data([("2026-12-07T01:00:00Z", "2026-12-07T01:30:00Z")],
                             [("2026-12-07T02:00:00Z", "2026-12-07T04:00:00Z")])) == \
        datetime(2026, 12, 7, 1, 30, tzinfo=UTC)


class _Reader:
    """A ``room_snapshots.Reader`` that records its calls and returns a snapshot naming its call."""

    def __init__(self, *, until: datetime | None = None) -> None:
        self.calls: list[list[int]] = []
        self.until = until
        self.during: Any = None

    def __call__(self, scopes: list[Scope], now: datetime) -> tuple[int, dict[Scope, dict[str, Any]]]:
        self.calls.append(sorted(s.id or 0 for s in scopes))
        if self.during is not None:
            self.during()
        upcoming = [{"check_at": iso_utc(self.until), "end": iso_utc(self.until)}] if self.until else []
        return len(self.calls), {s: {"call": len(self.calls), "current": [], "next": upcoming} for s in scopes}


def _get_all(kept: RoomSnapshots, rooms: list[int], reader: _Reader) -> list[Kept]:
    async def scenario() -> list[Kept]:
        return list(await asyncio.gather(*(kept.get(_room_scope(r, 1), reader) for r in rooms)))
    return asyncio.run(scenario())


def test_rooms_asked_at_once_are_read_together_then_kept_until_an_event_of_their_room() -> None:
    kept, reader = RoomSnapshots(), _Reader()
    first = _get_all(kept, [1, 2, 3], reader)
    assert reader.calls == [[1, 2, 3]]
    assert [k.latest_id for k in first] == [1, 1, 1]
    assert [k.data["call"] for k in _get_all(kept, [1, 2, 3], reader)] == [1, 1, 1]
    assert reader.calls == [[1, 2, 3]]
    kept.forget({2})
    assert [k.data["call"] for k in _get_all(kept, [1, 2, 3], reader)] == [1, 2, 1]
    assert reader.calls == [[1, 2, 3], [2]]
    kept.forget_all()
    assert [k.data["call"] for k in _get_all(kept, [1, 2], reader)] == [3, 3]


def test_a_read_overtaken_by_an_event_of_its_room_is_sent_but_not_kept() -> None:
    kept, reader = RoomSnapshots(), _Reader()
    reader.during = lambda: kept.forget({1})  # an event of room 1 delivered while the read runs
    assert [k.data["call"] for k in _get_all(kept, [1, 2], reader)] == [1, 1]
    reader.during = None
    assert [k.data["call"] for k in _get_all(kept, [1, 2], reader)] == [2, 1]
    assert reader.calls == [[1, 2], [1]]


def test_a_kept_snapshot_is_read_again_when_a_listed_check_begins_or_after_its_ttl() -> None:
    kept, reader = RoomSnapshots(), _Reader(until=datetime.now(UTC) + timedelta(milliseconds=300))
    _get_all(kept, [1], reader)
    _get_all(kept, [1], reader)
    assert len(reader.calls) == 1
    time.sleep(0.35)
    _get_all(kept, [1], reader)
    assert len(reader.calls) == 2
    short, plain = RoomSnapshots(ttl_seconds=0.2), _Reader()
    _get_all(short, [1], plain)
    time.sleep(0.25)
    _get_all(short, [1], plain)
    assert len(plain.calls) == 2


# ---------------------------------------------------------------- through the live channel

@pytest.fixture
def site(engine: Engine) -> dict:
    with make_session(engine) as session:
        make_bridge(session)
        unit = make_unit(session)
        room, chair = make_room(session, unit, name="Điểm cầu xã"), make_room(session, unit, name="Hội trường tỉnh")
        make_endpoint(session, room)
        secretariat = make_user(session, Role.secretariat)
        principal = users.principal_for(session, secretariat)
        token, secret = display.create_display_token(session, principal, room.id)
        ids = {"unit": unit.id, "room": room.id, "chair": chair.id, "display_id": token.id, "display": secret,
               "secretariat": bearer(session, secretariat)}
        session.commit()
    return ids


@pytest.fixture
def app(db_url: str, tmp_path: Path, engine: Engine, site: dict) -> FastAPI:
    return create_app(Settings(database_url=db_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(32)),
                      engine=engine)


@pytest.fixture
def server(app: FastAPI) -> Iterator[ThreadServer]:
    with ThreadServer(app) as running:
        yield running



def _snapshot(server: ThreadServer, site: dict) -> dict:
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as ws:
        message = recv(ws)
    assert message["type"] == "snapshot"
    return message


def test_a_booking_after_a_kept_snapshot_is_in_the_next_displays_snapshot(server: ThreadServer, app: FastAPI,
                                                                          site: dict) -> None:
    hub: Hub = app.state.hub
    empty = _snapshot(server, site)
    assert (empty["data"]["current"], empty["data"]["next"]) == ([], [])
    again = _snapshot(server, site)
    assert (again["id"], again["data"]["next"]) == (empty["id"], [])
    assert (hub.room_snapshots.reads, hub.room_snapshots.hits) == (1, 1)  # the second from memory
    start = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    r = httpx.post(f"{server.base}/api/v1/meetings", headers=site["secretariat"], timeout=20, json={
        "title": "Hội nghị sau ảnh chụp", "chair_room_id": site["chair"], "participant_room_ids": [site["room"]],
        "start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()})
    assert r.status_code == 201, r.text
    with make_session(app.state.engine, write=False) as session:
        from confsvc import events
        latest = events.latest_id(session)
    delivered(hub, latest)

    booked = _snapshot(server, site)

    assert booked["id"] == latest
    assert [(i["title"], i["start"], i["chair_room_id"]) for i in booked["data"]["next"]] == [
        ("Hội nghị sau ảnh chụp", iso_utc(start), site["chair"])]
    assert [j["room_name"] for j in booked["data"]["next"][0]["join_instructions"]] == ["Điểm cầu xã"]
    assert hub.room_snapshots.reads == 2


def test_a_revoked_display_token_is_refused_though_its_rooms_snapshot_is_kept(server: ThreadServer, app: FastAPI,
                                                                              site: dict) -> None:
    hub: Hub = app.state.hub
    _snapshot(server, site)
    scope = _room_scope(site["room"], site["unit"])
    r = httpx.delete(f"{server.base}/api/v1/rooms/{site['room']}/display-tokens/{site['display_id']}",
                     headers=site["secretariat"])
    assert r.status_code == 204
    assert scope in hub.room_snapshots._kept.get(site["room"], {})  # the snapshot is still kept …
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as ws:
        assert closed_with(ws) == INVALID  # … and the token refused
