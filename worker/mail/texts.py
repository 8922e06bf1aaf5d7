"""Every word of the result email, one table per language: reword here, nowhere else.

The words for the course's things (the cohort, uploads, the site's name) are the glossary's
(:mod:`app.i18n.glossary`), as on the site."""

from __future__ import annotations

from typing import Final

from app.i18n import TEXT
from app.i18n.glossary import term
from scorer.errors import Lang

_SITE_JA, _SITE_EN = term("site", "ja"), term("site", "en")

TEXTS: Final[dict[Lang, dict[str, str]]] = {
    "ja": {
        "subject_ok": f"【{_SITE_JA}】採点結果 {{cohort}}: {{filename}} の正解率 {{accuracy}}",
        "subject_failed": f"【{_SITE_JA}】採点結果 {{cohort}}: {{filename}} は採点できませんでした",
        "greeting": "{name} さん",
        "intro_ok": "提出された zip の採点が終わりました。",
        "intro_failed": "提出された zip を採点できませんでした。",
        "cohort": term("cohort", "ja"),
        "filename": "ファイル名",
        "runtime": "採点環境",
        "submitted_at": "提出日時",
        "accuracy": "テスト正解率",
        "loss": "テスト損失",
        "correct": "{correct} / {total} 枚正解",
        "per_class": TEXT["ja"]["per_class_chart"],
        "class": "文字",
        "class_accuracy": "正解率",
        "passed": "合格です（基準: 正解率 {threshold} 以上）。",
        "not_passed": "合格基準（正解率 {threshold} 以上）に届いていません。",
        "uploads_left": "今日の残り提出回数: {left} / {limit} 回（0:00 {tz} にリセット）",
        "slot_returned": "サーバー側の問題だったため、この提出は今日の提出回数に数えていません。",
        "reason": "理由",
        "log_tail": "ログの最後の部分",
        "link": "結果ページ",
        "footer": f"このメールは {TEXT['ja']['site_title']} が自動で送信しています。返信はできません。",
    },
    "en": {
        "subject_ok": f"[{_SITE_EN}] Result for {{cohort}}: {{filename}} scored {{accuracy}}",
        "subject_failed": f"[{_SITE_EN}] Result for {{cohort}}: {{filename}} could not be scored",
        "greeting": "Hello {name},",
        "intro_ok": "Your submission has been scored.",
        "intro_failed": "Your submission could not be scored.",
        "cohort": term("cohort", "en").capitalize(),
        "filename": "File",
        "runtime": "Runtime",
        "submitted_at": "Submitted",
        "accuracy": "Test accuracy",
        "loss": "Test loss",
        "correct": "{correct} of {total} images correct",
        "per_class": TEXT["en"]["per_class_chart"],
        "class": "Character",
        "class_accuracy": "Accuracy",
        "passed": "Passed (threshold: accuracy of at least {threshold}).",
        "not_passed": "Not passed yet (threshold: accuracy of at least {threshold}).",
        "uploads_left": "Uploads left today: {left} of {limit} (resets at 00:00 {tz})",
        "slot_returned": "This was a server problem, so this submission does not count against today's uploads.",
        "reason": "Reason",
        "log_tail": "End of the log",
        "link": "Result page",
        "footer": f"This message was sent automatically by {TEXT['en']['site_title']}; replies are not read.",
    },
}
