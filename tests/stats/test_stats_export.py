"""``GET /api/v1/stats/usage`` as JSON, CSV and XLSX on SQLite and PostgreSQL: the same numbers in each,
Vietnamese headers and names intact, dates dd/mm/yyyy, a totals line, operators limited to their units."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.endpoints.models import Unit
from confsvc.stats import export
from confsvc.users.models import Role
from tests import stats_scenario as sc
from tests.factories import bearer, make_user

QUERY = "group_by=room&period=day&from=2026-10-31&to=2026-11-03"
FIGURE_KEYS = [k for k, _, _ in export.FIGURE_COLUMNS]


def _setup(engine: Engine, settings: Settings):
    with make_session(engine) as session:
        s = sc.build(session, settings)
        headers = {"viewer": bearer(session, make_user(session, Role.viewer)),
                   "operator": bearer(session, make_user(session, Role.operator,
                                                         units=[session.get(Unit, s.commune)]))}
        session.commit()
    return s, headers


def test_xlsx_has_the_json_numbers_and_vietnamese_text(client: TestClient, engine: Engine, settings: Settings):
    s, h = _setup(engine, settings)
    data = client.get(f"/api/v1/stats/usage?{QUERY}", headers=h["viewer"])
    assert data.status_code == 200, data.text
    report = data.json()
    assert (report["from"], report["to"], len(report["rows"])) == ("2026-10-31", "2026-11-03", 5)

    r = client.get(f"/api/v1/stats/usage.xlsx?{QUERY}", headers=h["viewer"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    # Both dates inclusive: the report ends on 02/11 (``to`` 03/11 is exclusive).
    assert 'filename="thong-ke-su-dung_room_20261031-20261102.xlsx"' in r.headers["content-disposition"]
    workbook = load_workbook(io.BytesIO(r.content))
    try:
        sheet = workbook["Thống kê sử dụng"]
        lines = list(sheet.iter_rows(values_only=True))
    finally:
        workbook.close()
    assert list(lines[0]) == export.headers("room")
    assert lines[0][:6] == ("Điểm cầu", "Mã đơn vị", "Đơn vị hành chính", "Đơn vị cấp trên", "Từ ngày", "Đến ngày")
    assert {"Số giờ đặt lịch", "Số giờ kết nối", "Tỷ lệ điểm cầu tham dự", "Hiệu suất sử dụng phòng họp"} <= set(
        lines[0])
    body, totals = lines[1:-1], lines[-1]
    assert [list(line[6:]) for line in body] == [[row[k] for k in FIGURE_KEYS] for row in report["rows"]]
    assert [line[0] for line in body] == [row["group"]["name"] for row in report["rows"]]
    assert body[0][:6] == ("Phòng họp tỉnh", "97", "Tỉnh Thử Nghiệm", None, datetime(2026, 10, 31),
                           datetime(2026, 10, 31))
    commune_code = next(r["group"]["unit_code"] for r in report["rows"] if r["group"]["id"] == s.r2)
    assert body[3][:4] == ("Điểm cầu xã Đồi Chè", commune_code, "Xã Đồi Chè", "Tỉnh Thử Nghiệm")
    assert list(totals[6:]) == [report["totals"][k] for k in FIGURE_KEYS]
    assert totals[:6] == (export.TOTALS_LABEL, None, None, None, datetime(2026, 10, 31), datetime(2026, 11, 2))
    workbook = load_workbook(io.BytesIO(r.content))
    try:
        cell = workbook.active["E2"]
        assert (cell.number_format, workbook.active["M2"].number_format) == ("DD/MM/YYYY", "0.00%")
    finally:
        workbook.close()


def test_csv_keeps_vietnamese_text_and_dates_dd_mm_yyyy(client: TestClient, engine: Engine, settings: Settings):
    s, h = _setup(engine, settings)
    r = client.get(f"/api/v1/stats/usage.csv?{QUERY}", headers=h["viewer"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == export.headers("room")
    assert rows[1][:9] == ["Phòng họp tỉnh", "97", "Tỉnh Thử Nghiệm", "", "31/10/2026", "31/10/2026", "1", "0",
                           "2.0"]
    assert rows[4][1:6] != [] and rows[4][0] == "Điểm cầu xã Đồi Chè"
    assert rows[4][2:6] == ["Xã Đồi Chè", "Tỉnh Thử Nghiệm", "31/10/2026", "31/10/2026"]
    assert rows[4][9:15] == ["1.33", "1", "1", "1.0", "1", "0"]
    assert rows[-1][:10] == [export.TOTALS_LABEL, "", "", "", "31/10/2026", "02/11/2026", "2", "1", "5.0", "5.33"]


def test_operator_report_is_limited_to_their_units(client: TestClient, engine: Engine, settings: Settings):
    s, h = _setup(engine, settings)
    report = client.get(f"/api/v1/stats/usage?{QUERY}", headers=h["operator"]).json()
    assert {row["group"]["id"] for row in report["rows"]} == {s.r2}
    assert report["totals"]["connected_hours"] == 2.33
    assert client.get(f"/api/v1/stats/usage?{QUERY}&unit_id={s.province}",
                      headers=h["operator"]).json()["code"] == "forbidden_scope"
    bridge = client.get("/api/v1/stats/usage.csv?group_by=bridge&from=2026-10-31&to=2026-11-03",
                        headers=h["operator"])
    assert bridge.status_code == 403
    assert client.get(f"/api/v1/stats/usage?{QUERY}").status_code == 401
    bad = client.get("/api/v1/stats/usage?group_by=room&from=2026-11-03&to=2026-10-31", headers=h["viewer"])
    assert (bad.status_code, bad.json()["code"]) == (422, "empty_period")
    assert client.get("/api/v1/stats/usage?group_by=city&from=2026-10-31&to=2026-11-03",
                      headers=h["viewer"]).status_code == 422


def test_openapi_documents_each_figure(client: TestClient):
    doc = client.get("/openapi.json").json()
    description = doc["paths"]["/api/v1/stats/usage"]["get"]["description"]
    for key in ("booked_hours", "connected_hours", "attendance_rate", "late_joins", "faults", "port_peak",
                "room_utilisation"):
        assert f"**{key}**" in description


FORMULA = '=HYPERLINK("http://evil.example/","Bấm vào đây")'


def _rename_first_room(engine: Engine, s) -> None:
    from confsvc.endpoints.models import Room

    with make_session(engine) as session:
        room = session.get(Room, s.r1)
        room.name = FORMULA
        session.add(room)
        session.commit()


def test_formula_room_name_is_a_string_cell_not_a_formula_in_the_xlsx(client: TestClient, engine: Engine,
                                                                     settings: Settings):
    s, h = _setup(engine, settings)
    _rename_first_room(engine, s)
    r = client.get(f"/api/v1/stats/usage.xlsx?{QUERY}", headers=h["viewer"])
    assert r.status_code == 200
    workbook = load_workbook(io.BytesIO(r.content))
    try:
        cell = workbook.active["A2"]  # group_by=room: the room's name first, then its unit's code and name
        assert (cell.value, cell.data_type, cell.quotePrefix) == (FORMULA, "s", True)
        assert [c.value for c in workbook.active[2]][1:3] == ["97", "Tỉnh Thử Nghiệm"]
        assert [c.data_type for c in workbook.active[2]][:3] == ["s", "s", "s"]
        assert all(c.data_type != "f" for row in workbook.active.iter_rows() for c in row)
    finally:
        workbook.close()


def test_formula_room_name_is_quoted_in_the_usage_csv(client: TestClient, engine: Engine, settings: Settings):
    s, h = _setup(engine, settings)
    _rename_first_room(engine, s)
    r = client.get(f"/api/v1/stats/usage.csv?{QUERY}", headers=h["viewer"])
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[1][:3] == ["'" + FORMULA, "97", "Tỉnh Thử Nghiệm"]


def test_xlsx_by_unit_names_the_official_code_unit_and_parent_not_the_internal_id(
        client: TestClient, engine: Engine, settings: Settings):
    """Issue 13: column "Mã" held the internal id and "Thuộc" the unit's own code."""
    s, h = _setup(engine, settings)
    r = client.get("/api/v1/stats/usage.xlsx?group_by=unit&period=month&from=2026-11-01&to=2026-12-01",
                   headers=h["viewer"])
    assert r.status_code == 200
    assert 'filename="thong-ke-su-dung_unit_20261101-20261130.xlsx"' in r.headers["content-disposition"]
    workbook = load_workbook(io.BytesIO(r.content))
    try:
        lines = list(workbook.active.iter_rows(values_only=True))
    finally:
        workbook.close()
    assert lines[0][:5] == ("Mã đơn vị", "Đơn vị hành chính", "Đơn vị cấp trên", "Từ ngày", "Đến ngày")
    with make_session(engine) as session:
        commune_code = session.get(Unit, s.commune).code
    assert [line[:3] for line in lines[1:-1]] == [("97", "Tỉnh Thử Nghiệm", None),
                                                  (commune_code, "Xã Đồi Chè", "Tỉnh Thử Nghiệm")]
    assert lines[-1][0] == "Tổng cộng (mỗi buổi họp, điểm cầu tính một lần; không phải tổng các dòng)"
