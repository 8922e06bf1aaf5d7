"""The result email, in the trainee's language, from facts gathered by the caller.

Composition is pure — facts in, subject and bodies out — so it is tested without a database and the
body stored in the outbox is exactly what was decided when the result was stored, however late the
email actually goes out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from jinja2 import Environment, select_autoescape

from scorer.errors import Lang
from worker.mail.texts import TEXTS

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


def _rows(facts: ResultFacts, t: dict[str, str]) -> list[tuple[str, str]]:
    rows = [
        (t["cohort"], facts.cohort_title),
        (t["filename"], facts.filename),
        (t["submitted_at"], _local_time(facts)),
    ]
    if facts.runtime:
        rows.append((t["runtime"], facts.runtime))
    if facts.succeeded:
        accuracy = percent(facts.accuracy)
        if facts.correct is not None and facts.total is not None:
            accuracy += "  (" + t["correct"].format(correct=facts.correct, total=facts.total) + ")"
        rows.append((t["accuracy"], accuracy))
        if facts.loss is not None:
            rows.append((t["loss"], f"{facts.loss:.4f}"))
    return rows


def _verdict(facts: ResultFacts, t: dict[str, str]) -> str | None:
    if not facts.succeeded or facts.pass_threshold is None or facts.accuracy is None:
        return None
    key = "passed" if facts.accuracy >= facts.pass_threshold else "not_passed"
    return t[key].format(threshold=percent(facts.pass_threshold))


def _uploads_left(facts: ResultFacts, t: dict[str, str]) -> str | None:
    if facts.uploads_left is None or facts.daily_limit is None:
        return None
    return t["uploads_left"].format(left=facts.uploads_left, limit=facts.daily_limit, tz=_zone(facts))


def compose_result(facts: ResultFacts) -> ComposedMail:
    t = TEXTS[facts.language]
    name = facts.filename
    if facts.succeeded:
        subject = t["subject_ok"].format(cohort=facts.cohort_title, filename=name, accuracy=percent(facts.accuracy))
    else:
        subject = t["subject_failed"].format(cohort=facts.cohort_title, filename=name)
    context = {
        "t": t,
        "facts": facts,
        "greeting": t["greeting"].format(name=facts.recipient_name),
        "intro": t["intro_ok"] if facts.succeeded else t["intro_failed"],
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


_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True)
_text_env = Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True)  # noqa: S701 - plain text

_TEXT = _text_env.from_string(
    """{{ greeting }}

{{ intro }}

{% for label, value in rows %}
{{ label }}: {{ value }}
{% endfor %}
{% if verdict %}

{{ verdict }}
{% endif %}
{% if facts.succeeded and facts.per_class %}

{{ t.per_class }}
{% for line in facts.per_class %}
  {{ line.label }}  {{ percent(line.accuracy) }}
{%- if line.total %}  ({{ line.correct }}/{{ line.total }}){% endif %}

{% endfor %}
{% endif %}
{% if not facts.succeeded %}

{{ t.reason }}:
{{ facts.error_message or "" }}
{% if log_tail %}

{{ t.log_tail }}:
{{ log_tail }}
{% endif %}
{% endif %}
{% if facts.slot_returned %}

{{ t.slot_returned }}
{% endif %}
{% if uploads_left %}

{{ uploads_left }}
{% endif %}

{{ t.link }}: {{ facts.result_url }}

--
{{ t.footer }}
"""
)

_HTML = _env.from_string(
    """<!doctype html>
<html lang="{{ facts.language }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ intro }}</title></head>
<body style="font-family: sans-serif; line-height: 1.5; margin: 0; padding: 12px; overflow-wrap: anywhere">
<p>{{ greeting }}</p>
<p>{{ intro }}</p>
<table cellpadding="4" style="border-collapse: collapse">
{% for label, value in rows %}<tr><th align="left">{{ label }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>
{% if verdict %}<p><strong>{{ verdict }}</strong></p>{% endif %}
{% if facts.succeeded and facts.per_class %}
<h3>{{ t.per_class }}</h3>
<table cellpadding="4" border="1" style="border-collapse: collapse">
<tr><th>{{ t.class }}</th><th>{{ t.class_accuracy }}</th></tr>
{% for line in facts.per_class %}
<tr><td align="center">{{ line.label }}</td><td align="right">{{ percent(line.accuracy) }}</td></tr>
{% endfor %}</table>
{% endif %}
{% if not facts.succeeded %}
<h3>{{ t.reason }}</h3>
<p style="white-space: pre-wrap">{{ facts.error_message or "" }}</p>
{% if log_tail %}<h3>{{ t.log_tail }}</h3>
<pre style="white-space: pre-wrap; overflow-wrap: anywhere">{{ log_tail }}</pre>{% endif %}
{% endif %}
{% if facts.slot_returned %}<p>{{ t.slot_returned }}</p>{% endif %}
{% if uploads_left %}<p>{{ uploads_left }}</p>{% endif %}
<p><a href="{{ facts.result_url }}">{{ t.link }}</a></p>
<p style="color: #666; font-size: small">{{ t.footer }}</p>
</body></html>
"""
)
