"""Holiday warnings read in the page's language (the `holidays` package names them in both)."""

from __future__ import annotations

import pytest

from confsvc.web import i18n
from confsvc.web.booking import warning_messages

WARNING = {"code": "public_holiday", "date": "2027-09-02", "name": "Quốc khánh", "name_en": "National Day"}


@pytest.mark.parametrize(("language", "name"), [("vi", "Quốc khánh"), ("en", "National Day")])
def test_holiday_warning_in_the_page_language(language: str, name: str) -> None:
    i18n.activate(language)
    try:
        [message] = warning_messages([WARNING, dict(WARNING)])
    finally:
        i18n.activate(i18n.DEFAULT_LANGUAGE)
    assert "02/09/2027" in message and f"({name})" in message
