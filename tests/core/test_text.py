"""Pure: diacritic folding and search patterns for Vietnamese names; numbers typed as text."""

import pytest

from confsvc.db import MAX_ID, row_id
from confsvc.text import ascii_digits, fold, natural, nfc, search_key, search_pattern


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


@pytest.mark.parametrize(("raw", "read"), [
    ("0", 0), ("42", 42), ("007", 7), ("9223372036854775807", 2**63 - 1),
    # Regression: "²" passed str.isdigit() and int() raised; "٣" and full-width "４" are digits int() reads.
    ("²", None), ("1²", None), ("٣", None), ("４", None), ("", None), (" 4", None), ("4 ", None), ("-4", None),
    ("+4", None), ("4.0", None), ("1_000", None), ("9223372036854775808", None), ("9" * 5000, None)])
def test_natural_reads_ascii_digits_only_within_its_bounds(raw: str, read: int | None) -> None:
    assert natural(raw) == read
    assert ascii_digits(raw) is (raw != "" and all("0" <= c <= "9" for c in raw))


def test_a_row_id_is_one_to_max_id() -> None:
    assert [row_id(v) for v in ("1", str(MAX_ID), "0", str(MAX_ID + 1), "99999999999999999999", "²")] == [
        1, MAX_ID, None, None, None, None]
    assert [natural(v, low=1, high=500) for v in ("1", "500", "501", "0", "0500", "00500")] == [
        1, 500, None, None, None, None]
