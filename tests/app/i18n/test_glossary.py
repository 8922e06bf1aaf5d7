"""One word for one thing (app/i18n/glossary.py): every message table, template and reader's document
uses the glossary's word and none of the words it replaced. The browser tests hold the rendered pages
and mails to the same glossary (tests/app/web/test_roles_browser.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.i18n import TEXT
from app.i18n.glossary import GLOSSARY, replaced_words, term
from scorer.errors import MESSAGES

REPO = Path(__file__).resolve().parents[3]
LANGS = ("ja", "en")


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_table_keeps_to_the_glossary(lang: str) -> None:
    tables = {
        "app/i18n": TEXT[lang],  # the site, the API's messages and the mails
        "scorer/errors.py": {code.value: text for code, text in MESSAGES[lang].items()},
    }
    found = {
        f"{where}:{key}": words
        for where, table in tables.items()
        for key, text in table.items()
        if (words := replaced_words(text, lang))
    }
    assert found == {}


@pytest.mark.parametrize("lang", LANGS)
def test_the_messages_that_name_a_concept_use_its_word(lang: str) -> None:
    missing = [
        (entry.concept, key)
        for entry in GLOSSARY
        for key in entry.keys
        if entry.word(lang).lower() not in TEXT[lang][key].lower()
    ]
    assert missing == []


def test_the_similarity_link_and_title_say_the_same() -> None:
    """The issue that started the glossary: the link said 類似度, the page 似ている提出."""
    for lang in LANGS:
        assert TEXT[lang]["sim_title"].lower().startswith(TEXT[lang]["nav_similarity"].lower())
    assert TEXT["ja"]["nav_similarity"] == term("similar submissions", "ja")


def _without_markup(text: str) -> str:
    return re.sub(r"\{[{%#].*?[}%#]\}", " ", text)  # Jinja tags and expressions: not words


def test_templates_and_the_readers_documents_keep_to_the_glossary() -> None:
    """Japanese text in the templates and the docs for trainees and instructors (the README's
    Japanese sections too); English in the docs is checked against the English patterns."""
    files = sorted((REPO / "app" / "templates").glob("*.html"))
    files += [path for path in (REPO / "docs").glob("*.md") if path.is_file()] + [REPO / "README.md"]
    found = {}
    for path in files:
        text = _without_markup(path.read_text(encoding="utf-8"))
        words = replaced_words(text, "ja")
        if path.suffix == ".md":
            words += replaced_words(text, "en")
        if words:
            found[str(path.relative_to(REPO))] = words
    assert found == {}
