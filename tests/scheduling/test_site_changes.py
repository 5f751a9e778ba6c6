"""``scheduling.site_changes`` (issue 14), on both backends: a province adding or removing one site of a
national meeting writes, checks and tells only that site; the meeting is not re-booked. The small
country of ``tests.national_support`` (Hà Nội "01" chairs, Lào Cai "15", Phú Thọ "25", a bridge each)."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Bridge, Endpoint
from confsvc.events import Event
from confsvc.scheduling import province_sites
from confsvc.scheduling.models import AuditEntry, Booking, Meeting, MeetingBridge, MeetingParticipant
from confsvc.users.models import User
from confsvc.users.service import principal_for
from tests.factories import next_monday_local
from tests.national_support import H, book, country, meeting_body

__all__ = ["country"]  # the fixture


def _rows(engine: Engine, meeting_id: int) -> dict[int, tuple[Any, ...]]:
    """Every booking row of the meeting: id → (occurrence, kind, resource, ports, number, window)."""
    with make_session(engine, write=False) as session:
        return {b.id: (b.occurrence_id, b.resource_kind.value, b.resource_id, b.ports, b.conference_number,
                       b.window_start, b.window_end)
                for b in session.exec(select(Booking).where(Booking.meeting_id == meeting_id)).all()
                if b.id is not None}


def _legs(engine: Engine, meeting_id: int) -> list[tuple[int, int, int | None]]:
    with make_session(engine, write=False) as session:
        return [(mb.bridge_id, mb.parent_bridge_id, mb.conference_number) for mb in session.exec(
            select(MeetingBridge).where(MeetingBridge.meeting_id == meeting_id).order_by(
                col(MeetingBridge.bridge_id))).all()]


def _last_event(engine: Engine) -> int:
    with make_session(engine, write=False) as session:
        return max((e for e in session.exec(select(Event.id)).all() if e is not None), default=0)


def _events_after(engine: Engine, event_id: int) -> list[Event]:
    with make_session(engine, write=False) as session:
        return list(session.exec(select(Event).where(col(Event.id) > event_id).order_by(col(Event.id))).all())


def _endpoint(engine: Engine, room_id: int) -> int:
    with make_session(engine, write=False) as session:
        found = session.exec(select(Endpoint.id).where(Endpoint.room_id == room_id)).one()
        assert found is not None
        return found


def _national(client: TestClient, country: dict[str, Any], sites: list[int]) -> dict[str, Any]:
    start = next_monday_local(hour=8)
    return book(client, country["national"], meeting_body(country["hn"]["rooms"][0], sites, start,
                                                          sites_deadline=(start - 24 * H).isoformat()))


def test_adding_one_site_writes_only_its_rows_and_tells_only_its_display(client: TestClient, engine: Engine,
                                                                          country: dict[str, Any]):
    hn, lc, pt = country["hn"], country["lc"], country["pt"]
    meeting = _national(client, country, [hn["rooms"][3], *pt["rooms"], lc["rooms"][1]])
    before, legs_before, last = _rows(engine, meeting["id"]), _legs(engine, meeting["id"]), _last_event(engine)
    added_room = lc["rooms"][2]

    added = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [added_room]},
                        headers=lc["secretariat"])

    assert added.status_code == 200, added.text
    assert added.json()["sequence"] == meeting["sequence"] + 1
    after = _rows(engine, meeting["id"])
    occurrence = next(iter(before.values()))[0]
    # Every row there before is still there, the same; only Lào Cai's bridge holds one more port.
    changed = {i: (before[i], after[i]) for i in before if before[i] != after[i]}
    assert list(changed) == [i for i, row in before.items() if row[1] == "bridge" and row[2] == lc["bridge"]]
    (was, now), = changed.values()
    assert (was[3], now[3]) == (2, 3) and was[:3] + was[4:] == now[:3] + now[4:]
    window = next(iter(before.values()))[5:]
    assert sorted(row for i, row in after.items() if i not in before) == [
        (occurrence, "endpoint", _endpoint(engine, added_room), 0, None, *window),
        (occurrence, "room", added_room, 0, None, *window)]
    assert _legs(engine, meeting["id"]) == legs_before
    with make_session(engine, write=False) as session:
        assert sorted(session.exec(select(MeetingParticipant.endpoint_id).where(
            MeetingParticipant.meeting_id == meeting["id"])).all()) == sorted(
            [_endpoint(engine, r) for r in [hn["rooms"][0], hn["rooms"][3], *pt["rooms"], lc["rooms"][1], added_room]])
        audit = session.exec(select(AuditEntry).where(AuditEntry.meeting_id == meeting["id"])
                             .order_by(col(AuditEntry.id).desc())).first()
        assert audit is not None and (audit.action, audit.details["room_ids"]) == ("meeting.sites_added", [added_room])
    # Told: the added room's display only (its province's and the national boards through its units).
    told = _events_after(engine, last)
    assert [(e.type, e.room_ids) for e in told] == [("meeting.updated", [added_room]),
                                                    ("join.instructions", [added_room])]
    updated, join = told
    assert {k: updated.data[k] for k in ("meeting_id", "scope", "room_ids", "sites", "sequence")} == {
        "meeting_id": meeting["id"], "scope": "sites", "room_ids": [added_room],
        "sites": {"added": [added_room], "removed": []}, "sequence": meeting["sequence"] + 1}
    assert lc["id"] in updated.unit_ids and pt["id"] not in updated.unit_ids
    assert (join.data["room_id"], join.data["occurrence_id"], join.data["bridge_name"]) == (
        added_room, occurrence, "MCU Lào Cai")


def test_a_province_without_a_site_gets_its_bridge_and_leg_and_its_last_site_frees_them(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    hn, lc, pt = country["hn"], country["lc"], country["pt"]
    meeting = _national(client, country, [hn["rooms"][3], *pt["rooms"]])
    before = _rows(engine, meeting["id"])
    root = {i: row for i, row in before.items() if row[1] == "bridge" and row[2] == hn["bridge"]}
    assert [row[3] for row in root.values()] == [3]  # 2 sites + the leg to Phú Thọ
    assert _legs(engine, meeting["id"]) == [(pt["bridge"], hn["bridge"], 2500)]

    added = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][1]]},
                        headers=lc["secretariat"])

    assert added.status_code == 200, added.text
    assert _legs(engine, meeting["id"]) == [(lc["bridge"], hn["bridge"], 1500), (pt["bridge"], hn["bridge"], 2500)]
    with_lc = _rows(engine, meeting["id"])
    assert [with_lc[i][3] for i in root] == [4]  # one more leg on the root, same row
    assert sorted(row[1:5] for i, row in with_lc.items() if i not in before) == [
        ("bridge", lc["bridge"], 2, 1500),  # its site + its leg to the root
        ("endpoint", _endpoint(engine, lc["rooms"][1]), 0, None), ("room", lc["rooms"][1], 0, None)]
    assert {i: row for i, row in with_lc.items() if i in before and i not in root} == \
        {i: row for i, row in before.items() if i not in root}
    last = _last_event(engine)

    removed = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{lc['rooms'][1]}", headers=lc["secretariat"])

    assert removed.status_code == 200, removed.text
    assert _rows(engine, meeting["id"]) == before  # the same rows, ids included: Lào Cai's bridge and leg freed
    assert _legs(engine, meeting["id"]) == [(pt["bridge"], hn["bridge"], 2500)]
    told = _events_after(engine, last)
    assert [(e.type, e.room_ids) for e in told] == [("meeting.updated", [lc["rooms"][1]])]
    assert {k: told[0].data[k] for k in ("scope", "room_ids", "sites")} == {
        "scope": "sites", "room_ids": [], "sites": {"added": [], "removed": [lc["rooms"][1]]}}
    again = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{lc['rooms'][1]}", headers=lc["secretariat"])
    assert (again.status_code, again.json()["code"]) == (404, "site_not_found")


def test_a_conflict_of_the_added_room_is_the_409_naming_exactly_it(client: TestClient, engine: Engine,
                                                                    country: dict[str, Any]):
    hn, lc, pt = country["hn"], country["lc"], country["pt"]
    meeting = _national(client, country, [hn["rooms"][3], *pt["rooms"]])
    local = book(client, lc["secretariat"], meeting_body(lc["rooms"][1], [], next_monday_local(hour=8) + H,
                                                          title="Giao ban Lào Cai"))
    before, last = _rows(engine, meeting["id"]), _last_event(engine)

    refused = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][1]]},
                          headers=lc["secretariat"])

    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert (body["code"], sorted(body)) == ("booking_conflict", ["by_province", "code", "conflicts", "detail", "groups"])
    assert sorted((c["resource_kind"], c["resource_id"], c["meeting_id"], c["meeting_title"])
                  for c in body["conflicts"]) == [
        ("endpoint", _endpoint(engine, lc["rooms"][1]), local["id"], "Giao ban Lào Cai"),
        ("room", lc["rooms"][1], local["id"], "Giao ban Lào Cai")]
    assert [(p["province_code"], p["count"]) for p in body["by_province"]] == [("15", 2)]
    assert _rows(engine, meeting["id"]) == before and _events_after(engine, last) == []
    assert _legs(engine, meeting["id"]) == [(pt["bridge"], hn["bridge"], 2500)]


def test_two_adds_of_one_room_at_once_book_it_once(settings: Settings, engine: Engine, client: TestClient,
                                                   country: dict[str, Any]):
    hn, lc, pt = country["hn"], country["lc"], country["pt"]
    meeting = _national(client, country, [hn["rooms"][3], *pt["rooms"]])
    room = lc["rooms"][1]
    barrier = threading.Barrier(2)
    answers: list[str] = []

    with make_session(engine, write=False) as session:
        who = principal_for(session, session.exec(select(User).where(User.username == "vanphong15")).one())

    def add() -> None:
        barrier.wait(timeout=10)  # then both ask at once (SQLite: one waits for the other's write lock)
        with make_session(engine) as session:
            try:
                found = session.get(Meeting, meeting["id"])
                assert found is not None
                province_sites.add_sites(session, settings, who, found, [room])
                session.commit()
                answers.append("ok")
            except Exception as exc:  # noqa: BLE001 - the answer is what the test compares
                session.rollback()
                answers.append(type(exc).__name__)

    threads = [threading.Thread(target=add) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert answers == ["ok", "ok"]  # the second finds it taking part already
    rows = _rows(engine, meeting["id"])
    site = {("endpoint", _endpoint(engine, room)), ("room", room)}
    assert sorted(row[1:3] for row in rows.values() if row[1:3] in site) == sorted(site)
    assert [row[3] for row in rows.values() if row[1] == "bridge" and row[2] == lc["bridge"]] == [2]
    assert [row[3] for row in rows.values() if row[1] == "bridge" and row[2] == hn["bridge"]] == [4]
    assert _legs(engine, meeting["id"]) == [(lc["bridge"], hn["bridge"], 1500), (pt["bridge"], hn["bridge"], 2500)]


def _capacity(engine: Engine, bridge_id: int, ports: int) -> None:
    with make_session(engine) as session:
        bridge = session.get(Bridge, bridge_id)
        assert bridge is not None
        bridge.port_capacity = ports
        session.add(bridge)
        session.commit()


def test_a_site_its_bridge_has_no_port_for_is_refused_naming_the_bridge_not_the_meeting(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    hn, lc, pt = country["hn"], country["lc"], country["pt"]
    meeting = _national(client, country, [hn["rooms"][3], *pt["rooms"]])
    _capacity(engine, hn["bridge"], 3)  # the root: 2 sites + the leg to Phú Thọ, full
    _capacity(engine, lc["bridge"], 1)  # Lào Cai's: a site and its leg need 2
    before = _rows(engine, meeting["id"])

    on_root = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [hn["rooms"][1]]},
                          headers=hn["secretariat"])
    new_province = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][1]]},
                               headers=lc["secretariat"])

    assert on_root.status_code == 409, on_root.text
    assert [(c["resource_kind"], c["resource_id"], c["meeting_id"], c["port_capacity"], c["ports_in_use"],
             c["ports_requested"], c["ports_free"], c["province_name"], c["reason"])
            for c in on_root.json()["conflicts"]] == [
        ("bridge", hn["bridge"], None, 3, 3, 1, 0, "Thành phố Hà Nội", "more sites than the MCU has ports")]
    assert new_province.status_code == 409, new_province.text
    # Lào Cai's bridge lacks the ports (its site + its leg); the root's leg port is counted too.
    assert sorted((c["resource_kind"], c["resource_id"], c["meeting_id"], c["port_capacity"], c["ports_requested"],
                   c["province_name"]) for c in new_province.json()["conflicts"]) == [
        ("bridge", hn["bridge"], None, 3, 1, "Thành phố Hà Nội"),
        ("bridge", lc["bridge"], None, 1, 2, "Tỉnh Lào Cai")]
    assert _rows(engine, meeting["id"]) == before


def test_a_site_of_a_weekly_series_is_booked_in_each_occurrence_and_freed_in_each(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    hn, pt = country["hn"], country["pt"]
    start = next_monday_local(hour=8)
    meeting = book(client, country["national"], meeting_body(hn["rooms"][0], [hn["rooms"][3], *pt["rooms"]], start,
                                                             rrule="FREQ=WEEKLY;COUNT=2",
                                                             sites_deadline=(start - 24 * H).isoformat()))
    before = _rows(engine, meeting["id"])
    root = sorted(i for i, row in before.items() if row[1] == "bridge" and row[2] == hn["bridge"])
    room, endpoint = hn["rooms"][1], _endpoint(engine, hn["rooms"][1])

    added = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [room]},
                        headers=hn["secretariat"])

    assert added.status_code == 200, added.text
    assert added.json()["occurrence_count"] == 2
    after = _rows(engine, meeting["id"])
    occurrences = sorted({row[0] for row in before.values()})
    assert sorted(row[:3] for i, row in after.items() if i not in before) == sorted(
        (o, kind, resource) for o in occurrences for kind, resource in (("endpoint", endpoint), ("room", room)))
    assert [(before[i][3], after[i][3]) for i in root] == [(3, 4), (3, 4)]  # the same rows, one port more each
    assert {i: row for i, row in after.items() if i in before and i not in root} == \
        {i: row for i, row in before.items() if i not in root}

    removed = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{room}", headers=hn["secretariat"])

    assert removed.status_code == 200, removed.text
    assert _rows(engine, meeting["id"]) == before


# ---------------------------------------------------------------- the bridge tree decided per occurrence

def _series_chaired_in_phu_tho_with_lao_cai_in_its_second_occurrence_only(
        client: TestClient, country: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """A weekly series (COUNT=2) chaired in Phú Thọ with one Phú Thọ site, open to the provinces; its
    second occurrence overridden with a Lào Cai site too: Lào Cai's bridge and its leg are booked there only."""
    lc, pt = country["lc"], country["pt"]
    start = next_monday_local(hour=8)
    meeting = book(client, country["national"], meeting_body(pt["rooms"][0], [pt["rooms"][1]], start,
                                                             rrule="FREQ=WEEKLY;COUNT=2", bridge_id=pt["bridge"],
                                                             sites_deadline=(start - 24 * H).isoformat()))
    occurrences = [o["id"] for o in client.get(f"/api/v1/meetings/{meeting['id']}/occurrences",
                                                headers=country["national"]).json()]
    overridden = client.patch(f"/api/v1/meetings/{meeting['id']}/occurrences/{occurrences[1]}",
                              json={"participant_room_ids": [pt["rooms"][1], lc["rooms"][1]]},
                              headers=country["national"])
    assert overridden.status_code == 200, overridden.text
    return meeting, occurrences


