"""Web pages of meeting requests (issue 15): a requester's booking form submits a request and lists it
under "Yêu cầu của tôi"; the secretariat's queue "Yêu cầu đặt lịch" approves in one click or rejects
with a reason. Vietnamese from the catalog."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.scheduling.models import Meeting, MeetingStatus
from confsvc.scheduling.request_models import MeetingRequest, RequestState
from confsvc.users.models import Role
from tests.factories import make_user, next_monday_local
from tests.web_support import PASSWORD, csrf_of, login, make_province


def _province_with_requester(engine: Engine) -> dict[str, int]:
    with make_session(engine) as session:
        province = make_province(session)
        make_user(session, Role.requester, units=[province.communes[0]], username="xathanhba", password=PASSWORD,
                  full_name="UBND xã Thanh Ba")
        ids = {"own": province.rooms[0].id, "other": province.rooms[1].id, "chair": province.chair.id}
        session.commit()
    return ids


def _form(csrf: str, ids: dict[str, int], **kw) -> dict:
    day = next_monday_local()
    return {"csrf": csrf, "title": "Giao ban xã Thanh Ba", "date": day.strftime("%d/%m/%Y"), "start_time": "08:00",
            "end_time": "09:00", "check_lead_minutes": "30", "chair_room_id": str(ids["own"]),
            "participant_room_ids": [str(ids["other"])], "repeat": "none", **kw}


def test_requester_submits_from_the_booking_form_and_secretariat_approves(client: TestClient,
                                                                         engine: Engine) -> None:
    ids = _province_with_requester(engine)
    login(client, "xathanhba")
    home = client.get("/").text
    assert '<a href="/meetings/new"' in home and "Đăng ký lịch họp" in home and "Yêu cầu của tôi" in home
    form = client.get("/meetings/new")
    assert form.status_code == 200
    assert '<h1>Đăng ký lịch họp</h1>' in form.text and ">Gửi yêu cầu</button>" in form.text
    # Chair rooms: only the requester's commune; participants: every room of the province.
    chair_select = form.text.split('id="chair_room_id"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="(\d+)"', chair_select) == [str(ids["own"])]
    assert f'value="{ids["other"]}"' in form.text.split("</select>", 1)[1]

    sent = client.post("/meetings/new", data=_form(csrf_of(form.text), ids), follow_redirects=False)
    assert sent.status_code == 303, sent.text
    meeting_id = int(sent.headers["location"].rsplit("=", 1)[1])
    assert sent.headers["location"] == f"/requests/mine?submitted={meeting_id}"
    mine = client.get(sent.headers["location"]).text
    assert 'id="request-sent"' in mine
    row = mine.split(f'id="request-{meeting_id}"', 1)[1].split("</tr>", 1)[0]
    assert "Giao ban xã Thanh Ba" in row and "Chờ duyệt" in row
    assert client.get("/requests", follow_redirects=False).headers["location"] == "/requests/mine"

    # Outside their units: refused in words, nothing booked.
    outside = client.post("/meetings/new", data=_form(csrf_of(form.text), ids, chair_room_id=str(ids["chair"]),
                                                      participant_room_ids=[]))
    assert outside.status_code == 422 and "Yêu cầu chưa được gửi:" in outside.text
    assert "Nội dung này nằm ngoài đơn vị bạn phụ trách." in outside.text

    client.cookies.clear()
    login(client, "vanphong")
    queue = client.get("/requests")
    assert queue.status_code == 200 and "<h1>Yêu cầu đặt lịch</h1>" in queue.text
    row = queue.text.split(f'id="request-{meeting_id}"', 1)[1].split("</tr>", 1)[0]
    assert "UBND xã Thanh Ba" in row and ">Duyệt</button>" in row and ">Từ chối</button>" in row
    approved = client.post(f"/requests/{meeting_id}/approve", data={"csrf": csrf_of(queue.text)},
                           follow_redirects=False)
    assert (approved.status_code, approved.headers["location"]) == (303, "/requests")
    assert "Không có yêu cầu nào chờ duyệt." in client.get("/requests").text
    twice = client.post(f"/requests/{meeting_id}/approve", data={"csrf": csrf_of(queue.text)})
    assert twice.status_code == 409 and "Yêu cầu đã được duyệt, bị từ chối hoặc đã hết hạn." in twice.text
    with make_session(engine, write=False) as session:
        assert session.get(Meeting, meeting_id).status is MeetingStatus.confirmed
        assert session.get(MeetingRequest, meeting_id).state is RequestState.approved


def test_secretariat_rejects_with_a_reason_the_requester_reads_it(client: TestClient, engine: Engine) -> None:
    ids = _province_with_requester(engine)
    login(client, "xathanhba")
    form = client.get("/meetings/new")
    sent = client.post("/meetings/new", data=_form(csrf_of(form.text), ids), follow_redirects=False)
    meeting_id = int(sent.headers["location"].rsplit("=", 1)[1])
    client.cookies.clear()
    login(client, "lanhdao")
    assert client.get("/requests").status_code == 403
    client.cookies.clear()
    login(client, "vanphong")
    queue = client.get("/requests")
    no_reason = client.post(f"/requests/{meeting_id}/reject", data={"csrf": csrf_of(queue.text), "reason": ""})
    assert no_reason.status_code == 422 and "Hãy nêu lý do từ chối." in no_reason.text
    rejected = client.post(f"/requests/{meeting_id}/reject",
                           data={"csrf": csrf_of(queue.text), "reason": "Trùng lịch tiếp công dân"},
                           follow_redirects=False)
    assert rejected.status_code == 303
    client.cookies.clear()
    login(client, "xathanhba")
    row = client.get("/requests/mine").text.split(f'id="request-{meeting_id}"', 1)[1].split("</tr>", 1)[0]
    assert "Bị từ chối" in row and "Trùng lịch tiếp công dân" in row
    # The room is free again: the same request can be sent once more.
    again = client.post("/meetings/new", data=_form(csrf_of(client.get("/meetings/new").text), ids),
                        follow_redirects=False)
    assert again.status_code == 303, again.text
