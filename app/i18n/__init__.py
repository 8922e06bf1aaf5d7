"""Interface text, Japanese first. Each language's text lives in one module (``ja.py``, ``en.py``).

Pages call ``t("key", name=value)``; a key missing from a language falls back to Japanese and then
to the key itself, so a forgotten entry shows up as text instead of an error page (and the tests
check that both tables have the same keys).
"""

from __future__ import annotations

import datetime as dt

from app.i18n import en, ja
from scorer.errors import LANGS, Lang

__all__ = ["DEFAULT_LANG", "LANGS", "LANG_COOKIE", "TEXT", "Lang", "Translator", "normalize_lang"]

DEFAULT_LANG: Lang = "ja"
LANG_COOKIE = "katakana_lang"

TEXT: dict[Lang, dict[str, str]] = {"ja": ja.TEXT, "en": en.TEXT}


def normalize_lang(value: str | None) -> Lang:
    return "en" if value == "en" else "ja"


class Translator:
    def __init__(self, lang: Lang) -> None:
        self.lang = lang

    def __call__(self, key: str, **params: object) -> str:
        template = TEXT[self.lang].get(key) or TEXT[DEFAULT_LANG].get(key) or key
        return template.format(**params) if params else template

    def duration(self, delta: dt.timedelta) -> str:
        """ "3 h 12 min" / "3時間12分": how long until a reset."""
        minutes = max(0, int(delta.total_seconds() // 60))
        hours, minutes = divmod(minutes, 60)
        if hours:
            return self("duration_hm", h=hours, m=minutes)
        return self("duration_m", m=minutes)

    def clock(self, value: float | None) -> str:
        """ "2 min 05 s" / "2分05秒": elapsed and expected scoring time, to the second."""
        if value is None:
            return ""
        minutes, seconds = divmod(max(0, int(value)), 60)
        if minutes:
            return self("clock_ms", m=minutes, s=f"{seconds:02d}")
        return self("clock_s", s=seconds)

    def seconds(self, value: float | None) -> str:
        return "" if value is None else self("seconds", s=f"{value:.1f}")