def _bridges_of(engine: Engine, meeting_id: int, occurrence_id: int) -> dict[int, tuple[int, int | None]]:
    """The meeting's bridge bookings of one occurrence: bridge id → (ports, conference number)."""
    return {row[2]: (row[3], row[4]) for row in _rows(engine, meeting_id).values()
            if row[0] == occurrence_id and row[1] == "bridge"}


def test_a_site_added_in_a_province_only_an_exception_cascades_gets_its_bridge_and_number_in_every_occurrence(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    lc, pt = country["lc"], country["pt"]
    meeting, (first, second) = _series_chaired_in_phu_tho_with_lao_cai_in_its_second_occurrence_only(client, country)
    assert _bridges_of(engine, meeting["id"], first) == {pt["bridge"]: (2, 2500)}
    assert _bridges_of(engine, meeting["id"], second) == {pt["bridge"]: (3, 2500), lc["bridge"]: (2, 1500)}
    assert _legs(engine, meeting["id"]) == [(lc["bridge"], pt["bridge"], 1500)]
    exception = _rows(engine, meeting["id"])

    added = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][2]]},
                        headers=lc["secretariat"])

    assert added.status_code == 200, added.text
    # The first occurrence books Lào Cai's bridge (its site + its leg) with a number, and the leg's port on the root.
    assert _bridges_of(engine, meeting["id"], first) == {pt["bridge"]: (3, 2500), lc["bridge"]: (2, 1500)}
    # The exception keeps its own sites and rows.
    assert {i: row for i, row in _rows(engine, meeting["id"]).items() if row[0] == second} == \
        {i: row for i, row in exception.items() if row[0] == second}
    assert _legs(engine, meeting["id"]) == [(lc["bridge"], pt["bridge"], 1500)]
    items = {i["room_id"]: i for i in client.get(
        f"/api/v1/meetings/{meeting['id']}/join-instructions", params={"occurrence_id": first},
        headers=country["national"]).json()["items"]}
    assert (items[lc["rooms"][2]]["bridge_name"], items[lc["rooms"][2]]["sip_uri"],
            items[lc["rooms"][2]]["conference_number"]) == ("MCU Lào Cai", "sip:1500@mcu.15.gov.vn", 1500)
    # Another meeting on Lào Cai's bridge at the first occurrence's time dials another number.
    local = book(client, lc["secretariat"], meeting_body(lc["rooms"][0], [], next_monday_local(hour=8),
                                                         title="Giao ban Lào Cai", bridge_id=lc["bridge"]))
    assert local["conference_number"] == 1501
    assert sorted(n for (_p, n) in [_bridges_of(engine, local["id"], o)[lc["bridge"]] for o in {
        row[0] for row in _rows(engine, local["id"]).values()}]) == [1501]
    # Removed again, its last site of the first occurrence frees the bridge there; the exception keeps the leg.
    removed = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{lc['rooms'][2]}", headers=lc["secretariat"])
    assert removed.status_code == 200, removed.text
    assert _bridges_of(engine, meeting["id"], first) == {pt["bridge"]: (2, 2500)}
    assert {i: row for i, row in _rows(engine, meeting["id"]).items() if row[0] == second} == \
        {i: row for i, row in exception.items() if row[0] == second}
    assert _legs(engine, meeting["id"]) == [(lc["bridge"], pt["bridge"], 1500)]


