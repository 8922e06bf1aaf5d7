"""Put a submission's result email in the outbox, in the same transaction that stores the result.

The outbox row is the promise to email: it commits together with the result or not at all, and its
unique idempotency key ("result:<id>") means a result stored twice still promises one email.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.i18n import Lang
from app.models import EmailOutbox, EmailStatus, Submission, SubmissionStatus
from app.services.quota import quota_status
from app.settings import Settings
from scorer.disclosure import cap_visible
from scorer.errors import ErrorCode, ScoringError
from scorer.runtime import runtime_summary
from worker.mail.compose import ClassLine, ResultFacts, compose_result


def result_key(submission_id: int) -> str:
    return f"result:{submission_id}"


def uploads_left_today(session: Session, submission: Submission, now: dt.datetime) -> int:
    """The trainee's remaining uploads for today, counted exactly as the upload page counts them."""
    return quota_status(session, submission.user_id, submission.cohort, now).remaining


def error_message(submission: Submission, lang: Lang) -> str:
    """The stored error rendered again in the recipient's language (the row keeps code and params)."""
    error = (submission.result or {}).get("error") or {}
    code = submission.error_code or ErrorCode.INTERNAL_ERROR.value
    try:
        parsed = ErrorCode(code)
    except ValueError:
        return str(error.get("message", code))
    return ScoringError(parsed, dict(error.get("params") or {})).message(lang)


def result_facts(session: Session, submission: Submission, settings: Settings, now: dt.datetime) -> ResultFacts:
    user, cohort = submission.user, submission.cohort
    lang: Lang = "ja" if user.language == "ja" else "en"
    succeeded = submission.status == SubmissionStatus.SUCCEEDED
    lines = [
        ClassLine(
            label=str(item.get("label", item.get("class_id", "?"))),
            accuracy=item.get("accuracy"),
            correct=item.get("correct"),
            total=item.get("total"),
        )
        for item in (submission.per_class or [])
    ]
    return ResultFacts(
        submission_id=submission.id,
        language=lang,
        recipient_name=user.name,
        cohort_title=cohort.title or cohort.name,
        filename=submission.original_filename,
        submitted_at=submission.created_at,
        timezone=cohort.timezone,
        succeeded=succeeded,
        result_url=f"{settings.base_url}/submissions/{submission.id}",
        accuracy=submission.accuracy,
        correct=submission.correct,
        total=submission.total,
        loss=submission.loss,
        per_class=lines,
        pass_threshold=cohort.pass_threshold,
        uploads_left=uploads_left_today(session, submission, now),
        daily_limit=cohort.daily_limit,
        slot_returned=not submission.counts_toward_limit,
        error_message=None if succeeded else error_message(submission, lang),
        # Bounded again: the email is one more way out for a hidden-set run's output.
        log=_shown_log(submission, settings),
        runtime=runtime_summary(submission.runtime),
    )


def _shown_log(submission: Submission, settings: Settings) -> str:
    """A refunded run's mail carries no output; any other run's at most the excerpt."""
    if submission.error_blame == "server":
        return ""
    return cap_visible(submission.log, settings.hidden_run_excerpt_bytes)


def add_result_email(
    session: Session, submission: Submission, settings: Settings, now: dt.datetime
) -> EmailOutbox | None:
    """Add the outbox row (flushed, so it has an id), or None if this result was already promised."""
    key = result_key(submission.id)
    if session.scalar(select(EmailOutbox.id).where(EmailOutbox.idempotency_key == key)) is not None:
        return None
    mail = compose_result(result_facts(session, submission, settings, now))
    row = EmailOutbox(
        idempotency_key=key,
        to_address=submission.user.email,
        subject=mail.subject,
        body_text=mail.text,
        body_html=mail.html,
        status=EmailStatus.PENDING,
        attempts=0,
        created_at=now,
        submission_id=submission.id,
    )
    session.add(row)
    session.flush()
    return row
