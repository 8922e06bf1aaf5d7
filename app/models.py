"""The database schema, as SQLAlchemy 2 models. Alembic migrations (``migrations/``) create it.

The worker and the site both import these names. Every timestamp is a timezone-aware UTC datetime
(:class:`UTCDateTime` makes SQLite, which has no time zones, give them back that way too); the only
local date is ``Submission.quota_day``, the day of the daily limit in the cohort's time zone.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy import text as sa_text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.folding import search_key
from scorer.runtime import RuntimeName

ALL_RUNTIMES = tuple(name.value for name in RuntimeName)  # what a new cohort allows


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always read back timezone-aware; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _enum(cls: type[StrEnum], name: str) -> Enum:
    # Stored as VARCHAR + CHECK on both databases: adding a value later is a plain migration.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(StrEnum):
    TRAINEE = "trainee"
    INSTRUCTOR = "instructor"
    ADMIN = "admin"


class Language(StrEnum):
    JA = "ja"
    EN = "en"


class SubmissionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EmailStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class TokenPurpose(StrEnum):
    RESET = "reset"  # "forgot my password"
    INVITE = "invite"  # first-time password for an account an admin created


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # None until the invite is used
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.TRAINEE)
    language: Mapped[Language] = mapped_column(_enum(Language, "language"), default=Language.JA)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Name and e-mail folded for search (app.folding), written with them (see _keep_search_key).
    search_key: Mapped[str] = mapped_column(Text, default="", server_default="")
    # How the name is read (フリガナ, katakana; "" when not given): lists of people sort by it in
    # 五十音 order and the search matches it (app.folding).
    reading: Mapped[str] = mapped_column(String(200), default="", server_default="")

    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="user", cascade="all, delete-orphan")


@event.listens_for(User, "before_insert")
@event.listens_for(User, "before_update")
def _keep_search_key(_mapper: Any, _connection: Any, user: User) -> None:
    """Whenever a user is written through the ORM, its search key follows its name, e-mail and reading."""
    user.search_key = search_key(user.name or "", user.email or "", user.reading or "")


class Cohort(Base):
    __tablename__ = "cohorts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # e.g. "dl_tokyo_2"
    title: Mapped[str] = mapped_column(String(200), default="")
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    daily_limit: Mapped[int] = mapped_column(Integer, default=3)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Tokyo")
    pass_threshold: Mapped[float | None] = mapped_column(Float)
    upload_deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    leaderboard_visible: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # The runtimes its submissions may run in (scorer.runtime.RuntimeName values): "numpy" always,
    # "tensorflow" where Keras is allowed. New cohorts allow both; see migration 0012 for older ones.
    runtimes: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: list(ALL_RUNTIMES), server_default=sa_text("'[\"numpy\"]'")
    )

    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="cohort", cascade="all, delete-orphan")


class Enrollment(Base):
    """A user in a cohort; ``role`` is their role there (a trainee, or an instructor teaching it)."""

    __tablename__ = "enrollments"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "enrollment_role"), default=Role.TRAINEE)

    user: Mapped[User] = relationship(back_populates="enrollments")
    cohort: Mapped[Cohort] = relationship(back_populates="enrollments")


class TestSet(Base):
    __tablename__ = "test_sets"
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(100), unique=True)
    data_path: Mapped[str] = mapped_column(String(1000))
    labels_path: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    n_images: Mapped[int] = mapped_column(Integer)
    class_counts: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)


def _created_at(context: Any) -> dt.datetime:
    """A new row's ``queued_at``, unless given: the moment it was created (the upload)."""
    created = context.get_current_parameters().get("created_at")
    return created if isinstance(created, dt.datetime) else utcnow()


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_user_day", "user_id", "quota_day"),
        Index("ix_submissions_status_created", "status", "created_at"),
        # The fair order counts the runs each trainee had while the oldest waiting upload waited.
        Index("ix_submissions_finished_at", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    status: Mapped[SubmissionStatus] = mapped_column(
        _enum(SubmissionStatus, "submission_status"), default=SubmissionStatus.QUEUED
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When it last entered the scoring queue: its upload, or a rescoring. The fair order
    # (app.services.scoring_queue) and the queue's waits count from here, not from the upload.
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_created_at)
    quota_day: Mapped[dt.date] = mapped_column(Date)  # the day of the daily limit, cohort's time zone
    counts_toward_limit: Mapped[bool] = mapped_column(Boolean, default=True)  # False: slot given back

    original_filename: Mapped[str] = mapped_column(String(500))
    zip_sha256: Mapped[str] = mapped_column(String(64), index=True)
    zip_size: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(200))  # relative to settings.storage_dir
    validation_accuracy: Mapped[float | None] = mapped_column(Float)  # what the trainee measured
    change_note: Mapped[str] = mapped_column(String(200), default="", server_default="")  # what they changed

    task_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    worker_hostname: Mapped[str | None] = mapped_column(String(200))

    error_code: Mapped[str | None] = mapped_column(String(64))  # scorer.errors.ErrorCode value
    error_blame: Mapped[str | None] = mapped_column(String(16))  # scorer.errors.Blame value
    accuracy: Mapped[float | None] = mapped_column(Float)
    correct: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    macro_accuracy: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    per_class: Mapped[Any | None] = mapped_column(JSON)
    confusion: Mapped[Any | None] = mapped_column(JSON)
    log: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float)
    testset_id: Mapped[int | None] = mapped_column(ForeignKey("test_sets.id", ondelete="SET NULL"))
    runtime: Mapped[Any | None] = mapped_column(JSON)
    limits: Mapped[Any | None] = mapped_column(JSON)
    notices: Mapped[Any | None] = mapped_column(JSON)
    result: Mapped[Any | None] = mapped_column(JSON)  # the scorer's full report
    # For the instructors' similarity view only, never shown to trainees. Deferred, so the many
    # queries that load whole rows do not read 14,500 bytes of predictions each.
    predictions: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # uint8 ids, testset_id's set
    file_hashes: Mapped[Any | None] = mapped_column(JSON, deferred=True)  # [{kind, name, sha256}]

    user: Mapped[User] = relationship()
    cohort: Mapped[Cohort] = relationship()
    testset: Mapped[TestSet | None] = relationship()


