"""Unit mergers and renames with history (issue 15), on both databases, with real Phú Thọ communes.

Xã Bằng Luân (07996) and Xã Chí Đám (07999), neighbouring communes of the former Đoan Hùng district, are
merged on 01/12/2026 into a new Xã Đoan Hùng Tây (07998; an invented successor: the package's 2025 list
is the one in force). Meetings in November 2026 (Asia/Ho_Chi_Minh) with both, calls on their endpoints,
and a weekly briefing running across the merge.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest
import sqlalchemy as sa
from docx import Document
from sqlmodel import Session, select

from confsvc.calendar import feeds
from confsvc.calendar.models import FeedScope
from confsvc.calendar.tokens import create_feed_token
from confsvc.calls import intake as calls
from confsvc.calls.schemas import CallEventCreate
from confsvc.config import Settings
from confsvc.endpoints import schemas as endpoint_schemas
from confsvc.endpoints import service as inventory
from confsvc.endpoints import unit_history
from confsvc.endpoints.csvio import import_endpoints
from confsvc.endpoints.models import Endpoint, Room, RoomUnit, Unit, UnitLifetime, UnitName
from confsvc.endpoints.units_import import diff_list, entries_from_file, import_province
from confsvc.errors import ConfsvcError, Forbidden
from confsvc.scheduling import invitation, invitation_docx, unit_changes
from confsvc.scheduling.models import AuditEntry, Meeting, Occurrence
from confsvc.stats import usage
from confsvc.stats.schemas import GroupBy, Period
from confsvc.users import service as users
from confsvc.users.models import Role, UserUnit
from tests.factories import bearer, make_bridge, make_endpoint, make_meeting, make_room, make_user

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
EFFECTIVE = date(2026, 12, 1)
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=ZONE)
ADDITIVE = ("meetings", "cancelled", "booked_hours", "connected_hours", "sites_invited", "sites_connected",
            "late_joins", "faults")


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE)


@dataclass
class Scene:
    province: Unit
    a: Unit
    b: Unit
    chair: Room
    room_a: Room
    room_b: Room
    ep_a: Endpoint
    ep_b: Endpoint
    admin_id: int
    operator_id: int


def _unit(session: Session, name: str) -> Unit:
    return session.exec(select(Unit).where(Unit.name == name)).one()


def build(session: Session, settings: Settings) -> Scene:
    import_province(session, "25")
    province, a, b = _unit(session, "Phú Thọ"), _unit(session, "Xã Bằng Luân"), _unit(session, "Xã Chí Đám")
    chair = make_room(session, province, name="Phòng họp trực tuyến UBND tỉnh Phú Thọ")
    room_a = make_room(session, a, name="Điểm cầu UBND xã Bằng Luân")
    room_b = make_room(session, b, name="Điểm cầu UBND xã Chí Đám")
    make_endpoint(session, chair, name="Thiết bị điểm cầu tỉnh")
    ep_a = make_endpoint(session, room_a, name="Thiết bị xã Bằng Luân")
    ep_b = make_endpoint(session, room_b, name="Thiết bị xã Chí Đám")
    make_bridge(session, name="MCU Phú Thọ")
    admin = make_user(session, Role.admin)
    operator = make_user(session, Role.operator, units=[a], username="canbo.bangluan")
    make_meeting(session, chair_room=chair, rooms=[room_a, room_b], start=local(11, 2, 8), end=local(11, 2, 10),
                 user=admin, settings=settings, title="Hội nghị triển khai nhiệm vụ tháng 11")
    make_meeting(session, chair_room=chair, rooms=[room_a], start=local(11, 3, 14), end=local(11, 3, 15, 30),
                 user=admin, settings=settings, title="Họp chuyên đề chuyển đổi số cấp xã")
    make_meeting(session, chair_room=chair, rooms=[room_a, room_b], start=local(11, 16, 8), end=local(11, 16, 9),
                 user=admin, settings=settings, title="Giao ban trực tuyến UBND tỉnh với các xã, phường",
                 description="Điểm cầu xã Bằng Luân và xã Chí Đám báo cáo tiến độ.", rrule="FREQ=WEEKLY;COUNT=5")
    principal = users.principal_for(session, admin)
    for endpoint, event, at in [(ep_a, "connected", local(11, 2, 7, 50)), (ep_b, "connected", local(11, 2, 8, 20)),
                                (ep_b, "disconnected", local(11, 2, 9)), (ep_a, "disconnected", local(11, 2, 10)),
                                (ep_a, "connected", local(11, 3, 14, 10)), (ep_a, "disconnected", local(11, 3, 15))]:
        calls.report_call(session, settings, principal,
                          CallEventCreate(endpoint_id=endpoint.id, event=event, at=at, source="bridge"), now=NOW)
    session.flush()
    return Scene(province, a, b, chair, room_a, room_b, ep_a, ep_b, admin.id, operator.id)


def _admin(session: Session, scene: Scene):
    return users.principal_for(session, session.get(users.User, scene.admin_id))


def _merge(session: Session, settings: Settings, scene: Scene, *, dry_run: bool = False):
    return unit_changes.merge(session, settings, _admin(session, scene), ["07996", "07999"], "07998",
                              successor_name="Xã Đoan Hùng Tây", effective=EFFECTIVE, dry_run=dry_run)


def _report(session: Session, settings: Settings, scene: Scene, **kw):
    values = {"group_by": GroupBy.unit, "period": Period.month, "from_date": date(2026, 11, 1),
              "to_date": date(2026, 12, 1), "now": NOW, **kw}
    return usage.usage_report(session, settings, _admin(session, scene), **values)


def _rows(report) -> dict[str, dict]:
    return {r["group"]["name"]: {k: r[k] for k in ADDITIVE} for r in report["rows"]}


def _counts(session: Session) -> dict[str, int]:
    tables = ("units", "rooms", "endpoints", "unit_lifetimes", "unit_names", "room_units", "user_units", "audit_log",
              "meetings", "occurrences", "bookings")
    return {t: session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def _vevents(body: bytes) -> list[bytes]:
    """The raw VEVENT blocks of a feed, as served."""
    return [b"BEGIN:VEVENT" + part.split(b"END:VEVENT")[0] for part in body.split(b"BEGIN:VEVENT")[1:]]


def _past_events(body: bytes, before: datetime) -> dict[str, tuple[str, str, str, tuple[str, ...]]]:
    """Every occurrence starting before ``before`` (the series expanded) → (SUMMARY, LOCATION, DESCRIPTION,
    the attendees' CN)."""
    import recurring_ical_events

    cal = icalendar.Calendar.from_ical(body)
    out = {}
    for event in recurring_ical_events.of(cal).between(local(10, 1, 0), before):
        attendees = event.get("ATTENDEE", [])
        attendees = attendees if isinstance(attendees, list) else [attendees]
        out[event["DTSTART"].dt.isoformat()] = (str(event["SUMMARY"]), str(event.get("LOCATION", "")),
                                                str(event.get("DESCRIPTION", "")),
                                                tuple(str(a.params.get("CN", "")) for a in attendees))
    return out


# ---------------------------------------------------------------- merge


def test_merge_dry_run_lists_every_change_and_writes_nothing(session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    before = _counts(session)
    plan = _merge(session, settings, scene, dry_run=True)
    assert plan.lines() == [
        "Sáp nhập Xã Bằng Luân (07996), Xã Chí Đám (07999) vào Xã Đoan Hùng Tây (07998, đơn vị mới) từ ngày 01/12/2026",
        f"  điểm cầu #{scene.room_a.id} «Điểm cầu UBND xã Bằng Luân»: Xã Bằng Luân → Xã Đoan Hùng Tây",
        f"  điểm cầu #{scene.room_b.id} «Điểm cầu UBND xã Chí Đám»: Xã Chí Đám → Xã Đoan Hùng Tây",
        f"  thiết bị #{scene.ep_a.id} Thiết bị xã Bằng Luân ({scene.ep_a.serial}) trong «Điểm cầu UBND xã Bằng Luân»",
        f"  thiết bị #{scene.ep_b.id} Thiết bị xã Chí Đám ({scene.ep_b.serial}) trong «Điểm cầu UBND xã Chí Đám»",
        "  người dùng canbo.bangluan: thêm phạm vi Xã Đoan Hùng Tây",
    ]
    session.flush()
    assert _counts(session) == before
    assert session.exec(select(Unit).where(Unit.code == "07998")).first() is None
    assert session.get(Room, scene.room_a.id).unit_id == scene.a.id


def test_merge_moves_rooms_and_endpoints_to_the_successor_and_keeps_the_former_units(
        session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    meetings_before = _counts(session)["occurrences"]
    _merge(session, settings, scene)
    succ = session.exec(select(Unit).where(Unit.code == "07998")).one()
    assert (succ.name, succ.division_type, succ.parent_id) == ("Xã Đoan Hùng Tây", "xã", scene.province.id)
    assert [(r.name, r.unit_id) for r in session.exec(select(Room).where(Room.unit_id == succ.id).order_by(Room.id))] \
        == [("Điểm cầu UBND xã Bằng Luân", succ.id), ("Điểm cầu UBND xã Chí Đám", succ.id)]
    assert session.get(Endpoint, scene.ep_a.id).room_id == scene.room_a.id  # endpoints move with their rooms
    assert [(lt.unit_id, lt.valid_to, lt.successor_id) for lt in session.exec(
        select(UnitLifetime).where(UnitLifetime.successor_id == succ.id).order_by(UnitLifetime.unit_id))] \
        == [(scene.a.id, EFFECTIVE, succ.id), (scene.b.id, EFFECTIVE, succ.id)]
    assert session.get(UnitLifetime, succ.id).valid_from == EFFECTIVE
    assert session.get(Unit, scene.a.id).name == "Xã Bằng Luân"  # nothing is lost
    assert _counts(session)["occurrences"] == meetings_before
    assert session.exec(select(UserUnit.unit_id).where(UserUnit.user_id == scene.operator_id)
                        .order_by(UserUnit.unit_id)).all() == sorted([scene.a.id, succ.id])
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "unit.merged")).one()
    assert (entry.user_id, entry.details["successor"]["name"], [s["code"] for s in entry.details["sources"]]) \
        == (scene.admin_id, "Xã Đoan Hùng Tây", ["07996", "07999"])


def test_merge_into_a_unit_with_a_room_of_the_same_name_renames_the_moved_room_and_keeps_its_old_name(
        session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    doan_hung = _unit(session, "Xã Đoan Hùng")
    make_room(session, doan_hung, name="Điểm cầu UBND xã Bằng Luân")
    unit_changes.merge(session, settings, _admin(session, scene), ["07996"], doan_hung.code, effective=EFFECTIVE)
    assert session.get(Room, scene.room_a.id).name == "Điểm cầu UBND xã Bằng Luân (Xã Bằng Luân)"
    history = session.exec(select(RoomUnit).where(RoomUnit.room_id == scene.room_a.id)).one()
    assert (history.unit_id, history.name, history.valid_until) == (scene.a.id, "Điểm cầu UBND xã Bằng Luân", EFFECTIVE)


def test_successor_report_before_the_merge_equals_the_sum_of_the_two_former_units(
        session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    before = _rows(_report(session, settings, scene))
    a, b = before["Xã Bằng Luân"], before["Xã Chí Đám"]
    # M1 2 h and three weekly briefings of 1 h for both, M2 1.5 h for Bằng Luân only; calls on M1 and M2.
    assert a == {"meetings": 5, "cancelled": 0, "booked_hours": 6.5, "connected_hours": 3.0, "sites_invited": 5,
                 "sites_connected": 2, "late_joins": 1, "faults": 0}
    assert b == {"meetings": 4, "cancelled": 0, "booked_hours": 5.0, "connected_hours": 0.67, "sites_invited": 4,
                 "sites_connected": 1, "late_joins": 1, "faults": 0}
    _merge(session, settings, scene)
    succ = session.exec(select(Unit).where(Unit.code == "07998")).one()
    after = _rows(_report(session, settings, scene))
    assert after["Xã Bằng Luân"] == a and after["Xã Chí Đám"] == b  # former units keep their own rows
    assert "Xã Đoan Hùng Tây" not in after  # nothing of its own before it existed
    rolled = _report(session, settings, scene, unit_id=succ.id, rollup=True)
    assert [r["group"]["name"] for r in rolled["rows"]] == ["Xã Đoan Hùng Tây"]
    assert _rows(rolled)["Xã Đoan Hùng Tây"] == {k: round(a[k] + b[k], 2) for k in ADDITIVE}
    whole = _rows(_report(session, settings, scene, rollup=True))
    assert whole["Xã Đoan Hùng Tây"] == {k: round(a[k] + b[k], 2) for k in ADDITIVE}
    assert "Xã Bằng Luân" not in whole and whole["Phú Thọ"] == before["Phú Thọ"]


def test_rollup_needs_unit_grouping(session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    with pytest.raises(ConfsvcError) as info:
        _report(session, settings, scene, group_by=GroupBy.room, rollup=True)
    assert info.value.code == "rollup_needs_unit_grouping"


def test_feed_fetched_before_and_after_the_merge_keeps_its_past_events_text(
        session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    token, _ = create_feed_token(session, _admin(session, scene), scope=FeedScope.province,
                                 scope_id=scene.province.id)
    session.commit()
    first = feeds.feed(session, settings, token, base_url="https://lichhop.phutho.gov.vn", now=NOW).body
    _merge(session, settings, scene)
    session.commit()
    second = feeds.feed(session, settings, token, base_url="https://lichhop.phutho.gov.vn", now=NOW).body
    merged_at = unit_history.midnight_utc(EFFECTIVE, ZONE)
    past_before, past_after = _past_events(first, merged_at), _past_events(second, merged_at)
    assert len(past_before) == 5  # two meetings and three weekly briefings in November
    assert past_after == past_before
    # Byte for byte: every VEVENT of the first feed is in the second unchanged (the series' two occurrences
    # after the merge are new exceptions with the new names).
    assert set(_vevents(first)) <= set(_vevents(second))
    assert len(_vevents(second)) == len(_vevents(first)) + 2
    briefing = past_before[local(11, 30, 8).isoformat()]
    assert briefing[1] == "Phòng họp trực tuyến UBND tỉnh Phú Thọ, Phú Thọ"
    assert "Điểm cầu UBND xã Bằng Luân, Xã Bằng Luân" in briefing[2]
    assert "Điểm cầu UBND xã Chí Đám, Xã Chí Đám" in briefing[2]
    assert briefing[3] == ("Phòng họp trực tuyến UBND tỉnh Phú Thọ, Phú Thọ", "Điểm cầu UBND xã Bằng Luân, Xã Bằng Luân",
                           "Điểm cầu UBND xã Chí Đám, Xã Chí Đám")
    later = [v for k, v in _past_events(second, local(12, 31, 0)).items() if k not in past_after]
    assert [v[3] for v in later] == [("Phòng họp trực tuyến UBND tỉnh Phú Thọ, Phú Thọ",
                                      "Điểm cầu UBND xã Bằng Luân, Xã Đoan Hùng Tây",
                                      "Điểm cầu UBND xã Chí Đám, Xã Đoan Hùng Tây")] * 2
    assert all("Xã Đoan Hùng Tây" in v[2] and "Xã Chí Đám," not in v[2] for v in later)


def test_a_new_room_or_endpoint_on_a_merged_units_code_is_refused_naming_the_successor(
        session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    _merge(session, settings, scene)
    principal = _admin(session, scene)
    with pytest.raises(unit_history.UnitMerged) as info:
        inventory.create_room(session, principal, endpoint_schemas.RoomCreate(unit_id=scene.a.id, name="Hội trường"))
    assert info.value.detail == ("Đơn vị «Xã Bằng Luân» đã sáp nhập vào «Xã Đoan Hùng Tây» (mã 07998) từ ngày "
                                 "01/12/2026; hãy chọn «Xã Đoan Hùng Tây».")
    assert (info.value.status_code, info.value.extra["successor_code"]) == (409, "07998")
    csv = ("serial,unit_code,room_name,vendor,model,protocol,dial_address\n"
           "PT-0001,07996,Hội trường xã,Poly,G7500,sip,sip:hoitruong@vc.phutho.gov.vn\n").encode()
    with pytest.raises(ConfsvcError) as csv_info:
        import_endpoints(session, principal, csv)
    assert csv_info.value.extra["errors"][0]["faults"][0]["code"] == "unit_merged"
    with pytest.raises(unit_history.UnitMerged):  # merging a former unit again
        unit_changes.merge(session, settings, principal, ["07996"], "07969", effective=EFFECTIVE)


# ---------------------------------------------------------------- rename


def test_rename_keeps_the_old_name_on_past_occurrences(session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    token, _ = create_feed_token(session, _admin(session, scene), scope=FeedScope.room, scope_id=scene.room_b.id)
    session.commit()
    first = feeds.feed(session, settings, token, base_url="https://lichhop.phutho.gov.vn", now=NOW).body
    out = unit_changes.rename(session, settings, _admin(session, scene), "07999", name="Xã Chí Đám Mới",
                              effective=EFFECTIVE)
    session.commit()
    assert out == {"id": scene.b.id, "code": "07999", "name": "Xã Chí Đám", "new_code": "07999",
                   "new_name": "Xã Chí Đám Mới", "effective": "2026-12-01"}
    assert session.get(Unit, scene.b.id).name == "Xã Chí Đám Mới"
    old = session.exec(select(UnitName).where(UnitName.unit_id == scene.b.id)).one()
    assert (old.name, old.code, old.valid_until) == ("Xã Chí Đám", "07999", EFFECTIVE)
    second = feeds.feed(session, settings, token, base_url="https://lichhop.phutho.gov.vn", now=NOW).body
    merged_at = unit_history.midnight_utc(EFFECTIVE, ZONE)
    assert _past_events(second, merged_at) == _past_events(first, merged_at)
    assert all(v[3][2] == "Điểm cầu UBND xã Chí Đám, Xã Chí Đám" for v in _past_events(second, merged_at).values()
               if len(v[3]) == 3)
    later = [v[3] for k, v in _past_events(second, local(12, 31, 0)).items() if k >= local(12, 1, 0).isoformat()]
    assert later == [("Phòng họp trực tuyến UBND tỉnh Phú Thọ, Phú Thọ", "Điểm cầu UBND xã Bằng Luân, Xã Bằng Luân",
                      "Điểm cầu UBND xã Chí Đám, Xã Chí Đám Mới")] * 2
    names = [r["group"]["name"] for r in _report(session, settings, scene)["rows"]]
    assert "Xã Chí Đám" in names and "Xã Chí Đám Mới" not in names


# ---------------------------------------------------------------- a newer official list


def test_import_diff_writes_nothing_without_confirmation(session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    newer = ("code,name,division_type\n" + "\n".join(
        f"{u.code},{u.name},{u.division_type}" for u in session.exec(
            select(Unit).where(Unit.parent_id == scene.province.id, Unit.code.not_in(["07996", "07999"]))
            .order_by(Unit.code)))
        + "\n07998,Xã Đoan Hùng Tây,xã\n").replace("07969,Xã Đoan Hùng,xã", "07969,Xã Đoan Hùng Đông,xã")
    before = _counts(session)
    diff = diff_list(session, "25", entries_from_file(newer.encode("utf-8-sig")))
    assert diff.lines() == [
        "Phú Thọ: 1 thêm mới, 1 đổi tên, 2 sáp nhập/bãi bỏ",
        "  + 07998 Xã Đoan Hùng Tây",
        "  ~ 07969 Xã Đoan Hùng → Xã Đoan Hùng Đông",
        "  - 07996 Xã Bằng Luân (1 điểm cầu: cần sáp nhập vào đơn vị kế thừa trước)",
        "  - 07999 Xã Chí Đám (1 điểm cầu: cần sáp nhập vào đơn vị kế thừa trước)",
    ]
    session.flush()
    assert _counts(session) == before
    unit_changes.apply_list(session, settings, _admin(session, scene), diff, effective=EFFECTIVE)
    assert _unit(session, "Xã Đoan Hùng Đông").code == "07969"
    assert _unit(session, "Xã Đoan Hùng Tây").code == "07998"
    assert session.get(UnitLifetime, scene.a.id) is None  # a unit with rooms waits for its merge
    assert diff_list(session, "25", entries_from_file(newer.encode())).lines()[0] == \
        "Phú Thọ: 0 thêm mới, 0 đổi tên, 2 sáp nhập/bãi bỏ"


def test_package_list_matches_a_fresh_import(session: Session) -> None:
    import_province(session, "25")
    assert not diff_list(session, "Phú Thọ")


# ---------------------------------------------------------------- API


def test_merge_api_is_admin_only_and_its_dry_run_writes_nothing(client, engine, settings: Settings) -> None:
    from confsvc.db import make_session

    with make_session(engine) as session:
        scene = build(session, settings)
        secretariat = make_user(session, Role.secretariat)
        admin_h = bearer(session, session.get(users.User, scene.admin_id))
        secretariat_h = bearer(session, secretariat)
        session.commit()
        before = _counts(session)
    body = {"units": ["07996", "07999"], "successor_code": "07998", "successor_name": "Xã Đoan Hùng Tây",
            "effective": "2026-12-01", "dry_run": True}
    refused = client.post("/api/v1/units/merge", json=body, headers=secretariat_h)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_role")
    dry = client.post("/api/v1/units/merge", json=body, headers=admin_h)
    assert dry.status_code == 200
    assert (dry.json()["dry_run"], [r["name"] for r in dry.json()["rooms"]], dry.json()["successor"]["new"]) == \
        (True, ["Điểm cầu UBND xã Bằng Luân", "Điểm cầu UBND xã Chí Đám"], True)
    with make_session(engine) as session:
        assert _counts(session) == before
    done = client.post("/api/v1/units/merge", json={**body, "dry_run": False}, headers=admin_h)
    assert done.status_code == 200
    again = client.post("/api/v1/units/merge", json={**body, "dry_run": False}, headers=admin_h)
    assert (again.status_code, again.json()["code"]) == (409, "unit_merged")
    audit = client.get("/api/v1/audit", params={"action": "unit.merged"}, headers=admin_h).json()
    assert audit["total"] == 1
    rename = client.post("/api/v1/units/07969/rename", json={"name": "Xã Đoan Hùng Đông", "effective": "2026-12-01"},
                         headers=admin_h)
    assert (rename.status_code, rename.json()["new_name"]) == (200, "Xã Đoan Hùng Đông")


def test_merge_needs_the_manage_inventory_capability(session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    operator = users.principal_for(session, session.get(users.User, scene.operator_id))
    with pytest.raises(Forbidden):
        unit_changes.merge(session, settings, operator, ["07996"], "07969", effective=EFFECTIVE, dry_run=True)


# ---------------------------------------------------------------- web


def test_unit_page_shows_the_merge_and_past_meeting_page_keeps_the_former_names(client, engine,
                                                                                 settings: Settings) -> None:
    from confsvc.db import make_session
    from confsvc.scheduling.models import Meeting
    from tests.web_support import PASSWORD, login

    with make_session(engine) as session:
        scene = build(session, settings)
        make_user(session, Role.admin, username="quantri", password=PASSWORD)
        m1 = session.exec(select(Meeting).where(Meeting.title == "Hội nghị triển khai nhiệm vụ tháng 11")).one()
        _merge(session, settings, scene)
        session.commit()
        a_id, m1_id = scene.a.id, m1.id
    login(client, "quantri")
    page = client.get(f"/inventory/units/{a_id}/edit")
    assert page.status_code == 200
    assert "Đã sáp nhập vào Xã Đoan Hùng Tây từ ngày 01/12/2026" in page.text
    assert "Xã Bằng Luân (đã sáp nhập vào Xã Đoan Hùng Tây)" in client.get("/inventory").text
    participants = client.get(f"/meetings/{m1_id}/participants").text
    assert "<td>Xã Bằng Luân</td>" in participants and "<td>Xã Chí Đám</td>" in participants
    assert "Xã Đoan Hùng Tây" not in participants


# ---------------------------------------------------------------- CLI


def _cli(args: list[str], db_url: str, cwd) -> str:
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONFSVC_")} | {
        "CONFSVC_DATABASE_URL": db_url}
    done = subprocess.run([sys.executable, "-m", "confsvc.cli", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cli_merge_dry_run_writes_nothing_and_import_shows_the_difference_before_yes(
        engine, db_url: str, settings: Settings, tmp_path) -> None:
    from confsvc.db import make_session

    with make_session(engine) as session:
        build(session, settings)
        session.commit()
        before = _counts(session)
    merge = ["units", "merge", "07996", "07999", "--into", "07998", "--name", "Xã Đoan Hùng Tây",
             "--effective", "2026-12-01"]
    dry = _cli([*merge, "--dry-run"], db_url, tmp_path)
    assert dry.splitlines()[0] == ("Sáp nhập Xã Bằng Luân (07996), Xã Chí Đám (07999) vào Xã Đoan Hùng Tây "
                                   "(07998, đơn vị mới) từ ngày 01/12/2026")
    assert dry.splitlines()[-1] == "2 rooms, 2 endpoints, 1 users (dry run: nothing written)"
    with make_session(engine) as session:
        assert _counts(session) == before
    assert _cli(merge, db_url, tmp_path).splitlines()[-1] == "2 rooms, 2 endpoints, 1 users moved"
    shown = _cli(["units", "import", "25"], db_url, tmp_path)
    assert shown.splitlines() == ["Phú Thọ: 0 thêm mới, 0 đổi tên, 1 sáp nhập/bãi bỏ",
                                  "  - 07998 Xã Đoan Hùng Tây (2 điểm cầu: cần sáp nhập vào đơn vị kế thừa trước)",
                                  "nothing written (run again with --yes to write this difference)"]
    renamed = _cli(["units", "rename", "07998", "Xã Hùng Xuyên", "--new-code", "07997", "--effective", "2027-01-01"],
                   db_url, tmp_path)
    assert renamed.strip() == "07998 Xã Đoan Hùng Tây → 07997 Xã Hùng Xuyên từ ngày 2027-01-01"


def test_room_and_endpoint_report_rows_before_the_merge_show_the_names_then(
        session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    doan_hung = _unit(session, "Xã Đoan Hùng")
    make_room(session, doan_hung, name="Điểm cầu UBND xã Bằng Luân")
    unit_changes.merge(session, settings, _admin(session, scene), ["07996"], doan_hung.code, effective=EFFECTIVE)
    assert session.get(Room, scene.room_a.id).name == "Điểm cầu UBND xã Bằng Luân (Xã Bằng Luân)"
    span = {"from_date": date(2026, 11, 1), "to_date": date(2027, 1, 1)}
    rooms = [(r["period_start"].isoformat(), r["group"]["name"], r["group"]["unit_name"], r["group"]["unit_code"],
              r["group"]["parent_name"])
             for r in _report(session, settings, scene, group_by=GroupBy.room, **span)["rows"]
             if r["group"]["id"] == scene.room_a.id]
    assert rooms == [("2026-11-01", "Điểm cầu UBND xã Bằng Luân", "Xã Bằng Luân", "07996", "Phú Thọ"),
                     ("2026-12-01", "Điểm cầu UBND xã Bằng Luân (Xã Bằng Luân)", "Xã Đoan Hùng", doan_hung.code,
                      "Phú Thọ")]
    endpoints = [(r["period_start"].isoformat(), r["group"]["name"], r["group"]["room_name"], r["group"]["unit_name"])
                 for r in _report(session, settings, scene, group_by=GroupBy.endpoint, **span)["rows"]
                 if r["group"]["id"] == scene.ep_a.id]
    assert endpoints == [("2026-11-01", "Thiết bị xã Bằng Luân", "Điểm cầu UBND xã Bằng Luân", "Xã Bằng Luân"),
                         ("2026-12-01", "Thiết bị xã Bằng Luân", "Điểm cầu UBND xã Bằng Luân (Xã Bằng Luân)",
                          "Xã Đoan Hùng")]
    # a room that did not move keeps its labels
    b_rows = {r["group"]["unit_name"] for r in _report(session, settings, scene, group_by=GroupBy.room, **span)["rows"]
              if r["group"]["id"] == scene.room_b.id}
    assert b_rows == {"Xã Chí Đám"}


def test_room_report_rows_before_a_rename_show_the_units_name_then(session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    unit_changes.rename(session, settings, _admin(session, scene), "07999", name="Xã Chí Đám Mới", effective=EFFECTIVE)
    rows = [(r["period_start"].isoformat(), r["group"]["name"], r["group"]["unit_name"])
            for r in _report(session, settings, scene, group_by=GroupBy.room, from_date=date(2026, 11, 1),
                             to_date=date(2027, 1, 1))["rows"] if r["group"]["id"] == scene.room_b.id]
    assert rows == [("2026-11-01", "Điểm cầu UBND xã Chí Đám", "Xã Chí Đám"),
                    ("2026-12-01", "Điểm cầu UBND xã Chí Đám", "Xã Chí Đám Mới")]


def test_invitation_of_a_meeting_before_the_merge_lists_sites_under_the_names_then(
        session: Session, settings: Settings) -> None:
    scene = build(session, settings)
    doan_hung = _unit(session, "Xã Đoan Hùng")
    make_room(session, doan_hung, name="Điểm cầu UBND xã Bằng Luân")
    unit_changes.merge(session, settings, _admin(session, scene), ["07996"], doan_hung.code, effective=EFFECTIVE)
    unit_changes.rename(session, settings, _admin(session, scene), "07999", name="Xã Chí Đám Mới", effective=EFFECTIVE)
    first = session.exec(select(Meeting).where(Meeting.title == "Hội nghị triển khai nhiệm vụ tháng 11")).one()
    letter = invitation.build(session, first, dial_mode="dial_in", now=NOW)
    sites = ["- Xã Bằng Luân: Điểm cầu UBND xã Bằng Luân.", "- Xã Chí Đám: Điểm cầu UBND xã Chí Đám."]
    assert [line for line in letter.body() if line.startswith("- Xã")] == sites
    assert letter.chair_line == "2. Điểm cầu chủ trì: Phòng họp trực tuyến UBND tỉnh Phú Thọ (Phú Thọ)."
    paragraphs = [p.text for p in Document(io.BytesIO(invitation_docx.render(letter))).paragraphs]
    assert all(line in paragraphs for line in sites)  # the renderers lay out the same body
    # the weekly briefing's occurrence after the merge: the names now
    weekly = session.exec(select(Meeting).where(Meeting.title.startswith("Giao ban"))).one()
    after = session.exec(select(Occurrence).where(Occurrence.meeting_id == weekly.id,
                                                  Occurrence.start >= local(12, 1, 0))
                         .order_by(Occurrence.start)).first()
    later = invitation.build(session, weekly, dial_mode="dial_in", occurrence_id=after.id, now=NOW)
    assert [(s.unit_name, s.room_names) for s in later.sites] == [
        ("Xã Chí Đám Mới", ["Điểm cầu UBND xã Chí Đám"]), ("Xã Đoan Hùng", ["Điểm cầu UBND xã Bằng Luân (Xã Bằng Luân)"])]
    before = session.exec(select(Occurrence).where(Occurrence.meeting_id == weekly.id)
                          .order_by(Occurrence.start)).first()
    earlier = invitation.build(session, weekly, dial_mode="dial_in", occurrence_id=before.id, now=NOW)
    assert [(s.unit_name, s.room_names) for s in earlier.sites] == [
        ("Xã Bằng Luân", ["Điểm cầu UBND xã Bằng Luân"]), ("Xã Chí Đám", ["Điểm cầu UBND xã Chí Đám"])]


def test_statistics_page_rollup_option_rolls_former_units_into_the_successor_and_carries_into_the_exports(
        client, engine, settings: Settings) -> None:
    import re

    from confsvc.db import make_session
    from tests.web_support import PASSWORD, login

    with make_session(engine) as session:
        scene = build(session, settings)
        make_user(session, Role.admin, username="quantri", password=PASSWORD)
        _merge(session, settings, scene)
        session.commit()
    login(client, "quantri")
    form = {"group_by": "unit", "period": "month", "from": "01/11/2026", "to": "30/11/2026"}
    plain = client.get("/statistics", params=form).text
    assert 'name="rollup" value="successor" aria-describedby="rollup-hint">' in plain  # offered, not checked
    assert "Gộp đơn vị cũ vào đơn vị kế thừa" in plain and "Chỉ áp dụng khi nhóm theo đơn vị" in plain
    names = set(re.findall(r'<tr><th scope="row">([^<]+)</th><td class="nowrap">11/2026', plain))
    assert {"Xã Bằng Luân", "Xã Chí Đám"} <= names and "Xã Đoan Hùng Tây" not in names

    rolled = client.get("/statistics", params={**form, "rollup": "successor"})
    assert rolled.status_code == 200
    assert 'value="successor" aria-describedby="rollup-hint" checked>' in rolled.text
    names = set(re.findall(r'<tr><th scope="row">([^<]+)</th><td class="nowrap">11/2026', rolled.text))
    assert "Xã Đoan Hùng Tây" in names and not {"Xã Bằng Luân", "Xã Chí Đám"} & names
    hrefs = {kind: re.search(rf'href="([^"]+usage\.{kind}[^"]*)"', rolled.text).group(1).replace("&amp;", "&")
             for kind in ("csv", "xlsx")}
    assert hrefs["csv"] == "/api/v1/stats/usage.csv?group_by=unit&period=month&from=2026-11-01&to=2026-12-01" \
                           "&rollup=successor"
    assert hrefs["xlsx"] == hrefs["csv"].replace("usage.csv", "usage.xlsx")
    exported = client.get(hrefs["csv"]).content.decode("utf-8-sig")
    assert "Xã Đoan Hùng Tây" in exported and "Xã Bằng Luân" not in exported
    assert client.get(hrefs["xlsx"]).status_code == 200
    presets = [h.replace("&amp;", "&") for h in re.findall(r'href="(/statistics\?[^"]+)"', rolled.text)]
    assert presets and all(h.endswith("&rollup=successor") for h in presets)

    # other groupings ignore it (the API refuses rollup for them): the page shows the room report, no rollup link
    rooms = client.get("/statistics", params={**form, "group_by": "room", "rollup": "successor"})
    assert rooms.status_code == 200
    assert "rollup=successor" not in re.search(r'href="([^"]+usage\.csv[^"]*)"', rooms.text).group(1)
