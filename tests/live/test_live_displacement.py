"""Issue 14: a displacement reaches the live channel: the displaced occurrence's room display and the
secretariat board (``/ws/secretariat``) get its ``meeting.updated`` (status tentative, ``displaced``)."""

from __future__ import annotations

from datetime import UTC, timedelta

import httpx

from tests.factories import next_monday_local
from tests.live.test_live_ws import _secret, server, site  # noqa: F401 (fixtures)
from tests.live_support import ThreadServer, recv


def _z(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _until_displaced(ws) -> dict:
    for _ in range(10):
        message = recv(ws)
        if message["type"] == "meeting.updated" and "displaced" in message["data"]:
            return message
    raise AssertionError("no displacement message")


def test_displacement_reaches_the_room_display_and_the_secretariat_board(server: ThreadServer,  # noqa: F811
                                                                         site: dict) -> None:  # noqa: F811
    start = next_monday_local(hour=8)
    when = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    routine = httpx.post(f"{server.base}/api/v1/meetings", headers=site["secretariat"], timeout=10,
                         json={"title": "Giao ban xã", "chair_room_id": site["room"], "check_lead_minutes": 0,
                               **when})
    assert routine.status_code == 201, routine.text
    occ_id = httpx.get(f"{server.base}/api/v1/meetings/{routine.json()['id']}/occurrences",
                       headers=site["secretariat"], timeout=10).json()[0]["id"]
    body = {"title": "Phiên họp Chính phủ", "chair_room_id": site["other"], "participant_room_ids": [site["room"]],
            "check_lead_minutes": 0, "priority": 2, **when}
    token = httpx.post(f"{server.base}/api/v1/meetings", headers=site["secretariat"], timeout=10,
                       json=body).json()["displacement_token"]
    with server.ws(f"/ws/rooms/{site['room']}?token={site['display']}") as shown, \
            server.ws(f"/ws/secretariat?token={_secret(site['secretariat'])}") as board:
        assert (recv(shown)["type"], recv(board)["type"]) == ("snapshot", "snapshot")
        booked = httpx.post(f"{server.base}/api/v1/meetings", headers=site["secretariat"], timeout=10,
                            json={**body, "displace": True, "displacement_token": token})
        assert booked.status_code == 201, booked.text
        on_display, on_board = _until_displaced(shown), _until_displaced(board)

    expected = {"meeting_id": routine.json()["id"], "scope": "occurrence", "occurrence_id": occ_id,
                "occurrence_ids": [occ_id], "title": "Giao ban xã", "start": _z(start),
                "end": _z(start + timedelta(hours=1)), "chair_room_id": site["room"], "room_ids": [site["room"]],
                "sequence": 1, "status": "tentative",
                "displaced": {"by_meeting_id": booked.json()["id"], "by_priority": 2,
                              "alternative_start": _z(start + timedelta(hours=1)),
                              "alternative_end": _z(start + timedelta(hours=2))}}
    assert on_display["data"] == expected
    assert on_board["data"] == expected
    assert on_display["id"] == on_board["id"]
