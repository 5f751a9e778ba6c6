"""Service refusals read in the page's language; unknown codes keep the service's detail."""

from __future__ import annotations

import pytest

from confsvc.errors import Invalid
from confsvc.web import i18n
from confsvc.web.refusals import REFUSALS, refusal_message


@pytest.mark.parametrize(("language", "text"), [
    ("vi", "Giờ kết thúc phải sau giờ bắt đầu."), ("en", "The end must be after the start.")])
def test_known_code_in_the_page_language(language: str, text: str) -> None:
    i18n.activate(language)
    try:
        assert refusal_message(Invalid("end must be after start", code="end_not_after_start")) == text
    finally:
        i18n.activate(i18n.DEFAULT_LANGUAGE)


def test_unknown_code_keeps_the_detail() -> None:
    assert refusal_message(Invalid("something new", code="brand_new_rule")) == "something new"


def test_every_refusal_has_a_vietnamese_translation() -> None:
    i18n.activate("vi")
    try:
        untranslated = [code for code, message in REFUSALS.items() if i18n.gettext(message) == message]
    finally:
        i18n.activate(i18n.DEFAULT_LANGUAGE)
    assert untranslated == []
