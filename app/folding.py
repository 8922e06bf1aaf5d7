"""How names are compared: the same fold for what is stored and for what is typed, and the order
a list of people is read in.

NFKC, so full-width Latin typed with a Japanese IME ("Ｙａｍａｄａ"), ligatures and half-width katakana
match their ordinary forms, then lower case, then katakana as hiragana, so 「やまだ」 finds
「ヤマダ」. Lower, not casefold: what is folded must not depend on which database answers, and
the fold is done here in Python, once, when a user is written (see ``User.search_key``): folding
every row in SQL on each search cost PostgreSQL's ``normalize()`` several times the query itself.

A name's place in a list (:func:`name_order`) comes from its reading (フリガナ), in 五十音 order:
kana compared by code point, which is the 五十音 with each voiced or small kana right after its
plain one (カ, ガ, キ, ギ …). A name written in kana alone is its own reading. Any other name without
a reading comes after all of those, by its letters: Latin A–Z (any case), then kanji by code point,
which is no order a reader knows; the reading is what puts it in place.
"""

from __future__ import annotations

import functools
import unicodedata

_KATAKANA_TO_HIRAGANA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}  # ァ..ヶ → ぁ..ゖ
_HIRAGANA_TO_KATAKANA = {code: code + 0x60 for code in range(0x3041, 0x3097)}
_READING_EXTRA = frozenset(" ・ー")  # a space between family and given name, the middle dot, the long vowel


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().translate(_KATAKANA_TO_HIRAGANA)


def search_key(name: str, email: str, reading: str = "") -> str:
    """One column to search: name, e-mail and reading folded; the line break between them is a
    character a search never contains (it is stripped), so no match spans two of them."""
    key = f"{fold(name)}\n{fold(email)}"
    return f"{key}\n{fold(reading)}" if reading else key


def _is_kana(text: str) -> bool:
    return all("\u3041" <= c <= "\u3096" or c in _READING_EXTRA for c in text)


def normalize_reading(text: str) -> str:
    """A reading as stored: katakana (フリガナ), full-width, single spaces; "" for none.

    Raises ValueError when it holds anything but kana, spaces, 「・」 and 「ー」: a reading is what
    the name sounds like, and only kana sort in 五十音 order."""
    folded = " ".join(unicodedata.normalize("NFKC", text).split()).translate(_KATAKANA_TO_HIRAGANA)
    if not _is_kana(folded):
        raise ValueError("a reading is written in kana (hiragana or katakana)")
    if len(folded) > 200:
        raise ValueError("a reading is at most 200 characters")
    return folded.translate(_HIRAGANA_TO_KATAKANA)


@functools.lru_cache(maxsize=16384)
def name_order(name: str, reading: str = "") -> tuple[int, str, str]:
    """The key a list of people is sorted by (see the module's docstring): the reading in 五十音
    order, a kana name as its own reading, any other name after them by its folded letters.

    Kept per name: the leaderboard ranks a cohort's 2,000 trainees by it after every whole read,
    and folding them all again took about as long as reading them."""
    folded = fold(name)
    if reading:
        return (0, fold(reading), folded)
    if folded.strip() and _is_kana(folded):
        return (0, folded, folded)
    return (1, folded, name)
