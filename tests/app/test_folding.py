"""Names in the order a Japanese class reads them: by reading (フリガナ) in 五十音 order."""

from __future__ import annotations

import pytest

from app.folding import name_order, normalize_reading, search_key


def test_names_sort_by_reading_kana_names_by_themselves_and_the_rest_last() -> None:
    """The class from the report: by code point it read ＫＯＢＡＹＡＳＨＩ, 中村, 伊藤, 佐藤."""
    people = [
        ("ＫＯＢＡＹＡＳＨＩ", ""), ("中村", "ナカムラ"), ("伊藤", "いとう"), ("佐藤", "サトウ"), ("渡辺", ""),
        ("さくら", ""), ("後藤", "ゴトウ"), ("加藤", "カトウ"), ("Abe", ""), ("小林", "コバヤシ"),
    ]  # fmt: skip
    ordered = [name for name, reading in sorted(people, key=lambda p: name_order(*p))]
    assert ordered == [
        "伊藤", "加藤", "小林", "後藤",  # い, か, こ, ご: a voiced kana right after its plain one
        "さくら", "佐藤", "中村",  # a name in kana is its own reading
        "Abe", "ＫＯＢＡＹＡＳＨＩ",  # no reading: after every name with one, Latin A–Z in any width
        "渡辺",  # kanji without a reading: last, by code point (the reading is what puts it in place)
    ]  # fmt: skip


def test_a_reading_is_stored_as_katakana_and_must_be_kana() -> None:
    assert normalize_reading("  やまだ   はなこ ") == "ヤマダ ハナコ"
    assert normalize_reading("ﾔﾏﾀﾞ") == "ヤマダ"  # half-width widened, the voiced mark joined
    assert normalize_reading("ジョン・スミス") == "ジョン・スミス"
    assert normalize_reading("") == ""
    for wrong in ("山田", "Yamada", "やまだ1"):
        with pytest.raises(ValueError):
            normalize_reading(wrong)


def test_the_search_key_holds_the_reading_in_hiragana() -> None:
    assert search_key("山田", "Y@Example.com", "ヤマダ") == "山田\ny@example.com\nやまだ"
    assert search_key("山田", "y@example.com") == "山田\ny@example.com"  # as before, without a reading
