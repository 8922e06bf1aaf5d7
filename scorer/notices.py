"""Notices: things worth telling the trainee that do not stop scoring ("both entries found; the .py
was used"). ``code`` is stable, like an error code; the texts are for people."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notice:
    code: str
    ja: str
    en: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "ja": self.ja, "en": self.en}