def test_a_site_removed_then_added_again_beside_an_exception_with_two_provinces_gets_its_bridge_back(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    lc, pt = country["lc"], country["pt"]
    start = next_monday_local(hour=8)
    meeting = book(client, country["national"], meeting_body(pt["rooms"][0], [pt["rooms"][1], lc["rooms"][1]], start,
                                                             rrule="FREQ=WEEKLY;COUNT=2",
                                                             sites_deadline=(start - 24 * H).isoformat()))
    first, second = [o["id"] for o in client.get(f"/api/v1/meetings/{meeting['id']}/occurrences",
                                                  headers=country["national"]).json()]
    overridden = client.patch(f"/api/v1/meetings/{meeting['id']}/occurrences/{second}",
                              json={"participant_room_ids": [pt["rooms"][1], lc["rooms"][1]]},
                              headers=country["national"])
    assert overridden.status_code == 200, overridden.text
    booked = _bridges_of(engine, meeting["id"], first)
    assert booked == {pt["bridge"]: (3, 2500), lc["bridge"]: (2, 1500)}

    removed = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{lc['rooms'][1]}", headers=lc["secretariat"])

    assert removed.status_code == 200, removed.text
    assert _bridges_of(engine, meeting["id"], first) == {pt["bridge"]: (2, 2500)}
    assert _bridges_of(engine, meeting["id"], second) == booked  # the exception keeps its Lào Cai site
    assert _legs(engine, meeting["id"]) == [(lc["bridge"], pt["bridge"], 1500)]

    again = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][1]]},
                        headers=lc["secretariat"])

    assert again.status_code == 200, again.text
    assert _bridges_of(engine, meeting["id"], first) == booked
    assert _bridges_of(engine, meeting["id"], second) == booked
    assert sorted(row[1:3] for row in _rows(engine, meeting["id"]).values() if row[0] == first) == sorted([
        ("bridge", pt["bridge"]), ("bridge", lc["bridge"]),
        *[(kind, r) for r in (pt["rooms"][0], pt["rooms"][1], lc["rooms"][1]) for kind, r in
          (("room", r), ("endpoint", _endpoint(engine, r)))]])
    items = {i["room_id"]: i for i in client.get(
        f"/api/v1/meetings/{meeting['id']}/join-instructions", params={"occurrence_id": first},
        headers=country["national"]).json()["items"]}
    assert (items[lc["rooms"][1]]["bridge_name"], items[lc["rooms"][1]]["conference_number"]) == ("MCU Lào Cai", 1500)


