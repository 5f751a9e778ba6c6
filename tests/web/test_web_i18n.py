"""UI language: the Vietnamese catalog is complete and its compiled .mo current, local formats
(dd/mm/yyyy, 24-hour, Thứ Hai … Chủ nhật), and the language switch."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from confsvc.db import make_session
from confsvc.web import i18n
from tests.web_support import csrf_of, login, make_province

ROOT = Path(__file__).resolve().parents[2]
PO = i18n.LOCALE_DIR / "vi" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _po():
    with PO.open("rb") as f:
        return read_po(f, locale="vi")


@pytest.mark.pure
def test_every_message_in_the_code_is_translated_to_vietnamese() -> None:
    """Extraction as scripts/i18n does it: a new ``_()`` without a Vietnamese entry fails here."""
    found = set()
    for directory, method in ((ROOT / "confsvc" / "web", [("**.py", "python")]),
                              (ROOT / "templates", [("**.html", "jinja2")])):
        for _file, _line, message, _comments, _context in extract_from_dir(
                str(directory), method, keywords={"_": None, "N_": None, "gettext": None,
                                                  "ngettext": (1, 2)},
                options_map={"**.html": {"extensions": "jinja2.ext.i18n"}}):
            found.add(message if isinstance(message, str) else message[0])
    catalog = _po()
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and m.string}
    assert sorted(found - translated) == []
    assert [m.id for m in catalog if m.id and not m.string] == []


@pytest.mark.pure
def test_compiled_catalog_matches_the_po_file() -> None:
    """The committed .mo (what the wheel ships) holds exactly the .po's translations: run scripts/i18n."""
    with MO.open("rb") as f:
        compiled = read_mo(f)

    def plain(catalog):
        def key(value):
            return tuple(value) if isinstance(value, list | tuple) else value
        return {key(m.id): key(m.string) for m in catalog if m.id}

    assert plain(compiled) == plain(_po())


@pytest.mark.pure
def test_catalog_loads_and_translates() -> None:
    i18n.activate("vi")
    assert i18n.gettext("Join instructions") == "Hướng dẫn kết nối"
    assert i18n.ngettext("%(num)s meeting", "%(num)s meetings", 3) == "%(num)s cuộc họp"
    i18n.activate("en")
    assert i18n.gettext("Join instructions") == "Join instructions"
    i18n.activate("xx")
    assert i18n.current_language() == "vi"


@pytest.mark.pure
@pytest.mark.parametrize(("language", "expected"), [
    ("vi", "08:00–10:00 Thứ Hai, 02/03/2026"),
    ("en", "08:00–10:00 Monday, 02/03/2026"),
])
def test_local_formats(language: str, expected: str) -> None:
    i18n.activate(language)
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
    assert i18n.fmt_range(start, datetime(2026, 3, 2, 3, 0, tzinfo=UTC), ZONE) == expected
    assert i18n.fmt_datetime(datetime(2026, 3, 8, 13, 30, tzinfo=UTC), ZONE) == (
        "20:30 Chủ nhật, 08/03/2026" if language == "vi" else "20:30 Sunday, 08/03/2026")


@pytest.mark.pure
def test_vietnamese_weekdays_are_the_glossarys() -> None:
    i18n.activate("vi")
    week = [i18n.weekday(date(2026, 3, 2 + i)) for i in range(7)]
    assert week == ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật"]
    assert i18n.fmt_range(datetime(2026, 3, 2, 16, 0, tzinfo=UTC), datetime(2026, 3, 2, 18, 0, tzinfo=UTC),
                          ZONE) == "23:00–01:00 Thứ Hai, 02/03/2026 → Thứ Ba, 03/03/2026"


def test_language_switch_is_kept_across_login_and_back(client: TestClient, engine: Engine) -> None:
    with make_session(engine) as session:
        make_province(session)
        session.commit()
    page = client.get("/login")
    assert '<html lang="vi">' in page.text and "Đăng nhập" in page.text
    switched = client.post("/language", data={"language": "en", "next": "/login", "csrf": csrf_of(page.text)},
                           follow_redirects=False)
    assert (switched.status_code, switched.headers["location"]) == (303, "/login")
    assert "Log in" in client.get("/login").text
    login(client, "vanphong")
    home = client.get("/")
    assert '<html lang="en">' in home.text and "Endpoint status by unit" in home.text
    client.post("/language", data={"language": "vi", "next": "//evil.example/", "csrf": csrf_of(home.text)})
    assert "Tình trạng thiết bị theo đơn vị" in client.get("/").text
    refused = client.post("/language", data={"language": "en", "csrf": "forged"})
    assert refused.status_code == 403


def test_wrong_password_message_follows_the_language(client: TestClient, engine: Engine) -> None:
    page = client.get("/login")
    client.post("/language", data={"language": "en", "next": "/login", "csrf": csrf_of(page.text)})
    answer = client.post("/login", data={"username": "ai", "password": "sai-mat-khau", "csrf": csrf_of(page.text)})
    assert (answer.status_code, "Wrong username or password." in answer.text) == (401, True)


def test_the_wheel_carries_the_catalog() -> None:
    """pyproject's wheel target packages confsvc/, and with it confsvc/locale (no force-include needed)."""
    assert MO.is_file() and MO.is_relative_to(ROOT / "confsvc")
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'packages = ["confsvc"]' in text
    assert io.BytesIO(MO.read_bytes()).read(4) in (b"\xde\x12\x04\x95", b"\x95\x04\x12\xde")
