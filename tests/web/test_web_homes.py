"""Each role's home on the dashboard, the readiness form that keeps its saved state, and the calendar's
week view with a time axis and click-to-book (issue 13), through the web UI (TestClient) on the small
web province (tests/web_support.py) and, for the summaries of long lists, on the demo's 148 communes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from confsvc import demo
from confsvc.clock import utc_now
from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.scheduling import readiness, reading
from confsvc.scheduling.models import Meeting, Occurrence, ReadinessState
from confsvc.users import security
from confsvc.users import service as users
from confsvc.users.models import User
from tests.factories import make_meeting, next_monday_local
from tests.web_support import PASSWORD, csrf_of, login, make_province

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _at(hours: float):
    """A local start ``hours`` from now on a whole minute."""
    return (utc_now() + timedelta(hours=hours)).astimezone(ZONE).replace(second=0, microsecond=0)


def _three_meetings(engine: Engine):
    """The web province and three meetings: "Sắp kiểm tra" in 30 min (its technical check has begun; two
    communes not checked), "Họp thường" in 3 h and "Họp có sự cố" in 5 h 30 (Xã Thanh Ba reports a
    problem). Returns the province and ``{title: (meeting_id, occurrence_id, start)}``."""
    with make_session(engine) as session:
        province = make_province(session)
        secretariat = session.exec(select(User).where(User.username == "vanphong")).one()
        plan = [("Sắp kiểm tra", 0.5, province.rooms[3], province.rooms[2:3]),
                ("Họp thường", 3, province.chair, province.rooms[:2]),
                ("Họp có sự cố", 5.5, province.chair, province.rooms[:2])]
        found = {}
        for title, hours, chair, rooms in plan:
            start = _at(hours)
            result = make_meeting(session, chair_room=chair, rooms=rooms, start=start,
                                  end=start + timedelta(hours=1), title=title, user=secretariat)
            occ = session.exec(select(Occurrence).where(Occurrence.meeting_id == result.meeting.id)).one()
            found[title] = (result.meeting.id, occ.id, start)
        meeting = session.get(Meeting, found["Họp có sự cố"][0])
        occurrence = session.get(Occurrence, found["Họp có sự cố"][1])
        readiness.set_readiness(session, Settings(secret_key="x" * 40), users.principal_for(session, secretariat),
                                meeting, occurrence, province.rooms[0].id, ReadinessState.problem, "Mất tiếng micro")
        session.commit()
        return province, found


def _section(html: str, element_id: str) -> str:
    part = html[html.index(f'id="{element_id}"'):]
    return part[:part.index("</section>")]


def _day_word(start: datetime) -> str:
    return "hôm nay" if start.date() == utc_now().astimezone(ZONE).date() else "ngày mai"


def test_secretariat_home_lists_today_and_tomorrow_with_problems_first(client: TestClient, engine: Engine) -> None:
    _province, found = _three_meetings(engine)
    login(client, "vanphong")
    page = client.get("/")
    board = _section(page.text, "today-board")
    assert "Hôm nay và ngày mai: sự cố trước" in board
    titles = re.findall(r'<article class="att att-rank-(\d)">\s*<h3><a href="([^"]+)">([^<]+)</a>', board)
    href = {title: f"/meetings/{m}?occurrence={o}" for title, (m, o, _s) in found.items()}
    assert titles == [("0", href["Họp có sự cố"], "Họp có sự cố"), ("1", href["Sắp kiểm tra"], "Sắp kiểm tra"),
                      ("2", href["Họp thường"], "Họp thường")]
    assert "<li><strong>Điểm cầu Xã Thanh Ba</strong>: Mất tiếng micro" in board
    assert "1 điểm cầu báo gặp sự cố" in board
    assert f"{_day_word(found['Họp có sự cố'][2])} · " in board
    # The meeting whose technical check has begun lists its sites not checked yet (two: open, short list).
    assert re.search(r'<details class="more" open><summary>Điểm cầu chưa kiểm tra \(2\)</summary>\s*'
                     r'<p class="names">Điểm cầu Xã Tam Nông, Điểm cầu Xã Đoan Hùng</p>', board)
    # The live fragment carries the same board; the secretariat has no operator's or leader's home.
    assert _section(client.get("/dashboard/live").text, "today-board") == board
    assert 'id="my-sites"' not in page.text and 'id="my-meetings"' not in page.text


def test_operator_home_shows_own_sites_first_with_the_buttons_and_confirms_what_was_saved(
        client: TestClient, engine: Engine) -> None:
    province, found = _three_meetings(engine)
    login(client, "kythuat")  # operator of Xã Thanh Ba: in "Họp thường" and "Họp có sự cố"
    page = client.get("/")
    assert 'id="today-board"' not in page.text and 'id="my-meetings"' not in page.text
    mine = _section(page.text, "my-sites")
    assert page.text.index('id="my-sites"') < page.text.index('id="live-panels"')
    assert re.findall(r'<h3 id="mine-\d+"><a href="[^"]+">([^<]+)</a></h3>', mine) == ["Họp thường", "Họp có sự cố"]
    room = province.rooms[0].id
    meeting_id, occ_id, _start = found["Họp có sự cố"]
    form = mine[mine.index(f'id="site-{occ_id}-{room}"'):]
    form = form[:form.index("</form>")]
    assert 'class="site-mark state-now-problem"' in mine
    assert '<strong>Điểm cầu Xã Thanh Ba</strong>: <span class="ready ready-problem">Gặp sự cố</span>' in form
    assert ">Mất tiếng micro</textarea>" in form
    assert '<button type="submit" name="state" value="ready" class="big ready-button">Đã sẵn sàng</button>' in form
    assert '<button type="submit" name="state" value="problem" class="big problem-button">Gặp sự cố</button>' in form

    # The other meeting: a problem with a note, from the home; back home with the saved state confirmed.
    other_meeting, other_occ, _ = found["Họp thường"]
    done = client.post(f"/meetings/{other_meeting}/occurrences/{other_occ}/readiness", follow_redirects=False,
                       data={"csrf": csrf_of(page.text), "room_id": room, "state": "problem",
                             "note": "Camera không lên hình", "back": "home"})
    assert (done.status_code, done.headers["location"]) == (303, f"/#site-{other_occ}-{room}")
    home = client.get("/")
    saved = _section(home.text, "my-sites")
    saved = saved[saved.index(f'id="site-{other_occ}-{room}"'):]
    saved = saved[:saved.index("</form>")]
    assert ('<p class="alert alert-ok" role="status">Đã lưu: Điểm cầu Xã Thanh Ba — Gặp sự cố. '
            'Ghi chú: Camera không lên hình</p>') in saved
    assert ">Camera không lên hình</textarea>" in saved
    # Confirmed once: a reload shows the state, not the confirmation.
    assert "Đã lưu:" not in client.get("/").text


def test_readiness_form_keeps_a_reported_problem_and_its_note_after_saving(client: TestClient,
                                                                           engine: Engine) -> None:
    """Regression (issue 13): after "Gặp sự cố" + note the meeting page showed no confirmation, the radio
    jumped back to "Đã sẵn sàng" and the note emptied, so a re-send silently marked the site ready."""
    province, found = _three_meetings(engine)
    meeting_id, occ_id, _start = found["Họp thường"]
    login(client, "kythuat")
    page = client.get(f"/meetings/{meeting_id}")
    form = page.text[page.text.index('class="readiness-form"'):]
    assert ' checked' not in form[:form.index("</form>")]  # nothing stored: no state chosen for the person
    assert page.text.index('id="readiness"') < page.text.index('id="join-h"')  # the form comes first
    page = client.post(f"/meetings/{meeting_id}/occurrences/{occ_id}/readiness",
                       data={"csrf": csrf_of(page.text), "room_id": province.rooms[0].id, "state": "problem",
                             "note": "Mất tiếng micro"})  # the redirect followed: the page the person sees
    assert str(page.url).endswith(f"/meetings/{meeting_id}?occurrence={occ_id}#readiness")
    assert ('<p class="alert alert-ok" role="status" id="readiness-saved">Đã lưu: Điểm cầu Xã Thanh Ba — '
            'Gặp sự cố. Ghi chú: Mất tiếng micro</p>') in page.text
    form = page.text[page.text.index('class="readiness-form"'):]
    form = form[:form.index("</form>")]
    assert re.findall(r'<input type="radio" name="state" value="(\w+)" required( checked)?>', form) == [
        ("ready", ""), ("problem", " checked")]
    assert '<textarea id="ready-note" name="note" rows="2" maxlength="2000">Mất tiếng micro</textarea>' in form
    # The page read again later (no confirmation) still shows the stored problem.
    again = client.get(f"/meetings/{meeting_id}?occurrence={occ_id}").text
    assert "Đã lưu:" not in again
    assert re.findall(r'value="(\w+)" required checked', again) == ["problem"]


def test_leader_home_lists_next_meetings_and_the_calendar_link_entry(client: TestClient, engine: Engine) -> None:
    _province, found = _three_meetings(engine)
    login(client, "lanhdao")
    page = client.get("/")
    assert 'id="today-board"' not in page.text and 'id="my-sites"' not in page.text
    mine = _section(page.text, "my-meetings")
    assert '<a class="button primary" href="/feeds">Lấy liên kết lịch của bạn (Outlook, Google, iPhone)</a>' in mine
    assert re.findall(r'<li><a href="[^"]+">([^<]+)</a>', mine) == ["Sắp kiểm tra", "Họp thường", "Họp có sự cố"]
    assert client.get("/feeds").status_code == 200


def test_calendar_week_places_meetings_on_a_time_axis_and_books_a_free_hour(client: TestClient,
                                                                            engine: Engine) -> None:
    with make_session(engine) as session:
        province = make_province(session)
        secretariat = session.exec(select(User).where(User.username == "vanphong")).one()
        monday = next_monday_local(weeks_ahead=2)  # 08:00 local
        make_meeting(session, chair_room=province.chair, rooms=province.rooms[:1], start=monday,
                     end=monday + timedelta(hours=2), title="Họp sáng", user=secretariat)
        make_meeting(session, chair_room=province.rooms[3], rooms=province.rooms[2:3],
                     start=monday + timedelta(hours=1), end=monday + timedelta(hours=1, minutes=45),
                     title="Họp chồng giờ", user=secretariat)
        session.commit()
    day = monday.date().isoformat()
    login(client, "vanphong")
    week = client.get(f"/calendar?view=week&date={day}").text
    # 08:00 is the 9th quarter-hour line after 06:00; side by side in two lanes.
    assert '<div class="tpos gs-9 ge-17 lane-1">' in week
    assert '<div class="tpos gs-13 ge-16 lane-2">' in week
    assert 'class="day today lanes-2"' in week or 'class="day focus lanes-2"' in week
    assert week.count('class="event event-confirmed"') == 2
    assert f'<a class="tslot gs-17 ge-21" href="/meetings/new?date={day}&amp;start_time=10%3A00&amp;end_time=11%3A00"' \
        in week
    assert 'aria-label="Đặt lịch họp lúc 10:00, Thứ Hai' in week
    assert "<span class=\"gs-1 ge-5\">06:00</span>" in week and "<span class=\"gs-61 ge-65\">21:00</span>" in week
    # The slot's link opens the booking form with that day and hour (the planner's scheme).
    form = client.get(f"/meetings/new?date={day}&start_time=10:00&end_time=11:00").text
    assert f'value="{monday.strftime("%d/%m/%Y")}"' in form
    assert 'value="10:00"' in form and 'value="11:00"' in form
    # A leader sees the axis but has no booking links.
    client.cookies.clear()
    login(client, "lanhdao")
    week = client.get(f"/calendar?view=week&date={day}").text
    assert '<div class="tpos gs-9 ge-17 lane-1">' in week and "tslot" not in week and "/meetings/new" not in week


def test_long_site_and_unit_lists_are_summaries_on_the_full_province(client: TestClient, engine: Engine,
                                                                     settings: Settings) -> None:
    """The demo's briefing (149 endpoints in 148 rooms): the dashboard and the meeting page show counts,
    the long lists open on demand (``<details>`` without ``open``)."""
    with make_session(engine) as session:
        demo.seed(session, settings, now=datetime.now(UTC) - timedelta(days=1))
        for user in session.exec(select(User)).all():
            user.password_hash = security.hash_password(PASSWORD)
            session.add(user)
        briefing = session.exec(select(Meeting).where(Meeting.title == demo.BRIEFING_TITLE)).one()
        first = session.exec(select(Occurrence).where(Occurrence.meeting_id == briefing.id)
                             .order_by(Occurrence.start)).first()
        sites = len(reading.list_occurrences(session, briefing)[0]["participant_endpoint_ids"])  # endpoints
        rooms = len(readiness.site_states(session, briefing, first))  # a site's readiness is its room's
        session.commit()
    login(client, "vanphong")
    page = client.get(f"/meetings/{briefing.id}").text
    assert f'<details class="more" id="all-sites">\n  <summary>Tất cả điểm cầu ({sites})</summary>' in page
    assert f'<span class="board-count">0/{rooms} điểm cầu đã sẵn sàng</span>' in page
    dashboard = client.get("/").text
    assert re.search(r'<details class="more" id="unit-status-all"><summary>Tất cả đơn vị \(149\)</summary>',
                     dashboard)
    assert '<details class="more" id="board-sites">' in dashboard
