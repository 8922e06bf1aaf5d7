"""Leaderboard search folds full-width Latin letters and case the same way on SQLite and
PostgreSQL: SQLite's own ``lower()`` folds ASCII only, so "ｙａｍａｄａ" found nobody there."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.folding import fold
from app.models import Cohort, Enrollment, Role, User
from app.services.leaderboard import board, board_page
from tests.app.conftest import People


def _enrol(db: Session, cohort: Cohort, email: str, name: str) -> int:
    user = User(email=email, name=name, role=Role.TRAINEE)
    db.add(user)
    db.flush()
    db.add(Enrollment(user_id=user.id, cohort_id=cohort.id, role=Role.TRAINEE))
    return user.id


def _found(db: Session, cohort: Cohort, search: str) -> set[int]:
    page = {e.user_id for e in board_page(db, cohort, search=search).entries}
    assert page == {e.user_id for e in board(db, cohort, search=search)}  # the CSV and API find the same
    return page


def test_full_width_and_plain_latin_find_each_other_in_names_and_emails(db: Session, people: People) -> None:
    cohort = people.cohort
    wide = _enrol(db, cohort, "wide@example.com", "ＹＡＭＡＤＡ Ｊｉｒｏ")  # typed with a Japanese IME
    plain = _enrol(db, cohort, "yamada.saburo@example.com", "Yamada Saburo")
    wide_mail = _enrol(db, cohort, "ｓｕｚｕｋｉ＠example.com", "鈴木 花")
    db.commit()
    assert _found(db, cohort, "yamada") == {wide, plain}
    assert _found(db, cohort, "ＹＡＭＡＤＡ") == {wide, plain}
    assert _found(db, cohort, "ｙａｍａｄａ ｊ") == {wide}
    assert _found(db, cohort, "jiro") == {wide}
    assert _found(db, cohort, "SUZUKI@") == {wide_mail}
    assert _found(db, cohort, "ｈａｎａｋｏ＠") == {people.trainee.id}  # hanako@example.com
    assert _found(db, cohort, "鈴木") == {wide_mail}
    assert _found(db, cohort, "％") == set()  # a full-width % is a literal character too, not LIKE's wildcard


def test_fold_is_nfkc_then_lower_case_then_hiragana() -> None:
    assert fold("ＡＢＣ ａｂｃ Ｔａｒｏ") == "abc abc taro"
    assert fold("ﬁle") == "file"  # a ligature splits
    assert fold("ｶﾀｶﾅ") == fold("カタカナ") == fold("かたかな") == "かたかな"  # half-width widen; either kana


def test_the_reading_is_searched_in_either_kana(db: Session, people: People) -> None:
    cohort = people.cohort
    yamada = _enrol(db, cohort, "y@example.com", "山田 花子")
    db.commit()
    assert _found(db, cohort, "やまだ") == set()  # no reading yet: 山田 is not found by its sound
    user = db.get(User, yamada)
    assert user is not None
    user.reading = "ヤマダ ハナコ"
    db.commit()
    assert _found(db, cohort, "やまだ") == _found(db, cohort, "ﾔﾏﾀﾞ") == _found(db, cohort, "ハナコ") == {yamada}
    assert _found(db, cohort, "ダ ハ") == {yamada}  # within the reading, across its space


def test_the_search_follows_a_renamed_user_and_a_changed_email(db: Session, people: People) -> None:
    """The folded key is written with the user: a new name or address is found at once, the old
    one no longer."""
    cohort = people.cohort
    user_id = _enrol(db, cohort, "old@example.com", "Ｔａｎａｋａ")
    db.commit()
    assert _found(db, cohort, "tanaka") == {user_id}
    user = db.get(User, user_id)
    assert user is not None
    user.name, user.email = "Ｗａｔａｎａｂｅ", "new@example.com"
    db.commit()
    assert _found(db, cohort, "tanaka") == set() and _found(db, cohort, "old@") == set()
    assert _found(db, cohort, "watanabe") == {user_id} == _found(db, cohort, "NEW@")
    assert _found(db, cohort, "watanabe\nnew") == set()  # nothing spans the name and the e-mail
