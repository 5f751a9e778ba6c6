"""Issue 14 "National meetings", on both backends: a small country of three provinces (Hà Nội "01",
Lào Cai "15", Phú Thọ "25"), each with its communes' rooms and its own bridge (MCU); a national
secretariat (Văn phòng Chính phủ, no province) books across them. A refusal lists the conflicts by
province; until the meeting's ``sites_deadline`` each province's secretariat adds or removes its own
sites; a province's busy rooms are listed to it, the national office sees counts."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc.clock import utc_now
from confsvc.db import make_session
from confsvc.scheduling.models import Booking, ResourceKind
from tests.factories import next_monday_local
from tests.national_support import ZONE, H, book, busy_locals, country, meeting_body, whole_country

__all__ = ["country"]  # the fixture


def test_a_national_refusal_lists_every_conflict_grouped_by_province(client: TestClient, country: dict[str, Any]):
    start = next_monday_local(hour=8)
    pt_local, hn_local = busy_locals(client, country, start)
    sites = whole_country(country)
    body = meeting_body(sites["chair"], sites["sites"], start)

    refused = client.post("/api/v1/meetings", json=body, headers=country["national"])
    check = client.post("/api/v1/meetings/check", json=body, headers=country["national"])

    assert refused.status_code == 409, refused.text
    answer = refused.json()
    # What it had before stays: every conflict, grouped by the other meeting.
    assert len(answer["conflicts"]) == 6
    assert [(g["meeting_title"], g["room_count"]) for g in answer["groups"]] == [
        ("Giao ban Phú Thọ", 1), ("Giao ban Hà Nội", 2)]
    hn, pt = country["hn"], country["pt"]
    assert [{k: p[k] for k in ("province_id", "province_code", "province_name", "count")}
            for p in answer["by_province"]] == [
        {"province_id": hn["id"], "province_code": "01", "province_name": "Thành phố Hà Nội", "count": 4},
        {"province_id": pt["id"], "province_code": "25", "province_name": "Tỉnh Phú Thọ", "count": 2}]
    hanoi, phutho = answer["by_province"]
    assert sorted((c["resource_kind"], c["meeting_id"]) for c in hanoi["conflicts"]) == [
        ("endpoint", hn_local["id"]), ("endpoint", hn_local["id"]), ("room", hn_local["id"]),
        ("room", hn_local["id"])]
    assert sorted(c["resource_name"] for c in hanoi["conflicts"] if c["resource_kind"] == "room") == [
        "Điểm cầu Hà Nội 1", "Điểm cầu Hà Nội 2"]
    assert [(g["meeting_id"], g["meeting_title"], [r["name"] for r in g["rooms"]]) for g in hanoi["groups"]] == [
        (hn_local["id"], "Giao ban Hà Nội", ["Điểm cầu Hà Nội 1", "Điểm cầu Hà Nội 2"])]
    assert [(g["meeting_id"], [r["name"] for r in g["rooms"]]) for g in phutho["groups"]] == [
        (pt_local["id"], ["Điểm cầu Phú Thọ 1"])]
    # The dry run answers the same grouping.
    assert check.status_code == 200
    assert check.json()["by_province"] == answer["by_province"]


def test_a_refusal_inside_one_province_keeps_its_fields_and_names_that_province(client: TestClient,
                                                                                country: dict[str, Any]):
    start = next_monday_local(hour=8)
    busy_locals(client, country, start)
    hn = country["hn"]

    refused = client.post("/api/v1/meetings", json=meeting_body(hn["rooms"][0], hn["rooms"][1:2], start),
                          headers=hn["secretariat"])

    assert refused.status_code == 409
    assert sorted(refused.json()) == ["by_province", "code", "conflicts", "detail", "groups"]
    assert [(p["province_code"], p["count"]) for p in refused.json()["by_province"]] == [("01", 2)]


def _national_meeting(client: TestClient, country: dict[str, Any], start, *, deadline) -> dict[str, Any]:
    hn, pt = country["hn"], country["pt"]
    return book(client, country["national"], meeting_body(hn["rooms"][0], [hn["rooms"][3], *pt["rooms"]], start,
                                                    sites_deadline=deadline.isoformat()))


def _bridge_ports(engine: Engine, meeting_id: int) -> dict[int, int]:
    with make_session(engine, write=False) as session:
        return dict(session.exec(select(Booking.resource_id, Booking.ports).where(
            Booking.meeting_id == meeting_id, Booking.resource_kind == ResourceKind.bridge)).all())


def test_a_province_adds_its_own_site_before_the_deadline_and_it_joins_its_provinces_bridge(
        client: TestClient, engine: Engine, country: dict[str, Any]):
    start = next_monday_local(hour=8)
    lc = country["lc"]
    meeting = _national_meeting(client, country, start, deadline=start - 24 * H)
    assert meeting["sites_deadline"] == (start - 24 * H).astimezone(ZoneInfo("UTC")).isoformat().replace(
        "+00:00", "Z")

    added = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": lc["rooms"][1:3]},
                        headers=lc["secretariat"])

    assert added.status_code == 200, added.text
    bridges = {b["province_id"]: b for b in added.json()["cascade_bridges"]}
    assert {k: bridges[lc["id"]][k] for k in ("bridge_id", "bridge_name", "parent_bridge_id", "conference_number")} \
        == {"bridge_id": lc["bridge"], "bridge_name": "MCU Lào Cai", "parent_bridge_id": country["hn"]["bridge"],
            "conference_number": 1500}
    # Lào Cai's bridge: its 2 sites + the leg to the root; the root (Hà Nội): 2 sites + legs to Phú Thọ, Lào Cai.
    assert _bridge_ports(engine, meeting["id"]) == {country["hn"]["bridge"]: 4, country["pt"]["bridge"]: 5,
                                                    lc["bridge"]: 3}
    listing = client.get(f"/api/v1/meetings/{meeting['id']}/province-sites", headers=lc["secretariat"]).json()
    assert [(s["room_name"], s["bridge_id"], s["bridge_name"]) for s in listing["own"]["sites"]] == [
        ("Điểm cầu Lào Cai 1", lc["bridge"], "MCU Lào Cai"), ("Điểm cầu Lào Cai 2", lc["bridge"], "MCU Lào Cai")]
    assert [r["room_name"] for r in listing["own"]["free"]] == ["Hội trường UBND Lào Cai"]
    assert listing["can_change"] is True

    removed = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{lc['rooms'][1]}", headers=lc["secretariat"])
    assert removed.status_code == 200, removed.text
    assert _bridge_ports(engine, meeting["id"])[lc["bridge"]] == 2
    client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{lc['rooms'][2]}", headers=lc["secretariat"])
    # No site left in Lào Cai: its bridge and leg leave the cascade.
    assert lc["bridge"] not in _bridge_ports(engine, meeting["id"])
    assert _bridge_ports(engine, meeting["id"])[country["hn"]["bridge"]] == 3


def test_a_province_may_not_touch_another_provinces_sites_nor_the_meeting(client: TestClient,
                                                                           country: dict[str, Any]):
    start = next_monday_local(hour=8)
    meeting = _national_meeting(client, country, start, deadline=start - 24 * H)
    hn, lc, pt = country["hn"], country["lc"], country["pt"]

    add_other = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][1]]},
                            headers=pt["secretariat"])
    remove_other = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{hn['rooms'][3]}",
                                 headers=pt["secretariat"])
    retitle = client.patch(f"/api/v1/meetings/{meeting['id']}", json={"title": "Giao ban Phú Thọ"},
                           headers=pt["secretariat"])
    as_operator = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [hn["rooms"][1]]},
                              headers=country["operator"])

    assert (add_other.status_code, add_other.json()["code"]) == (403, "forbidden_province_site")
    assert add_other.json()["detail"] == "a province changes only its own sites: this room is in another province"
    assert (remove_other.status_code, remove_other.json()["code"]) == (403, "forbidden_province_site")
    assert (retitle.status_code, retitle.json()["code"]) == (403, "forbidden_scope")
    assert (as_operator.status_code, as_operator.json()["code"]) == (403, "forbidden_role")
    assert client.get(f"/api/v1/meetings/{meeting['id']}", headers=country["national"]).json()["title"] == \
        "Hội nghị trực tuyến Chính phủ với địa phương"
    # Its own sites it may remove.
    own = client.delete(f"/api/v1/meetings/{meeting['id']}/sites/{pt['rooms'][1]}", headers=pt["secretariat"])
    assert own.status_code == 200, own.text


def test_after_the_deadline_a_province_is_refused_with_the_deadline(client: TestClient, country: dict[str, Any]):
    start = next_monday_local(hour=8)
    deadline = (utc_now() - H).replace(second=0, microsecond=0)
    meeting = _national_meeting(client, country, start, deadline=deadline)
    lc = country["lc"]

    refused = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][1]]},
                          headers=lc["secretariat"])

    assert refused.status_code == 403
    local = deadline.astimezone(ZONE).strftime("%H:%M %d/%m/%Y")
    assert refused.json() == {
        "detail": f"the deadline for the provinces' sites passed at {local} "
                  f"({deadline.isoformat().replace('+00:00', 'Z')})",
        "code": "sites_deadline_passed", "sites_deadline": deadline.isoformat()}
    listing = client.get(f"/api/v1/meetings/{meeting['id']}/province-sites", headers=lc["secretariat"]).json()
    assert listing["can_change"] is False
    # The national office still changes any site.
    assert client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [lc["rooms"][1]]},
                       headers=country["national"]).status_code == 200


def test_a_meeting_without_a_deadline_is_not_open_to_the_provinces(client: TestClient, country: dict[str, Any]):
    hn, pt = country["hn"], country["pt"]
    meeting = book(client, country["national"], meeting_body(hn["rooms"][0], pt["rooms"], next_monday_local(hour=8)))

    refused = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [pt["rooms"][0]]},
                          headers=pt["secretariat"])
    set_by_province = client.post("/api/v1/meetings", headers=pt["secretariat"], json=meeting_body(
        pt["rooms"][0], pt["rooms"][1:], next_monday_local(hour=14), sites_deadline=next_monday_local(hour=7)
        .isoformat()))

    assert (refused.status_code, refused.json()["code"]) == (403, "sites_not_open")
    assert (set_by_province.status_code, set_by_province.json()["code"]) == (403, "sites_deadline_national")


def test_a_busy_site_added_by_a_province_is_refused_like_a_booking(client: TestClient, country: dict[str, Any]):
    start = next_monday_local(hour=8)
    _pt_local, hn_local = busy_locals(client, country, start)
    meeting = _national_meeting(client, country, start + 4 * H, deadline=start - 24 * H)
    hn = country["hn"]
    moved = client.patch(f"/api/v1/meetings/{hn_local['id']}", json={"start": (start + 4 * H).isoformat(),
                                                                      "end": (start + 6 * H).isoformat()},
                         headers=hn["secretariat"])
    assert moved.status_code == 200, moved.text

    refused = client.post(f"/api/v1/meetings/{meeting['id']}/sites", json={"room_ids": [hn["rooms"][2]]},
                          headers=hn["secretariat"])

    assert refused.status_code == 409, refused.text
    assert [(p["province_code"], p["count"], [g["meeting_title"] for g in p["groups"]])
            for p in refused.json()["by_province"]] == [("01", 2, ["Giao ban Hà Nội"])]


def test_busy_rooms_are_listed_to_their_province_and_counted_to_the_national_office(client: TestClient,
                                                                                   country: dict[str, Any]):
    start = next_monday_local(hour=8)
    pt_local, hn_local = busy_locals(client, country, start)
    hn, lc, pt = country["hn"], country["lc"], country["pt"]
    # Booked without the busy rooms (left out after the 409).
    sites = [hn["rooms"][3], *lc["rooms"], pt["rooms"][0], pt["rooms"][2], pt["rooms"][3]]
    meeting = book(client, country["national"], meeting_body(hn["rooms"][0], sites, start,
                                                       sites_deadline=(start - 24 * H).isoformat()))

    hanoi = client.get(f"/api/v1/meetings/{meeting['id']}/province-sites", headers=hn["secretariat"])
    national = client.get(f"/api/v1/meetings/{meeting['id']}/province-sites", headers=country["national"])
    operator = client.get(f"/api/v1/meetings/{meeting['id']}/province-sites", headers=country["operator"])

    assert hanoi.status_code == 200, hanoi.text
    assert hanoi.json()["provinces"] == [{"province_id": hn["id"], "province_code": "01",
                                          "province_name": "Thành phố Hà Nội", "sites": 2, "busy": 2, "free": 0}]
    own = hanoi.json()["own"]
    assert own["province"] == {"province_id": hn["id"], "province_code": "01", "province_name": "Thành phố Hà Nội"}
    assert [(b["room_id"], b["room_name"], b["unit_name"], sorted({c["meeting_title"] for c in b["conflicts"]}))
            for b in own["busy"]] == [
        (hn["rooms"][1], "Điểm cầu Hà Nội 1", "Xã Hà Nội 1", ["Giao ban Hà Nội"]),
        (hn["rooms"][2], "Điểm cầu Hà Nội 2", "Xã Hà Nội 2", ["Giao ban Hà Nội"])]
    assert {c["meeting_id"] for b in own["busy"] for c in b["conflicts"]} == {hn_local["id"]}
    assert national.status_code == 200
    assert national.json()["own"] is None
    assert [(p["province_code"], p["sites"], p["busy"], p["free"]) for p in national.json()["provinces"]] == [
        ("01", 2, 2, 0), ("15", 3, 0, 0), ("25", 3, 1, 0)]
    assert "Giao ban" not in national.text
    assert (operator.status_code, operator.json()["code"]) == (403, "forbidden_role")
    phutho = client.get(f"/api/v1/meetings/{meeting['id']}/province-sites", headers=pt["secretariat"]).json()
    assert [(b["room_name"], b["conflicts"][0]["meeting_id"]) for b in phutho["own"]["busy"]] == [
        ("Điểm cầu Phú Thọ 1", pt_local["id"])]
