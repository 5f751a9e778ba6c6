"""``calendar.ical`` on its own: exact folded bytes, escaping round-trips, injection, iTIP shapes (pure)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from confsvc.calendar import feed_ical, ical

pytestmark = pytest.mark.pure

ZONE = "Asia/Ho_Chi_Minh"
START = datetime(2025, 10, 6, 1, 0, tzinfo=UTC)  # 08:00 local, a Monday
CHAIR = ical.Place(1, "Hội trường tầng 3", "UBND tỉnh Phú Thọ", "vanphong@phutho.gov.vn")
SITE = ical.Place(2, "Phòng họp trực tuyến", "Xã Thanh Sơn")


def _meeting(**overrides) -> ical.MeetingCal:
    values = dict(uid="m-1@confsvc", title="Giao ban tuần", description="", status="confirmed", sequence=3,
                  timezone=ZONE, master=ical.Instance(START, START, START + timedelta(hours=2), CHAIR, (CHAIR, SITE)),
                  created_at=datetime(2025, 9, 1, tzinfo=UTC), updated_at=datetime(2025, 9, 2, 3, 4, 5, tzinfo=UTC),
                  join=ical.JoinDetails(1234, "mcu.phutho.gov.vn", "88", "246810"), url="https://lich/api/v1/meetings/1")
    values.update(overrides)
    return ical.MeetingCal(**values)


def _lines(body: bytes) -> list[bytes]:
    assert body.endswith(b"\r\n")
    return body[:-2].split(b"\r\n")


def _events(body: bytes) -> list:
    return Calendar.from_ical(body).walk("VEVENT")


# ---------------------------------------------------------------- folding (RFC 5545 §3.1)

LONG_TITLE = unicodedata.normalize(
    "NFC", "Hội nghị trực tuyến triển khai nhiệm vụ chuyển đổi số tỉnh Phú Thọ năm 2025 – Đề án 06 "
    "về dữ liệu dân cư, định danh và xác thực điện tử")


def test_long_vietnamese_title_folds_at_exact_octets() -> None:
    body = ical.invite(_meeting(title=LONG_TITLE))
    start = body.index(b"\r\nSUMMARY:") + 2
    end = body.index(b"\r\nDTSTART;", start)
    expected = ("SUMMARY:Hội nghị trực tuyến triển khai nhiệm vụ chuyển đ\r\n"
                " ổi số tỉnh Phú Thọ năm 2025 – Đề án 06 về dữ liệu d\r\n"
                " ân cư\\, định danh và xác thực điện tử").encode()
    assert body[start:end] == expected
    # A naive cut at octet 75 would fall inside "ổ" (3 octets): the fold comes before it.
    assert [len(line) for line in expected.split(b"\r\n")] == [73, 74, 52]


@pytest.mark.parametrize("title", [
    LONG_TITLE, "Đ" * 200, "ệ" * 77, "a" * 300, "x" + "😀" * 40, "Họp\\,;" * 30, "Ủy ban nhân dân " * 12])
def test_every_line_fits_75_octets_and_never_splits_a_character(title: str) -> None:
    body = feed_ical.feed("Lịch họp", [_meeting(title=title, description=title)], refresh=timedelta(hours=1))
    for line in _lines(body):
        assert len(line) <= 75
        line.decode("utf-8")  # each physical line is whole UTF-8 on its own
    assert str(_events(body)[0]["SUMMARY"]) == unicodedata.normalize("NFC", title)


# ---------------------------------------------------------------- escaping (RFC 5545 §3.3.11)

@pytest.mark.parametrize("title", [
    "Giao ban, tuần 42; khẩn", "Đường dẫn C:\\họp\\2025", "Dòng 1\nDòng 2", "a\\,b\\;c\\nd", ",;\\\n,;\\",
    "Ký tự \"ngoặc\" và 'nháy'"])
def test_escaping_round_trips(title: str) -> None:
    description = f"Nội dung: {title}\nHết."
    body = ical.invite(_meeting(title=title, description=description))
    event = _events(body)[0]
    assert str(event["SUMMARY"]) == title
    assert str(event["DESCRIPTION"]).startswith(description)


def test_crlf_in_title_cannot_create_a_property() -> None:
    attack = "Họp\r\nATTENDEE:mailto:evil@example.com\r\nMETHOD:CANCEL\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:x"
    body = ical.invite(_meeting(title=attack))
    assert b"\r\nATTENDEE:mailto:evil" not in body
    assert b"\r\nMETHOD:CANCEL" not in body
    calendar = Calendar.from_ical(body)
    assert str(calendar["METHOD"]) == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == "m-1@confsvc"
    assert "evil" in str(event["SUMMARY"])
    attendees = event.get("ATTENDEE")
    assert all("evil" not in str(a) for a in attendees)
    unfolded = body.replace(b"\r\n ", b"")
    summary = [line for line in unfolded.split(b"\r\n") if line.startswith(b"SUMMARY:")]
    assert summary == ["SUMMARY:Họp\\nATTENDEE:mailto:evil@example.com\\nMETHOD:CANCEL\\nEND:VEVENT\\n"
                       "BEGIN:VEVENT\\nUID:x".encode()]


def test_control_characters_are_dropped() -> None:
    body = ical.invite(_meeting(title="Họp\x00\x07\x1b\x7f giao\tban\rmới", description="a\x0cb\r\nc"))
    event = _events(body)[0]
    assert str(event["SUMMARY"]) == "Họp giao\tban\nmới"
    assert str(event["DESCRIPTION"]).startswith("ab\nc\n")
    assert not any(0 < byte < 32 and byte not in (9, 10, 13) for byte in body)


# ---------------------------------------------------------------- invites (RFC 5546)

def test_request_carries_organizer_rooms_location_and_join_instructions() -> None:
    body = ical.invite(_meeting())
    calendar = Calendar.from_ical(body)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == [ZONE]
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == "m-1@confsvc" and int(event["SEQUENCE"]) == 3
    assert event.decoded("DTSTAMP") == datetime(2025, 9, 2, 3, 4, 5, tzinfo=UTC)
    assert b"DTSTAMP:20250902T030405Z" in body
    assert b"DTSTART;TZID=Asia/Ho_Chi_Minh:20251006T080000" in body
    assert str(event["ORGANIZER"]).startswith("mailto:")
    attendees = event["ATTENDEE"]
    assert [str(a) for a in attendees] == ["mailto:vanphong@phutho.gov.vn", "urn:x-confsvc:room:2"]
    assert all(a.params["CUTYPE"] == "ROOM" for a in attendees)
    assert attendees[0].params["ROLE"] == "CHAIR"
    assert str(event["LOCATION"]) == "Hội trường tầng 3, UBND tỉnh Phú Thọ"
    description = str(event["DESCRIPTION"])
    assert "Chuỗi quay số (SIP): sip:1234@mcu.phutho.gov.vn" in description
    assert "Số quay H.323: 881234" in description
    assert "Mã PIN: 246810" in description
    assert "Kiểm tra kỹ thuật: 06/10/2025 07:00 (60 phút trước giờ họp)" in description
    assert "Điểm cầu tham dự: Phòng họp trực tuyến, Xã Thanh Sơn" in description
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["URL"]) == "https://lich/api/v1/meetings/1"


def test_cancelled_meeting_is_a_cancel_with_the_same_uid() -> None:
    calendar = Calendar.from_ical(ical.invite(_meeting(status="cancelled", sequence=4)))
    assert str(calendar["METHOD"]) == "CANCEL"
    (event,) = calendar.walk("VEVENT")
    assert (str(event["UID"]), int(event["SEQUENCE"]), str(event["STATUS"])) == ("m-1@confsvc", 4, "CANCELLED")


def _series() -> ical.MeetingCal:
    week = timedelta(days=7)
    moved = ical.Instance(START + week, START + week + timedelta(hours=1), START + week + timedelta(hours=3),
                          SITE, (SITE,))
    cancelled = ical.Instance(START + 2 * week, START + 2 * week, START + 2 * week + timedelta(hours=2), CHAIR,
                              (CHAIR, SITE), cancelled=True)
    return _meeting(rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=5", exdates=(START + 3 * week,), exceptions=(moved, cancelled))


def test_series_request_has_rrule_exdates_and_overrides() -> None:
    body = ical.invite(_series())
    assert b"RRULE:FREQ=WEEKLY;COUNT=5;BYDAY=MO" in body
    # The cancelled occurrence joins the stored EXDATE in an invite.
    assert b"EXDATE;TZID=Asia/Ho_Chi_Minh:20251020T080000,20251027T080000" in body
    events = _events(body)
    assert len(events) == 2
    override = events[1]
    assert b"RECURRENCE-ID;TZID=Asia/Ho_Chi_Minh:20251013T080000" in body
    assert str(override["LOCATION"]) == "Phòng họp trực tuyến, Xã Thanh Sơn"


def test_cancelled_occurrence_is_a_cancel_with_its_recurrence_id() -> None:
    series = _series()
    body = ical.occurrence_cancel(series, series.exceptions[1])
    calendar = Calendar.from_ical(body)
    assert str(calendar["METHOD"]) == "CANCEL"
    (event,) = calendar.walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED"
    assert event.decoded("RECURRENCE-ID") == (START + timedelta(days=14))
    assert "RRULE" not in event


# ---------------------------------------------------------------- feeds (RFC 5545, RFC 7986)

def test_feed_is_published_named_and_byte_identical() -> None:
    body = feed_ical.feed("Lịch họp – Xã Thanh Sơn", [_series(), _meeting(uid="m-2@confsvc")], refresh=timedelta(hours=1))
    calendar = Calendar.from_ical(body)
    assert "METHOD" not in calendar
    assert str(calendar["NAME"]) == str(calendar["X-WR-CALNAME"]) == "Lịch họp – Xã Thanh Sơn"
    assert b"\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in body
    assert b"\r\nX-PUBLISHED-TTL:PT1H\r\n" in body
    assert len(calendar.walk("VTIMEZONE")) == 1
    statuses = [str(e["STATUS"]) for e in calendar.walk("VEVENT")]
    assert statuses == ["CONFIRMED", "CONFIRMED", "CANCELLED", "CONFIRMED"]
    assert body == feed_ical.feed("Lịch họp – Xã Thanh Sơn", [_series(), _meeting(uid="m-2@confsvc")],
                             refresh=timedelta(hours=1))