def test_a_site_whose_provinces_bridge_is_out_of_service_joins_the_root_in_the_occurrences_without_it(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    lc, pt = country["lc"], country["pt"]
    meeting, (first, second) = _series_chaired_in_phu_tho_with_lao_cai_in_its_second_occurrence_only(client, country)
    with make_session(engine) as session:
        bridge = session.get(Bridge, lc["bridge"])
        assert bridge is not None
        bridge.active = False  # the leg stays the exception's; no occurrence may book it again
        session.add(bridge)
        session.commit()

    added = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][2]]},
                        headers=lc["secretariat"])

    assert added.status_code == 200, added.text
    assert _bridges_of(engine, meeting["id"], first) == {pt["bridge"]: (3, 2500)}  # the site joins the root
    assert _bridges_of(engine, meeting["id"], second) == {pt["bridge"]: (3, 2500), lc["bridge"]: (2, 1500)}
    items = {i["room_id"]: i for i in client.get(
        f"/api/v1/meetings/{meeting['id']}/join-instructions", params={"occurrence_id": first},
        headers=country["national"]).json()["items"]}
    assert (items[lc["rooms"][2]]["bridge_name"], items[lc["rooms"][2]]["sip_uri"]) == (
        "MCU Phú Thọ", "sip:2500@mcu.25.gov.vn")

    removed = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{lc['rooms'][2]}", headers=lc["secretariat"])

    assert removed.status_code == 200, removed.text
    assert _bridges_of(engine, meeting["id"], first) == {pt["bridge"]: (2, 2500)}  # given back to the root
    assert _bridges_of(engine, meeting["id"], second) == {pt["bridge"]: (3, 2500), lc["bridge"]: (2, 1500)}
    assert _legs(engine, meeting["id"]) == [(lc["bridge"], pt["bridge"], 1500)]