class PreflightVerdictCache(Base):
    """The pre-flight verdict on one zip, by content hash: an identical re-upload is not re-run.

    Also keyed by the public set the smoke run scored it on ("" for none): importing another set
    changes the smoke accuracy, so earlier verdicts must not answer for the new set.
    """

    __tablename__ = "preflight_verdict_cache"

    zip_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    engine_version: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_set_sha256: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    ok: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[Any] = mapped_column(JSON)  # CheckReport.to_json()
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PreflightLease(Base):
    """The pre-flight a trainee has under way: at most one each (the primary key says so across all
    web processes). Deleted when the check ends; one whose process died frees at ``expires_at``."""

    __tablename__ = "preflight_leases"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    token: Mapped[str] = mapped_column(String(32))  # so a late release never frees a newer lease
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PreflightRun(Base):
    """One pre-flight a trainee started, for the hourly rate (rows older than an hour are purged)."""

    __tablename__ = "preflight_runs"
    __table_args__ = (Index("ix_preflight_runs_user_time", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SmokeConfirmation(Base):
    """A trainee's "upload it anyway" for a zip whose pre-flight scored near chance on public images.

    Kept per trainee and zip (by content hash), so the same zip does not ask the same trainee twice.
    """

    __tablename__ = "smoke_confirmations"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    zip_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PreflightState(StrEnum):
    """Where one upload's pre-flight stands (``Preflight.state``)."""

    CHECKING = "checking"  # waiting for a pre-flight worker, or being checked
    REFUSED = "refused"  # refused by the pre-flight, or the slot could not be spent: nothing spent
    NEEDS_CONFIRMATION = "needs_confirmation"  # near chance: waits for the trainee's "upload it anyway"
    ACCEPTED = "accepted"  # the slot is spent: ``submission_id`` names the submission
    FAILED = "failed"  # the server's fault (or nobody answered in time): nothing spent
    EXPIRED = "expired"  # needs_confirmation that nobody confirmed in time


class Preflight(Base):
    """An upload whose pre-flight is under way or done: the upload request answers without waiting
    for it, and the pre-flight worker acts on the verdict (spends the slot, or refuses) whether or
    not anyone still watches."""

    __tablename__ = "preflights"
    __table_args__ = (
        Index("ix_preflights_user_created", "user_id", "created_at"),
        # The sweep looks for unconfirmed pre-flights past their window every minute: by state and age.
        Index("ix_preflights_state_updated", "state", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    # A plain string column (as the table was created): "needs_confirmation" is longer than the
    # CHECK-constrained enums' 16 characters. StrEnum members compare equal to the stored strings.
    state: Mapped[PreflightState] = mapped_column(String(20), default=PreflightState.CHECKING)
    storage_key: Mapped[str] = mapped_column(String(200))
    zip_sha256: Mapped[str] = mapped_column(String(64))
    zip_size: Mapped[int] = mapped_column(Integer)
    original_filename: Mapped[str] = mapped_column(String(500))
    validation_accuracy: Mapped[float | None] = mapped_column(Float)
    change_note: Mapped[str] = mapped_column(String(200), default="", server_default="")
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)  # "upload it anyway" sent with the zip
    lease_token: Mapped[str] = mapped_column(String(32), default="")  # the pre-flight turn it holds
    # When a pre-flight worker took it (None: waiting for one): the fair order of the pre-flight
    # queue claims it once, and a trainee's pre-flight time in the last hour is counted from here.
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    task_id: Mapped[str | None] = mapped_column(String(200))  # the delivery that claimed it (its Celery task)
    verdict: Mapped[Any | None] = mapped_column(JSON)  # PreflightVerdict.to_json()
    # Why it ended without a submission: {"key": the message's i18n key} and, when a slot could not be
    # spent, "reason" (SubmissionRefused's); None while checking, accepted or confirmed.
    refusal: Mapped[Any | None] = mapped_column(JSON)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class EmailOutbox(Base):
    __tablename__ = "email_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)  # e.g. "result:42"
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[EmailStatus] = mapped_column(_enum(EmailStatus, "email_status"), default=EmailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"))


class LoginAttempt(Base):
    """One login try; recent failures for an (email, IP) pair throttle further tries."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_ip_time", "email", "ip", "created_at"),
        Index("ix_login_attempts_ip_time", "ip", "created_at"),  # the per-address (spraying) limit
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: claimed, being checked
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PasswordToken(Base):
    """A one-time link to set a password; only the token's SHA-256 is stored."""

    __tablename__ = "password_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[TokenPurpose] = mapped_column(_enum(TokenPurpose, "token_purpose"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class UserSession(Base):
    """A signed-in browser. Server-side, so logout and a password change end it for real."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


# --- Leaderboard and admin API ---
# API tokens, extra uploads granted for a day, the history kept when a submission is rescored, and
# the indexes the leaderboard's aggregate query reads (it never touches the submissions table rows).


class TokenScope(StrEnum):
    ADMIN = "admin"
    INSTRUCTOR = "instructor"


class ApiToken(Base):
    """A bearer token for ``/api/v1``; only the SHA-256 of its secret is stored.

    The scope caps what the token may do, and the owner's current role caps it again at each use: an
    admin token of someone who is no longer an admin, or of a deactivated user, stops working.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the secret's first characters, to recognise it
    scope: Mapped[TokenScope] = mapped_column(_enum(TokenScope, "token_scope"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class UploadGrant(Base):
    """Extra uploads for one trainee on one day (the cohort's local day, like ``quota_day``)."""

    __tablename__ = "upload_grants"
    __table_args__ = (Index("ix_upload_grants_user_day", "user_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)
    extra: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500), default="")
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubmissionRescore(Base):
    """One rescoring of a submission: the result it had before, so a new test set loses no history."""

    __tablename__ = "submission_rescores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    previous_status: Mapped[str] = mapped_column(String(16))
    previous_accuracy: Mapped[float | None] = mapped_column(Float)
    previous_testset_id: Mapped[int | None] = mapped_column(ForeignKey("test_sets.id", ondelete="SET NULL"))
    previous: Mapped[Any] = mapped_column(JSON)  # the result columns as they were


# The leaderboard aggregates a cohort's submissions per trainee from this index alone (covering).
Index(
    "ix_submissions_leaderboard",
    Submission.cohort_id,
    Submission.user_id,
    Submission.status,
    Submission.accuracy,
    Submission.created_at,
)
# A cohort's people by role, for the leaderboard's outer join and the instructor checks.
Index("ix_enrollments_cohort_role", Enrollment.cohort_id, Enrollment.role)


class SimilarityPair(Base):
    """Two trainees of a cohort and the strongest evidence that their work is shared.

    Kept up to date after every result (``worker.similarity``): the pair of their submissions
    that is the strongest evidence of copying (the greatest copy index, on ``testset_id``), and the files
    both handed in identically.
    Instructors of the cohort and admins read it; trainees never do.
    """

    __tablename__ = "similarity_pairs"
    __table_args__ = (
        UniqueConstraint("cohort_id", "user_a_id", "user_b_id", name="uq_similarity_pairs_cohort_users"),
        Index("ix_similarity_pairs_cohort_rate", "cohort_id", "error_agreement"),
        Index("ix_similarity_pairs_cohort_user_b", "cohort_id", "user_b_id"),  # the unique one serves user_a
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    user_a_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # the smaller id
    user_b_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    testset_id: Mapped[int | None] = mapped_column(ForeignKey("test_sets.id", ondelete="SET NULL"))
    submission_a_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"))
    submission_b_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"))
    both_wrong: Mapped[int | None] = mapped_column(Integer)
    same_wrong: Mapped[int | None] = mapped_column(Integer)
    error_agreement: Mapped[float | None] = mapped_column(Float)  # same_wrong / both_wrong
    agreement: Mapped[float | None] = mapped_column(Float)  # same prediction, right or wrong
    # The copy index (scorer.similarity.Reference): identical wrong answers expected under
    # independence, the lift of the observed over them and its standard error (NULL: not judged),
    # those on images most of the cohort gets right, and the other trainees the expectation rests on.
    expected_same_wrong: Mapped[float | None] = mapped_column(Float)
    lift: Mapped[float | None] = mapped_column(Float)
    lift_se: Mapped[float | None] = mapped_column(Float)
    same_wrong_easy: Mapped[int | None] = mapped_column(Integer)
    reference_trainees: Mapped[int | None] = mapped_column(Integer)
    shared_files: Mapped[Any] = mapped_column(JSON, default=list)  # [{kind, name_a, name_b, sha256, ...}]
    shared_count: Mapped[int] = mapped_column(Integer, default=0)  # len(shared_files), for the query
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    user_a: Mapped[User] = relationship(foreign_keys=[user_a_id])
    user_b: Mapped[User] = relationship(foreign_keys=[user_b_id])


class SubmissionFile(Base):
    """One digest of a scored submission (its zip, a weight file, its normalised code), indexed by
    cohort and digest so that finding who else handed in the same file is one lookup."""

    __tablename__ = "submission_files"
    __table_args__ = (Index("ix_submission_files_cohort_sha256", "cohort_id", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # zip, weights or code
    name: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))


class TraineeScore(Base):
    """Per trainee and cohort: what the leaderboard shows, kept up to date whenever a submission of
    theirs is created, scored, rescored or deleted (``app.services.trainee_scores``).

    The leaderboard then reads one small row per trainee instead of aggregating every submission
    on each request; the row is recomputed from the submissions (never incremented), so it is exact
    by construction and a refresh can always repair it.
    """

    __tablename__ = "trainee_scores"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    submissions: Mapped[int] = mapped_column(Integer, default=0)  # every status
    last_submission_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    best_accuracy: Mapped[float | None] = mapped_column(Float)  # succeeded runs only
    best_reached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # first time the best was reached
    best_submission_id: Mapped[int | None] = mapped_column(Integer)
    latest_accuracy: Mapped[float | None] = mapped_column(Float)  # the latest succeeded run
    latest_submission_id: Mapped[int | None] = mapped_column(Integer)


class LeaderboardVersion(Base):
    """A cohort's leaderboard version: a random token the database replaces whenever anything the
    board shows changes (a trainee's summary, an enrolment, a trainee's name, e-mail or activation).

    Web processes keep a cohort's ranked board in memory under this token
    (:mod:`app.services.leaderboard`) and read only the token on each request. Triggers written by
    the migration ``0011_leaderboard_versions`` replace it, so every writer is covered, the ORM,
    Core statements, cascades and other processes alike. A random token rather than a counter never
    comes back: not after a rollback, and not in another database whose cohort has the same id.

    SQLite drops a table's triggers when a migration rebuilds the table (Alembic's batch mode): a
    migration that rebuilds ``users``, ``enrollments``, ``trainee_scores`` or ``cohorts`` must
    create their triggers again (the leaderboard's invalidation tests fail until it does).
    """

    __tablename__ = "leaderboard_versions"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True)
    token: Mapped[str] = mapped_column(String(36))
    # The token the latest changes started from, and the users whose rows changed since, as
    # ",12,57," (None: not known). A process holding the board of ``previous`` re-reads those
    # users' rows instead of the whole board.
    previous: Mapped[str | None] = mapped_column(String(36))
    changed_users: Mapped[str | None] = mapped_column(Text)
