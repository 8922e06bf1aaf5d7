"""Every word of the result email, one table per language: reword here, nowhere else."""

from __future__ import annotations

from typing import Final

from scorer.errors import Lang

TEXTS: Final[dict[Lang, dict[str, str]]] = {
    "ja": {
        "subject_ok": "【採点結果】{cohort}: {filename} の正解率 {accuracy}",
        "subject_failed": "【採点結果】{cohort}: {filename} は採点できませんでした",
        "greeting": "{name} さん",
        "intro_ok": "提出された zip の採点が終わりました。",
        "intro_failed": "提出された zip を採点できませんでした。",
        "cohort": "コース",
        "filename": "ファイル名",
        "runtime": "採点環境",
        "submitted_at": "提出日時",
        "accuracy": "テスト正解率",
        "loss": "テスト損失",
        "correct": "{correct} / {total} 枚正解",
        "per_class": "クラスごとの正解率",
        "class": "文字",
        "class_accuracy": "正解率",
        "passed": "合格です（基準: 正解率 {threshold} 以上）。",
        "not_passed": "合格基準（正解率 {threshold} 以上）に届いていません。",
        "uploads_left": "今日の残りアップロード回数: {left} / {limit}（{tz} の 0 時にリセット）",
        "slot_returned": "この提出は今日のアップロード回数に数えていません。",
        "reason": "理由",
        "log_tail": "ログの最後の部分",
        "link": "結果ページ",
        "footer": "このメールは katakana-scorer から自動で送信しています。返信はできません。",
    },
    "en": {
        "subject_ok": "[Result] {cohort}: {filename} scored {accuracy}",
        "subject_failed": "[Result] {cohort}: {filename} could not be scored",
        "greeting": "Hello {name},",
        "intro_ok": "Your submission has been scored.",
        "intro_failed": "Your submission could not be scored.",
        "cohort": "Cohort",
        "filename": "File",
        "runtime": "Runtime",
        "submitted_at": "Submitted",
        "accuracy": "Test accuracy",
        "loss": "Test loss",
        "correct": "{correct} of {total} images correct",
        "per_class": "Accuracy per class",
        "class": "Character",
        "class_accuracy": "Accuracy",
        "passed": "Passed (threshold: accuracy of at least {threshold}).",
        "not_passed": "Not passed yet (threshold: accuracy of at least {threshold}).",
        "uploads_left": "Uploads left today: {left} of {limit} (resets at 00:00 {tz})",
        "slot_returned": "This submission does not count against today's uploads.",
        "reason": "Reason",
        "log_tail": "End of the log",
        "link": "Result page",
        "footer": "This message was sent automatically by katakana-scorer; replies are not read.",
    },
}
