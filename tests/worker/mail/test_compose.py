"""The result email's content, in both languages, for a success and for a failure."""

from __future__ import annotations

import datetime as dt

from app.i18n.glossary import replaced_words
from scorer.classes import KATAKANA
from worker.mail.compose import ClassLine, ResultFacts, compose_result, log_tail

SUBMITTED = dt.datetime(2026, 11, 24, 15, 30, tzinfo=dt.UTC)  # 00:30 the next day in Tokyo


def facts(**overrides: object) -> ResultFacts:
    base: dict[str, object] = {
        "submission_id": 42,
        "language": "en",
        "recipient_name": "Hanako",
        "cohort_title": "DL Tokyo 2",
        "filename": "v3.zip",
        "submitted_at": SUBMITTED,
        "timezone": "Asia/Tokyo",
        "succeeded": True,
        "result_url": "https://scorer.example/submissions/42",
        "accuracy": 0.9512,
        "correct": 13792,
        "total": 14500,
        "loss": 0.18234,
        "per_class": [ClassLine(k, (80 + i) / 100, 80 + i, 100) for i, k in enumerate(KATAKANA)],
        "pass_threshold": 0.95,
        "uploads_left": 1,
        "daily_limit": 3,
    }
    return ResultFacts(**{**base, **overrides})  # type: ignore[arg-type]


def test_english_success_has_every_field() -> None:
    mail = compose_result(facts())
    assert mail.subject == "[Katakana recognition] Result for DL Tokyo 2: v3.zip scored 95.12%"
    text = mail.text
    assert "Cohort: DL Tokyo 2" in text
    assert "File: v3.zip" in text
    assert "Submitted: 2026-11-25 00:30 JST" in text  # the cohort's local time, its zone as pages write it
    assert "Test accuracy: 95.12%  (13792 of 14500 images correct)" in text
    assert "Test loss: 0.1823" in text
    assert "ア  80.00%  (80/100)" in text and "ソ  94.00%  (94/100)" in text
    assert "Passed (threshold: accuracy of at least 95.00%)." in text
    assert "Uploads left today: 1 of 3 (resets at 00:00 JST)" in text
    assert "Result page: https://scorer.example/submissions/42" in text
    assert '<a href="https://scorer.example/submissions/42">' in mail.html


def test_japanese_failure_shows_the_message_and_the_log_tail_not_the_score() -> None:
    log = "\n".join(f"line {i}" for i in range(100)) + "\nValueError: boom"
    mail = compose_result(
        facts(
            language="ja",
            recipient_name="山田 花子",
            succeeded=False,
            accuracy=None,
            loss=None,
            error_message="predict の実行中にエラーが起きました（ValueError: boom）。",
            log=log,
            slot_returned=False,
        )
    )
    assert mail.subject == "【カタカナ識別】採点結果 DL Tokyo 2: v3.zip は採点できませんでした"
    text = mail.text
    assert text.startswith("山田 花子 さん")
    assert "理由:\npredict の実行中にエラーが起きました" in text
    assert "ValueError: boom" in text and "line 99" in text and "line 10\n" not in text  # the tail only
    assert "Test accuracy" not in text and "合格" not in text
    assert "今日の残り提出回数: 1 / 3 回（0:00 JST にリセット）" in text
    assert "コース: DL Tokyo 2" in text


def test_optional_parts_are_left_out_when_unknown() -> None:
    mail = compose_result(facts(loss=None, pass_threshold=None, accuracy=0.5))
    assert "Test loss" not in mail.text
    assert "Passed" not in mail.text and "Not passed" not in mail.text
    assert "Not passed" in compose_result(facts(accuracy=0.5)).text


def test_html_fits_a_phone() -> None:
    """A viewport meta, or phones render the mail 980 px wide and shrink it."""
    html = compose_result(facts(succeeded=False, log="x" * 500)).html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "overflow-wrap: anywhere" in html


def test_the_words_are_the_glossarys() -> None:
    for language in ("ja", "en"):
        for succeeded in (True, False):
            mail = compose_result(facts(language=language, succeeded=succeeded, slot_returned=not succeeded))
            for text in (mail.subject, mail.text, mail.html):
                assert replaced_words(text, language) == [], (language, text)


def test_html_escapes_what_the_trainee_controls() -> None:
    mail = compose_result(facts(filename="<script>alert(1)</script>.zip"))
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html


def test_log_tail_keeps_the_last_lines() -> None:
    assert log_tail("a\nb\nc\n", lines=2) == "b\nc"
    assert log_tail(None) == ""


def test_japanese_success_is_japanese_only() -> None:
    """No English labels inside a Japanese mail (「Test accuracy（正解率）」 read as a leftover)."""
    mail = compose_result(facts(language="ja", recipient_name="山田 花子"))
    text = mail.text
    assert "テスト正解率: 95.12%" in text and "テスト損失: 0.1823" in text
    assert "Test accuracy" not in text and "Test loss" not in text


def test_the_runtime_that_scored_it_is_named_in_both_languages() -> None:
    runtime = "TensorFlow + Keras (Python 3.11.2, TensorFlow 2.21.0, Keras 3.15.1, NumPy 2.3.5)"
    english = compose_result(facts(runtime=runtime))
    assert f"Runtime: {runtime}" in english.text and runtime in english.html
    japanese = compose_result(facts(language="ja", succeeded=False, accuracy=None, runtime=runtime))
    assert f"採点環境: {runtime}" in japanese.text
    assert "Runtime" not in compose_result(facts()).text  # not recorded: no row
