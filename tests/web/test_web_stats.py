"""The statistics page over the hand-computed usage scenario (``tests/stats_scenario``), on SQLite and
PostgreSQL: the figures in the table and the totals, the per-period series, the SVG charts, the
export links, numbers in Vietnamese and English, and the scope of an operator. Plus the pure charts."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.config import Settings
from confsvc.db import make_session
from confsvc.users.models import Role
from confsvc.web import charts
from tests import stats_scenario as sc
from tests.factories import make_user
from tests.web_support import PASSWORD, csrf_of, login

OCT_NOV = {"group_by": "unit", "period": "month", "from": "01/10/2026", "to": "30/11/2026"}


def _scenario(engine: Engine, settings: Settings) -> sc.Scenario:
    with make_session(engine) as session:
        s = sc.build(session, settings)
        make_user(session, Role.secretariat, username="thongke", password=PASSWORD)
        session.commit()
        return s


def _cells(html: str, table_class: str, section: str = "tbody") -> list[list[str]]:
    table = html[html.index(f' {table_class}">'):]
    body = table[table.index(f"<{section}>"):table.index(f"</{section}>")]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_statistics_by_unit_and_month_with_exact_figures(client: TestClient, engine: Engine,
                                                         settings: Settings) -> None:
    _scenario(engine, settings)
    login(client, "thongke")
    page = client.get("/statistics", params=OCT_NOV)
    assert page.status_code == 200
    assert "Thống kê sử dụng" in page.text and "01/10/2026 – 30/11/2026" in page.text
    # unit, period, meetings, cancelled, booked h, connected h, attendance, late joins, faults, room utilisation
    assert _cells(page.text, "stats-table") == [
        ["Tỉnh Thử Nghiệm", "10/2026", "1", "0", "2", "3,83", "100%", "1", "0", "0%"],
        ["Tỉnh Thử Nghiệm", "11/2026", "1", "1", "3", "1,5", "0%", "0", "0", "0,5%"],
        ["Xã Đồi Chè", "10/2026", "1", "0", "2", "1,33", "100%", "1", "0", "0%"],
        ["Xã Đồi Chè", "11/2026", "0", "0", "1", "1", "—", "0", "0", "0%"]]
    assert _cells(page.text, "stats-table", "tfoot") == [
        ["Tổng cộng (mỗi buổi họp, điểm cầu tính một lần)", "", "2", "1", "5", "5,33", "66,7%", "1", "0", "0,2%"]]
    # The whole province per month (the province's rows: they include the commune's).
    assert _cells(page.text, "timeline") == [["10/2026", "1", "2", "3,83"], ["11/2026", "1", "3", "1,5"]]
    cards = re.findall(r'<span class="stat-n">([^<]*)</span><span>([^<]*)</span>', page.text)
    assert cards == [("2", "buổi họp"), ("1", "buổi họp đã hủy"), ("5", "giờ đặt lịch"), ("5,33", "giờ kết nối"),
                     ("66,7%", "tỷ lệ điểm cầu tham dự"), ("1", "điểm cầu vào muộn")]
    # Two server-drawn charts; each bar names its figure.
    assert page.text.count('<svg class="chart"') == 2
    assert "<title>11/2026 · Số giờ kết nối: 1,5</title>" in page.text
    assert "<title>Xã Đồi Chè · Số giờ đặt lịch: 3</title>" in page.text
    assert "<script" not in page.text.split("</main>")[0]
    # Exports of the same report, downloadable with the web session.
    csv_href = re.search(r'href="([^"]+usage\.csv[^"]*)"[^>]*>Xuất CSV<', page.text).group(1).replace("&amp;", "&")
    assert csv_href == "/api/v1/stats/usage.csv?group_by=unit&period=month&from=2026-10-01&to=2026-12-01"
    assert re.search(r'href="/api/v1/stats/usage\.xlsx\?[^"]+"[^>]*>Xuất Excel<', page.text)
    exported = client.get(csv_href)
    assert (exported.status_code, exported.headers["content-type"]) == (200, "text/csv; charset=utf-8")
    assert exported.content.decode("utf-8-sig").splitlines()[-1].startswith(
        '"Tổng cộng (mỗi buổi họp, điểm cầu tính một lần; không phải tổng các dòng)",,,01/10/2026,30/11/2026,2,1,')

    # English: decimal points, the same figures.
    client.post("/language", data={"language": "en", "csrf": csrf_of(page.text), "next": "/statistics"})
    english = client.get("/statistics", params=OCT_NOV)
    assert _cells(english.text, "stats-table", "tfoot") == [
        ["Total (each meeting and site once)", "", "2", "1", "5", "5.33", "66.7%", "1", "0", "0.2%"]]
    assert "Export Excel" in english.text


def test_statistics_by_day_for_one_unit_by_bridge_and_bad_dates(client: TestClient, engine: Engine,
                                                                settings: Settings) -> None:
    s = _scenario(engine, settings)
    login(client, "thongke")
    commune = client.get("/statistics", params={**OCT_NOV, "period": "day", "from": "31/10/2026", "to": "02/11/2026",
                                                "unit_id": s.commune})
    assert _cells(commune.text, "stats-table") == [
        ["Xã Đồi Chè", "31/10", "1", "0", "2", "1,33", "100%", "1", "0", "—"],
        ["Xã Đồi Chè", "01/11", "0", "0", "1", "1", "—", "0", "0", "—"]]
    assert _cells(commune.text, "timeline") == [["31/10", "1", "2", "1,33"], ["01/11", "0", "1", "1"],
                                                ["02/11", "0", "0", "0"]]
    bridge = client.get("/statistics", params={"group_by": "bridge", "period": "week", "from": "26/10/2026",
                                               "to": "08/11/2026"})
    # MCU, week, meetings, cancelled, booked, connected, attendance, late, faults, peak ports, port utilisation:
    # M1 2 ports × 4 h (21:00 → 01:00) = 8 of 10 × 168 port-hours; M3 1 port × 3 h = 3 of 1680.
    assert _cells(bridge.text, "stats-table") == [
        ["MCU Tỉnh", "26/10–01/11", "1", "1", "3", "5,33", "100%", "1", "0", "2", "0,5%"],
        ["MCU Tỉnh", "02/11–08/11", "1", "0", "2", "0", "0%", "0", "0", "1", "0,2%"]]
    # The form's "all units" sends unit_id= (empty): every unit, not a validation error (found in the browser).
    every_unit = client.get("/statistics", params={**OCT_NOV, "unit_id": ""})
    assert _cells(every_unit.text, "stats-table", "tfoot")[0][2] == "2"
    bad = client.get("/statistics", params={**OCT_NOV, "from": "2026-10-01"})
    assert bad.status_code == 422
    assert "Từ ngày: 2026-10-01 không phải là một ngày hợp lệ theo dạng dd/mm/yyyy." in bad.text
    backwards = client.get("/statistics", params={**OCT_NOV, "from": "30/11/2026", "to": "01/10/2026"})
    assert (backwards.status_code, "Ngày kết thúc trước ngày bắt đầu." in backwards.text) == (422, True)


def test_an_operator_sees_only_their_units_and_no_bridge_grouping(client: TestClient, engine: Engine,
                                                                 settings: Settings) -> None:
    s = _scenario(engine, settings)
    with make_session(engine) as session:
        from confsvc.endpoints.models import Unit
        make_user(session, Role.operator, units=[session.get(Unit, s.commune)], username="kythuatxa",
                  password=PASSWORD)
        session.commit()
    login(client, "kythuatxa")
    page = client.get("/statistics", params=OCT_NOV)
    assert [row[0] for row in _cells(page.text, "stats-table")] == ["Xã Đồi Chè", "Xã Đồi Chè"]
    assert _cells(page.text, "timeline") == [["10/2026", "1", "2", "1,33"], ["11/2026", "0", "1", "1"]]
    assert 'value="bridge"' not in page.text
    assert 'href="/statistics"' in page.text  # in the navigation


@pytest.mark.pure
@pytest.mark.parametrize(("value", "top"), [(0, 1.0), (0.3, 0.5), (1, 1.0), (3.83, 5.0), (12, 20.0), (21, 25.0),
                                            (180, 200.0), (251, 500.0)])
def test_axis_top_is_a_round_number(value: float, top: float) -> None:
    assert charts.nice_max(value) == top


@pytest.mark.pure
def test_charts_escape_text_and_scale_bars_to_the_axis() -> None:
    svg = charts.column_chart("Giờ <họp>", ["10/2026", "<b>"], [charts.Series("Đặt", "booked", [2.5, 5.0])], str,
                              width=256, height=156)
    assert 'aria-label="Giờ &lt;họp&gt;"' in svg and "&lt;b&gt; · Đặt: 5.0" in svg and "<b>" not in svg
    # Plot height 156 − 14 − 42 = 100 units for an axis top of 5: bars of 50 and 100.
    assert re.findall(r'height="([\d.]+)"><title>', svg) == ["50.0", "100.0"]
    bars = charts.bar_chart("x", ["Xã Đồi Chè"], [charts.Series("Đặt", "booked", [1.0])], str, width=480)
    assert re.findall(r'width="([\d.]+)" height', bars) == ["200.0"]  # 480 − 210 − 70 = 200 for the axis top 1


@pytest.mark.parametrize(("name", "first", "last"), [
    ("this_month", "2026-12-01", "2026-12-31"), ("last_month", "2026-11-01", "2026-11-30"),
    ("this_quarter", "2026-10-01", "2026-12-31"), ("this_year", "2026-01-01", "2026-12-31")])
def test_statistics_presets_cover_whole_calendar_periods(name: str, first: str, last: str) -> None:
    from datetime import date

    from confsvc.web.stats import preset_range

    assert preset_range(name, date(2026, 12, 7)) == (date.fromisoformat(first), date.fromisoformat(last))
    assert preset_range("last_month", date(2026, 1, 15)) == (date(2025, 12, 1), date(2025, 12, 31))
    assert preset_range("this_quarter", date(2026, 5, 31)) == (date(2026, 4, 1), date(2026, 6, 30))


def test_statistics_page_offers_last_month_preset_and_labels_the_total(client: TestClient, engine: Engine,
                                                                        settings: Settings) -> None:
    _scenario(engine, settings)
    login(client, "thongke")
    page = client.get("/statistics?from=01/11/2026&to=30/11/2026").text
    links = dict((label, href) for href, label in re.findall(r'<a class="button small[^"]*" href="([^"]+)"[^>]*>([^<]+)</a>',
                                                              page))
    assert set(links) == {"Tháng này", "Tháng trước", "Quý này", "Năm nay"}
    assert "from=" in links["Tháng trước"] and "group_by=unit" in links["Tháng trước"]
    assert "Tổng cộng (mỗi buổi họp, điểm cầu tính một lần)" in page
