"""The result email, in the trainee's language, from facts gathered by the caller.

Composition is pure — facts in, subject and bodies out — so it is tested without a database and the
body stored in the outbox is exactly what was decided when the result was stored, however late the
email actually goes out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from app.i18n import Lang, Translator

LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class ClassLine:
    label: str  # the katakana
    accuracy: float | None
    correct: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class ResultFacts:
    submission_id: int
    language: Lang
    recipient_name: str
    cohort_title: str
    filename: str
    submitted_at: dt.datetime  # timezone-aware
    timezone: str  # the cohort's, e.g. "Asia/Tokyo": times are shown there
    succeeded: bool
    result_url: str
    accuracy: float | None = None
    correct: int | None = None
    total: int | None = None
    loss: float | None = None
    per_class: list[ClassLine] = field(default_factory=list)
    pass_threshold: float | None = None  # a fraction, like accuracy
    uploads_left: int | None = None
    daily_limit: int | None = None
    slot_returned: bool = False
    error_message: str | None = None
    log: str | None = None
    runtime: str = ""  # the runtime that ran it, with its main versions (scorer.runtime.runtime_summary)


@dataclass(frozen=True)
class ComposedMail:
    subject: str
    text: str
    html: str


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def log_tail(log: str | None, lines: int = LOG_TAIL_LINES) -> str:
    if not log:
        return ""
    return "\n".join(log.rstrip().splitlines()[-lines:])


def _local_time(facts: ResultFacts) -> str:
    """The cohort's clock with its zone as the pages write it ("2026-11-25 00:30 JST")."""
    local = facts.submitted_at.astimezone(ZoneInfo(facts.timezone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or facts.timezone}"


def _zone(facts: ResultFacts) -> str:
    return facts.submitted_at.astimezone(ZoneInfo(facts.timezone)).tzname() or facts.timezone


def _rows(facts: ResultFacts, t: Translator) -> list[tuple[str, str]]:
    rows = [
        (t("mail_result_cohort"), facts.cohort_title),
        (t("mail_result_filename"), facts.filename),
        (t("submitted_at"), _local_time(facts)),
    ]
    if facts.runtime:
        rows.append((t("mail_result_runtime"), facts.runtime))
    if facts.succeeded:
        accuracy = percent(facts.accuracy)
        if facts.correct is not None and facts.total is not None:
            accuracy += "  (" + t("mail_result_correct", correct=facts.correct, total=facts.total) + ")"
        rows.append((t("accuracy"), accuracy))
        if facts.loss is not None:
            rows.append((t("loss"), f"{facts.loss:.4f}"))
    return rows


def _verdict(facts: ResultFacts, t: Translator) -> str | None:
    if not facts.succeeded or facts.pass_threshold is None or facts.accuracy is None:
        return None
    key = "mail_result_passed" if facts.accuracy >= facts.pass_threshold else "mail_result_not_passed"
    return t(key, threshold=percent(facts.pass_threshold))


def _uploads_left(facts: ResultFacts, t: Translator) -> str | None:
    if facts.uploads_left is None or facts.daily_limit is None:
        return None
    return t("mail_result_uploads_left", left=facts.uploads_left, limit=facts.daily_limit, tz=_zone(facts))


def compose_result(facts: ResultFacts) -> ComposedMail:
    t = Translator(facts.language)
    if facts.succeeded:
        subject = t(
            "mail_result_subject_ok",
            cohort=facts.cohort_title,
            filename=facts.filename,
            accuracy=percent(facts.accuracy),
        )
    else:
        subject = t("mail_result_subject_failed", cohort=facts.cohort_title, filename=facts.filename)
    context = {
        "t": t,
        "facts": facts,
        "intro": t("mail_result_intro_ok") if facts.succeeded else t("mail_result_intro_failed"),
        "rows": _rows(facts, t),
        "verdict": _verdict(facts, t),
        "uploads_left": _uploads_left(facts, t),
        "log_tail": log_tail(facts.log) if not facts.succeeded else "",
        "percent": percent,
    }
    return ComposedMail(
        subject=subject.replace("\n", " "),
        text=_TEXT.render(context),
        html=_HTML.render(context),
    )


# The bodies are files beside this module, so a wording or layout change is a template change; the
# words themselves are the interface's (app/i18n, keys mail_result_*), so one table per language
# holds everything the service says.
_TEMPLATES = PackageLoader("worker.mail", "templates")
_html_env = Environment(loader=_TEMPLATES, autoescape=select_autoescape(default=True), trim_blocks=True)
_text_env = Environment(loader=_TEMPLATES, autoescape=False, trim_blocks=True, lstrip_blocks=True)  # noqa: S701 - plain text
_HTML = _html_env.get_template("result.html")
_TEXT = _text_env.get_template("result.txt")