def test_a_site_added_where_its_legs_number_is_taken_then_dials_the_number_its_occurrence_holds(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    lc, pt = country["lc"], country["pt"]
    meeting, (first, second) = _series_chaired_in_phu_tho_with_lao_cai_in_its_second_occurrence_only(client, country)
    local = book(client, lc["secretariat"], meeting_body(lc["rooms"][0], [], next_monday_local(hour=8),
                                                         title="Giao ban Lào Cai", bridge_id=lc["bridge"]))
    assert local["conference_number"] == 1500  # the leg's number, free at the first occurrence's time

    added = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][2]]},
                        headers=lc["secretariat"])

    assert added.status_code == 200, added.text
    assert _bridges_of(engine, meeting["id"], first) == {pt["bridge"]: (3, 2500), lc["bridge"]: (2, 1501)}
    assert _bridges_of(engine, meeting["id"], second)[lc["bridge"]] == (2, 1500)
    assert _legs(engine, meeting["id"]) == [(lc["bridge"], pt["bridge"], 1500)]
    items = {i["room_id"]: i for i in client.get(
        f"/api/v1/meetings/{meeting['id']}/join-instructions", params={"occurrence_id": first},
        headers=country["national"]).json()["items"]}
    assert (items[lc["rooms"][2]]["bridge_name"], items[lc["rooms"][2]]["sip_uri"]) == (
        "MCU Lào Cai", "sip:1501@mcu.15.gov.vn")


def test_a_site_whose_provinces_bridge_has_no_port_in_an_occurrence_lacking_it_is_refused_naming_that_bridge(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    lc = country["lc"]
    meeting, _occurrences = _series_chaired_in_phu_tho_with_lao_cai_in_its_second_occurrence_only(client, country)
    before = _rows(engine, meeting["id"])
    _capacity(engine, lc["bridge"], 1)  # its site and its leg need 2 in the first occurrence

    refused = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][2]]},
                          headers=lc["secretariat"])

    assert refused.status_code == 409, refused.text
    assert [(c["resource_kind"], c["resource_id"], c["port_capacity"], c["ports_requested"], c["province_name"])
            for c in refused.json()["conflicts"]] == [("bridge", lc["bridge"], 1, 2, "Tỉnh Lào Cai")]
    assert _rows(engine, meeting["id"]) == before
