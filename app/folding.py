"""How a search compares text: the same fold for what is stored and for what is typed.

NFKC, so full-width Latin typed with a Japanese IME ("Ｙａｍａｄａ"), ligatures and half-width katakana
match their ordinary forms, then lower case. Lower, not casefold: what is folded must not depend on
which database answers, and the fold is done here in Python, once, when a user is written (see
``User.search_key``): folding every row in SQL on each search cost PostgreSQL's ``normalize()``
several times the query itself.
"""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def search_key(name: str, email: str) -> str:
    """One column to search, name and e-mail folded; the line break between them is a character a
    search never contains (it is stripped), so no match spans the two."""
    return f"{fold(name)}\n{fold(email)}"
