"""One word for one thing: the word each concept has in each language, and the words it replaced.

The message tables beside this module (``ja.py``, ``en.py``, the result email's words too), the
scorer's error messages, the templates and the docs for trainees
and instructors all write these words; ``tests/app/i18n/test_glossary.py`` finds the replaced ones
wherever they are written, and the browser tests look for them on every page and in the mails.

Why these words:

- **cohort → コース / cohort.** 「コホート」 is jargon to trainees, and 「クラス」 is taken: it is one
  of the 15 characters a model tells apart (クラス番号, クラスの順番, クラス別の正解率), the word the
  course's own notebooks use. A run of the course with its trainees, limits and deadline is the
  course to the people in it: コース.
- **uploads left → 提出回数 / upload(s).** What the daily limit counts is a submission that passed
  the pre-flight; 「アップロード回数」 suggested that every upload, refused ones too, counted.
- **the clock → the zone's abbreviation (JST).** Times are written in the cohort's time zone with
  the abbreviation its clock uses, as the pages always did; never the IANA name in brackets.
- **similar submissions → 似ている提出 / similar submissions.** The page lists pairs of trainees,
  not a degree: the link and the title say what is there (類似度 stays the word for a measure of
  how alike two submissions are).
- **the site → カタカナ識別 / Katakana recognition.** The site's title starts with it, and every
  mail's subject starts with it in brackets (「カタカナ認識」 was a second name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    concept: str  # as the code, the API and the logs name it
    ja: str
    en: str
    # Messages (keys of the i18n tables) that name the concept: each must use the word.
    keys: tuple[str, ...] = ()
    # Patterns of the words it replaced (regular expressions: 「クラス」 alone is a character class,
    # only 「このクラス」 and the like meant a cohort).
    replaced_ja: tuple[str, ...] = ()
    replaced_en: tuple[str, ...] = ()

    def word(self, lang: str) -> str:
        return self.en if lang == "en" else self.ja


GLOSSARY: tuple[Term, ...] = (
    Term(
        "cohort",
        "コース",
        "cohort",
        keys=(
            "nav_cohorts",
            "lb_cohorts_title",
            "cl_cohort",
            "invite_mail_cohort",
            "docs_ex_cohort",
            "mail_result_cohort",
        ),
        replaced_ja=(
            "コホート",
            r"(この|どの|その|各|担当)クラス",
            r"クラス「",
            r"クラス(名|の時間帯|の提出期限|の作成)",
        ),
        replaced_en=(r"\b(any|your) class\b", r"\bclass's\b"),
    ),
    Term(
        "uploads left",
        "提出回数",
        "upload",
        keys=("remaining_today", "quota_used_up", "upload_confirm_button", "mail_result_uploads_left"),
        replaced_ja=("アップロード回数",),
        replaced_en=("submissions left",),
    ),
    Term(
        "time zone",
        "JST",
        "JST",
        replaced_ja=(r"[（(]Asia/Tokyo[)）]", r"Asia/Tokyo の"),
        replaced_en=(r"\(Asia/Tokyo\)", r"00:00 Asia/Tokyo"),
    ),
    Term(
        "similar submissions",
        "似ている提出",
        "similar submissions",
        keys=("nav_similarity", "sim_title"),
        replaced_en=("Similar work",),
    ),
    Term(
        "site",
        "カタカナ識別",
        "Katakana recognition",
        keys=(
            "site_title",
            "reset_mail_subject",
            "invite_mail_subject",
            "mail_result_subject_ok",
            "mail_result_subject_failed",
        ),
        replaced_ja=("カタカナ認識", r"【採点結果】", "katakana-scorer から"),
        replaced_en=(r"\[Katakana\]", r"\[Result\]", "by katakana-scorer"),
    ),
)

TERMS: dict[str, Term] = {term.concept: term for term in GLOSSARY}


def term(concept: str, lang: str) -> str:
    """The word for ``concept`` in ``lang`` (``ja`` unless ``en``)."""
    return TERMS[concept].word(lang)


def replaced_words(text: str, lang: str) -> list[str]:
    """Every replaced word found in ``text`` (written in ``lang``), as found: empty when the text
    keeps to the glossary."""
    found = []
    for entry in GLOSSARY:
        for pattern in entry.replaced_en if lang == "en" else entry.replaced_ja:
            found += [match.group(0) for match in re.finditer(pattern, text)]
    return found
