"""``calendar.ical``'s own feed serialiser against ``icalendar``'s output, byte for byte (pure).

``feed_ical.feed`` writes VEVENTs itself (``_event_bytes``) and folds with ``feed_ical.fold``; both must give
exactly what the ``icalendar`` components give (``ical.feed_reference``, ``icalendar``'s own
folding), for Vietnamese text, escapes, injections, UTC and other zones, series with exceptions.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Event, vCalAddress, vText

from confsvc.calendar import feed_ical, ical
from tests.calendar.test_ical_pure import CHAIR, LONG_TITLE, SITE, START, _meeting, _series

pytestmark = pytest.mark.pure

REFRESH = timedelta(hours=1)
#: Characters that matter to escaping and folding: ASCII specials, 2-, 3- and 4-octet UTF-8.
ALPHABET = "a Z0;,:\\^\"'\n\r\tNđĐệổ–😀\x07"
TEXTS = [
    LONG_TITLE, "Đ" * 200, "ệ" * 77, "a" * 300, "x" + "😀" * 40, "Họp\\,;" * 30, "Ủy ban nhân dân " * 12,
    "Giao ban, tuần 42; khẩn", "Đường dẫn C:\\Nam\\họp", "\\N là xuống dòng", "Dòng 1\nDòng 2\r\nDòng 3\rDòng 4",
    "Họp\r\nATTENDEE:mailto:evil@example.com\r\nMETHOD:CANCEL\r\nEND:VEVENT", "a" * 73 + "\\,", "a" * 72 + "^b" * 20,
    "", " ", "\\", "^", ",", ";" * 80, "Ký tự \"ngoặc\" và 'nháy'",
]


def _random_text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(size))


def _icalendar_fold(line: str) -> bytes:
    """A content line folded by ``icalendar`` itself: one property, written by a component."""
    event = Event()
    event.add("x-line", vText(line))
    body = event.to_ical()
    return body[len(b"BEGIN:VEVENT\r\nX-LINE:") - len(b"X-LINE:"):-len(b"\r\nEND:VEVENT\r\n")]


@pytest.mark.parametrize("text", TEXTS)
def test_fold_matches_icalendar(text: str) -> None:
    line = "X-LINE:" + feed_ical.escape_text(text)
    assert feed_ical.fold(line.encode("utf-8")) == _icalendar_fold(text)


def test_fold_matches_icalendar_on_random_text() -> None:
    rng = random.Random(5545)
    for size in list(range(60, 90)) + [rng.randrange(1, 600) for _ in range(400)]:
        text = _random_text(rng, size)
        assert feed_ical.fold(("X-LINE:" + feed_ical.escape_text(text)).encode("utf-8")) == _icalendar_fold(text), text


@pytest.mark.parametrize("text", TEXTS)
def test_fold_keeps_75_octets_and_whole_characters(text: str) -> None:
    folded = feed_ical.fold(("DESCRIPTION:" + feed_ical.escape_text(text)).encode("utf-8"))
    for n, line in enumerate(folded.split(b"\r\n")):
        assert len(line) <= (74 if n == 0 else 75)
        line.decode("utf-8")  # RFC 5545 §3.1: never a split multi-octet character
    assert folded.replace(b"\r\n ", b"") == ("DESCRIPTION:" + feed_ical.escape_text(text)).encode("utf-8")


@pytest.mark.parametrize("text", TEXTS + ["a\\Nb", "\\n", "x\\\\Ny"])
def test_escape_matches_vtext(text: str) -> None:
    assert feed_ical.escape_text(text).encode("utf-8") == vText(text).to_ical()


def _place(n: int, name: str, unit: str = "Xã Thanh Sơn", email: str | None = None) -> ical.Place:
    return ical.Place(n, name, unit, email)


def _variants() -> list[ical.MeetingCal]:
    rng = random.Random(7986)
    odd = _place(7, 'Phòng "A"; tầng 2: B, ^C', "Phường Nông Trang", "p7@phutho.gov.vn")
    out = [
        _meeting(), _series(), _meeting(status="cancelled", sequence=9), _meeting(status="tentative"),
        _meeting(url=None, join=None, description="Nội dung\nhai dòng"), _meeting(timezone="UTC"),
        _meeting(timezone="Etc/GMT+7"), _meeting(timezone="Europe/Paris"),
        _meeting(uid="uid,with;specials\\@confsvc", organizer_name="Văn phòng \"UBND\"; tỉnh",
                 organizer_email="van.phong@phutho.gov.vn"),
        _meeting(master=ical.Instance(START, START, START + timedelta(minutes=90), odd, (odd, CHAIR, SITE))),
        _meeting(updated_at=datetime(2025, 9, 2, 3, 4, 5, 999999, tzinfo=UTC),
                 created_at=datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        _series().__class__(**{**_series().__dict__, "timezone": "UTC", "uid": "series-utc@confsvc"}),
    ]
    for text in TEXTS:
        out.append(_meeting(title=text, description=text, url=f"https://lich/{text[:5].strip()},;x"))
    for n in range(30):
        title, description = _random_text(rng, rng.randrange(0, 200)), _random_text(rng, rng.randrange(0, 300))
        chair = _place(100 + n, _random_text(rng, rng.randrange(1, 60)), _random_text(rng, rng.randrange(1, 30)))
        out.append(_meeting(title=title, description=description, sequence=n,
                            master=ical.Instance(START, START, START + timedelta(hours=1), chair, (chair, SITE))))
    return out


@pytest.mark.parametrize("meeting", _variants())
def test_event_bytes_match_icalendar_components(meeting: ical.MeetingCal) -> None:
    for instance in [meeting.master, *meeting.exceptions]:
        for recurrence_id in (False, True):
            for with_rule in (False, True):
                kw = dict(recurrence_id=recurrence_id, with_rule=with_rule)
                assert feed_ical._event_bytes(meeting, instance, **kw) == ical._event(meeting, instance, **kw).to_ical()
    extra = [START + timedelta(days=7)]
    assert feed_ical._event_bytes(meeting, meeting.master, recurrence_id=False, with_rule=True, status="CANCELLED",
                             extra_exdates=extra, attendees=False) == \
        ical._event(meeting, meeting.master, recurrence_id=False, with_rule=True, status="CANCELLED",
                    extra_exdates=extra, attendees=False).to_ical()


def test_a_url_with_a_line_break_is_refused_like_icalendar() -> None:
    meeting = _meeting(url="https://lich/1\r\nATTENDEE:x")
    with pytest.raises(ValueError, match="CR or LF"):
        ical._event(meeting, meeting.master, recurrence_id=False, with_rule=True)
    with pytest.raises(ValueError, match="CR or LF"):
        feed_ical._event_bytes(meeting, meeting.master, recurrence_id=False, with_rule=True)


def test_feed_matches_the_icalendar_reference() -> None:
    meetings = _variants()
    name = "Lịch họp – Xã Thanh Sơn (gồm đơn vị trực thuộc)"
    feed_ical.FEED_BLOCKS.clear()
    cold = feed_ical.feed(name, meetings, refresh=REFRESH)
    assert cold == ical.feed_reference(name, meetings, refresh=REFRESH)
    assert feed_ical.feed(name, meetings, refresh=REFRESH) == cold  # served from FEED_BLOCKS
    assert feed_ical.feed(name, [], refresh=REFRESH) == ical.feed_reference(name, [], refresh=REFRESH)


def test_block_cache_is_keyed_by_the_whole_calendar_view() -> None:
    feed_ical.FEED_BLOCKS.clear()
    before = feed_ical.feed("Lịch", [_meeting()], refresh=REFRESH)
    renamed_room = _place(2, "Phòng họp số 2 (mới)")
    changed = _meeting(master=ical.Instance(START, START, START + timedelta(hours=2), CHAIR, (CHAIR, renamed_room)))
    after = feed_ical.feed("Lịch", [changed], refresh=REFRESH)
    assert after != before and "Phòng họp số 2 (mới)".encode() in after.replace(b"\r\n ", b"")
    assert after == ical.feed_reference("Lịch", [changed], refresh=REFRESH)
    assert len(feed_ical.FEED_BLOCKS) == 2


def test_block_cache_is_bounded() -> None:
    cache = feed_ical._LRU(3)
    for n in range(5):
        cache.put(n, str(n).encode())
    assert len(cache) == 3 and cache.get(0) is None and cache.get(4) == b"4"
    cache.get(2)
    cache.put(5, b"5")
    assert cache.get(3) is None and cache.get(2) == b"2"


def test_long_title_bytes_are_the_documented_ones() -> None:
    """The exact folding of ``test_ical_pure`` holds in feeds too (NFC Vietnamese, 73/74/52 octets)."""
    body = feed_ical.feed("Lịch", [_meeting(title=unicodedata.normalize("NFC", LONG_TITLE))], refresh=REFRESH)
    start = body.index(b"\r\nSUMMARY:") + 2
    end = body.index(b"\r\nDTSTART;", start)
    assert [len(line) for line in body[start:end].split(b"\r\n")] == [73, 74, 52]


def _icalendar_address_line(name: str, address: str, cn: str, params: tuple[tuple[str, str], ...]) -> str:
    """The unfolded content line ``icalendar`` writes for a ``vCalAddress`` with these parameters."""
    value = vCalAddress(address)
    value.params["CN"] = cn
    for key, param in params:
        value.params[key] = param
    event = Event()
    event.add(name, value)
    return str(event.content_lines()[1])


ATTENDEE = (("CUTYPE", "ROOM"), ("ROLE", "CHAIR"), ("PARTSTAT", "NEEDS-ACTION"), ("RSVP", "FALSE"))
#: Parameter values that matter to quoting and RFC 6868: spaces, ' ’ " ^ , ; : and line breaks.
NAMES = ["Phòng họp số 1, UBND xã Thanh Sơn", "Hội_trường", "A'B", "A’B", 'Phòng "A"; tầng 2: B, ^C', "x^ny",
         "Dòng 1\nDòng 2", "a\r\nb\rc", "", "plain", "Ủy ban nhân dân " * 6, "^", '"', "'", "’"]


@pytest.mark.parametrize("cn", NAMES)
def test_address_lines_match_icalendar(cn: str) -> None:
    for name, params in (("attendee", ATTENDEE), ("organizer", ())):
        for address in ("mailto:vanphong@phutho.gov.vn", "urn:x-confsvc:room:12"):
            assert feed_ical._address_line(name, address, cn, params) == _icalendar_address_line(name, address, cn, params)


def test_address_lines_match_icalendar_on_random_names() -> None:
    rng = random.Random(6868)
    for _ in range(300):
        cn = _random_text(rng, rng.randrange(0, 80))
        assert feed_ical._address_line("attendee", "mailto:a@b.vn", cn, ATTENDEE) == \
            _icalendar_address_line("attendee", "mailto:a@b.vn", cn, ATTENDEE), cn


def test_fold_lines_folds_each_line_as_fold_does() -> None:
    lines = ["BEGIN:VEVENT", "SUMMARY:" + feed_ical.escape_text(LONG_TITLE), "X:" + "a" * 72, "X:" + "a" * 73,
             "DESCRIPTION:" + feed_ical.escape_text("Đ" * 200), "END:VEVENT"]
    assert feed_ical.fold_lines("\r\n".join(lines) + "\r\n") == \
        b"\r\n".join(feed_ical.fold(line.encode("utf-8")) for line in lines) + b"\r\n"


@pytest.mark.parametrize("value", [datetime(2025, 10, 6, 1, 2, 3, tzinfo=UTC), datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
                                   datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)])
def test_date_time_values_have_fixed_width_fields(value: datetime) -> None:
    assert feed_ical._utc_value(value) == f"{value.year:04}{value:%m%dT%H%M%S}Z"
    assert feed_ical._local_value(value, UTC) == f"{value.year:04}{value:%m%dT%H%M%S}"
    assert ical._local(value, UTC) == f"{value:%d/%m/}{value.year:04} {value:%H:%M}"


def test_the_serialisers_code_and_inputs_are_in_every_feeds_etag():
    """``feeds.CODE_VERSION`` (in every ETag) hashes the serialiser's module, the value types it reads
    (``ical``) and ``icalendar``'s version, whose output it reproduces."""
    import hashlib
    from pathlib import Path

    import confsvc
    from confsvc.calendar import feeds

    assert {feed_ical, ical, feeds} <= set(feeds.RENDERING_MODULES)
    assert feeds.CODE_VERSION == hashlib.sha256(b"".join(
        [confsvc.__version__.encode(), ical.ICALENDAR_VERSION.encode()]
        + [Path(str(m.__file__)).read_bytes() for m in feeds.RENDERING_MODULES])).hexdigest()
