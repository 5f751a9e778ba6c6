"""Audit log to read (nhật ký hệ thống): API filters and paging, permissions, CSV/XLSX exports
(formula-like text neutralised), and the web page."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.stats import audit_export
from confsvc.users.models import Role
from tests.factories import bearer, make_bridge, make_endpoint, make_room, make_unit, make_user, next_monday_local
from tests.web_support import login

FORMULA_TITLE = "=HYPERLINK(\"http://x.invalid\",\"Bấm\")"


def _setup(engine: Engine) -> dict:
    with make_session(engine) as session:
        make_bridge(session)
        north, south = make_unit(session, name="Xã Đoan Hùng"), make_unit(session, name="Phường Việt Trì")
        rooms = {"north": make_room(session, north), "south": make_room(session, south)}
        for room in rooms.values():
            make_endpoint(session, room)
        users = {"lan": make_user(session, Role.secretariat, full_name="Trần Thị Lan", username="lan"),
                 "minh": make_user(session, Role.secretariat, full_name="Phạm Văn Minh", username="minh"),
                 "admin": make_user(session, Role.admin, username="quantri", password="mật-khẩu-quản-trị"),
                 "viewer": make_user(session, Role.viewer),
                 "operator": make_user(session, Role.operator, units=[north])}
        h = {k: bearer(session, u) for k, u in users.items()}
        session.commit()
        return {"h": h, "rooms": {k: r.id for k, r in rooms.items()}, "units": {"north": north.id, "south": south.id},
                "users": {k: u.id for k, u in users.items()}}


def _history(client: TestClient, d: dict) -> dict[str, int]:
    """Lan books in the north and cancels it; Minh books in the south (title like a formula) and edits it."""
    t = next_monday_local()

    def book(who: str, room: str, title: str, hours: int) -> int:
        r = client.post("/api/v1/meetings", headers=d["h"][who], json={
            "title": title, "chair_room_id": d["rooms"][room], "start": (t + timedelta(hours=hours)).isoformat(),
            "end": (t + timedelta(hours=hours + 1)).isoformat()})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    north = book("lan", "north", "Giao ban xã Đoan Hùng", 0)
    assert client.post(f"/api/v1/meetings/{north}/cancel", headers=d["h"]["lan"]).status_code == 200
    south = book("minh", "south", FORMULA_TITLE, 2)
    assert client.patch(f"/api/v1/meetings/{south}", headers=d["h"]["minh"],
                        json={"description": "Thêm nội dung"}).status_code == 200
    return {"north": north, "south": south}


def _actions(page: dict) -> list[tuple[str, int, str]]:
    return [(e["action"], e["meeting_id"], e["username"]) for e in page["items"]]


def test_audit_api_filters_by_person_meeting_unit_action_and_period(client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    m = _history(client, d)
    h = d["h"]["admin"]
    everything = client.get("/api/v1/audit", headers=h).json()
    assert everything["total"] == 4
    assert _actions(everything) == [("meeting.updated", m["south"], "minh"), ("meeting.created", m["south"], "minh"),
                                    ("meeting.cancelled", m["north"], "lan"), ("meeting.created", m["north"], "lan")]
    first = everything["items"][0]
    # Audit lines also carry the HTTP request's id (X-Request-ID, issue 16 "Operations").
    details = dict(first["details"])
    assert len(details.pop("request_id")) >= 16
    assert (first["user_name"], first["action_label"], first["meeting_title"], details) == (
        "Phạm Văn Minh", "Sửa cuộc họp", FORMULA_TITLE, {"fields": ["description"]})

    def actions(**params) -> list[tuple[str, int, str]]:
        r = client.get("/api/v1/audit", headers=h, params=params)
        assert r.status_code == 200, r.text
        return _actions(r.json())

    assert actions(user_id=d["users"]["lan"]) == [("meeting.cancelled", m["north"], "lan"),
                                                  ("meeting.created", m["north"], "lan")]
    assert actions(meeting_id=m["south"]) == [("meeting.updated", m["south"], "minh"),
                                              ("meeting.created", m["south"], "minh")]
    assert actions(unit_id=d["units"]["north"]) == [("meeting.cancelled", m["north"], "lan"),
                                                    ("meeting.created", m["north"], "lan")]
    assert actions(action="meeting.created") == [("meeting.created", m["south"], "minh"),
                                                 ("meeting.created", m["north"], "lan")]
    now = datetime.now(UTC)
    around_now = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    assert len(actions(**around_now)) == 4
    assert actions(**{"from": (now + timedelta(hours=1)).isoformat()}) == []
    paged = client.get("/api/v1/audit", headers=h, params={"limit": 1, "offset": 1}).json()
    assert (paged["total"], _actions(paged)) == (4, [("meeting.created", m["south"], "minh")])
    backwards = client.get("/api/v1/audit", headers=h, params={"from": now.isoformat(),
                                                               "to": (now - timedelta(days=1)).isoformat()})
    assert (backwards.status_code, backwards.json()["code"]) == (422, "end_not_after_start")


@pytest.mark.parametrize("who", ["viewer", "operator"])
def test_audit_is_refused_to_roles_other_than_admin_and_secretariat(client: TestClient, engine: Engine,
                                                                    who: str) -> None:
    d = _setup(engine)
    for path in ("/api/v1/audit", "/api/v1/audit.csv", "/api/v1/audit.xlsx"):
        r = client.get(path, headers=d["h"][who])
        assert (r.status_code, r.json()["code"]) == (403, "forbidden_role")
    assert client.get("/api/v1/audit", headers=d["h"]["lan"]).status_code == 200


def test_audit_csv_export_neutralises_formula_like_titles(client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    m = _history(client, d)
    r = client.get("/api/v1/audit.csv", headers=d["h"]["lan"], params={"meeting_id": m["south"]})
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == audit_export.HEADERS
    assert [row[1:8] for row in rows[1:]] == [
        ["Phạm Văn Minh", "minh", "Sửa cuộc họp", "meeting.updated", str(m["south"]), "'" + FORMULA_TITLE, ""],
        ["Phạm Văn Minh", "minh", "Đặt lịch họp", "meeting.created", str(m["south"]), "'" + FORMULA_TITLE, ""]]
    assert json.loads(rows[1][8])["fields"] == ["description"]


def test_audit_xlsx_export_keeps_formula_like_titles_as_text(client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    m = _history(client, d)
    r = client.get("/api/v1/audit.xlsx", headers=d["h"]["admin"], params={"user_id": d["users"]["minh"]})
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert sheet.title == "Nhật ký hệ thống"
    assert [c.value for c in sheet[1]] == audit_export.HEADERS
    assert sheet.max_row == 3
    title = sheet.cell(row=2, column=7)
    assert (title.value, title.data_type) == ("'" + FORMULA_TITLE, "s")
    assert (sheet.cell(row=2, column=4).value, sheet.cell(row=2, column=6).value) == ("Sửa cuộc họp", m["south"])


@pytest.mark.pure
@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+84 912", "'+84 912"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("Giao ban", "Giao ban"), (42, 42), (None, None)])
def test_neutralise_prefixes_only_formula_like_text(value, expected) -> None:
    assert audit_export.neutralise(value) == expected


def test_audit_page_shows_filtered_entries_and_export_links(client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    m = _history(client, d)
    login(client, "quantri", "mật-khẩu-quản-trị")
    page = client.get("/audit", params={"user_id": d["users"]["lan"]})
    assert page.status_code == 200
    assert 'href="/audit"' in page.text  # in the navigation
    assert page.text.count(f'<a href="/meetings/{m["north"]}">Giao ban xã Đoan Hùng</a>') == 2
    assert FORMULA_TITLE.replace('"', "&#34;") not in page.text
    assert f'href="/api/v1/audit.csv?user_id={d["users"]["lan"]}"' in page.text
    bad = client.get("/audit", params={"from": "31/02/2026"})
    assert bad.status_code == 200 and "dd/mm/yyyy" in bad.text


def test_bad_audit_and_office_input_is_422_never_500(client: TestClient, engine: Engine) -> None:
    d = _setup(engine)
    h = d["h"]["admin"]
    for path, params in (("/api/v1/audit", {"from": "hôm qua"}), ("/api/v1/audit", {"unit_id": 0}),
                         ("/api/v1/audit.csv", {"action": "x" * 61}), ("/api/v1/site-groups", {"limit": 0}),
                         ("/api/v1/meetings/1/invitation.pdf", {"occurrence_id": 0})):
        r = client.get(path, headers=h, params=params)
        assert r.status_code == 422, (path, params, r.text)
    bad_visibility = client.post("/api/v1/site-groups", headers=h, json={"name": "Nhóm", "visibility": "public"})
    assert bad_visibility.status_code == 422
    extra_field = client.post("/api/v1/site-groups", headers=h, json={"name": "Nhóm", "owner_user_id": 1})
    assert extra_field.status_code == 422


@pytest.mark.pure
def test_every_audited_action_has_a_label_in_the_api_and_on_the_page():
    # The audit page showed "unit.merged" and other codes raw (and its details' English keys) to a
    # Vietnamese reader: every action a service records is named in both tables.
    import re
    from pathlib import Path

    import confsvc
    from confsvc.scheduling import audit_log
    from confsvc.web import audit as audit_page

    pattern = re.compile(r"\baudit\(session, [\w.()]+, \"([a-z_.]+)\"")
    recorded = {m for f in Path(confsvc.__file__).parent.rglob("*.py") for m in pattern.findall(f.read_text("utf-8"))}
    assert {"meeting.created", "unit.merged", "meeting.split"} <= recorded
    assert recorded - set(audit_log.ACTION_LABELS) == set()
    assert recorded - set(audit_page.ACTION_LABELS) == set()
