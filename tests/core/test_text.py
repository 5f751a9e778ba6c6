"""Pure: diacritic folding and search patterns for Vietnamese names."""

import pytest

from confsvc.text import fold, nfc, search_key, search_pattern


@pytest.mark.parametrize(("text", "folded"), [
    ("Phường Việt Trì", "phuong viet tri"),
    ("Xã Đoan Hùng", "xa doan hung"),
    ("ĐẶC KHU  Cô Tô", "dac khu co to"),
    ("Thọ", "tho"),
])
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_nfc_composes_decomposed_input() -> None:
    decomposed = "Vie\u0323\u0302t Tri\u0300"  # what some Mac keyboards send
    assert nfc(decomposed) == "Việt Trì"
    assert len(nfc(decomposed)) == 8


def test_search_key_holds_exact_and_folded_forms() -> None:
    assert search_key("Phường Việt Trì", "phường") == "phường việt trì phường | phuong viet tri phuong"


@pytest.mark.parametrize(("query", "pattern"), [
    ("viet tri", "%viet tri%"),
    ("Việt Trì", "%việt trì%"),
    ("50%_off", "%50\\%\\_off%"),
])
def test_search_pattern(query: str, pattern: str) -> None:
    assert search_pattern(query) == pattern
