"""Request and response bodies of ``/api/v1``. Field descriptions become the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from app.folding import normalize_reading
from app.models import ALL_RUNTIMES, Language, Role, SubmissionStatus, TokenScope
from scorer.runtime import RuntimeName

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")
COHORT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


def check_email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise ValueError("not an email address (name@example.com)")
    return value


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone: use an IANA name such as Asia/Tokyo") from None
    return value


def check_text(value: str) -> str:
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise ValueError("control characters are not allowed")
    return value.strip()


Email = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(check_email)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, examples=["Asia/Tokyo"]), AfterValidator(check_timezone)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_text)]
Title = Annotated[str, Field(max_length=200), AfterValidator(check_text)]
Reading = Annotated[
    str,
    Field(max_length=200, description="the name's reading (フリガナ) in kana; lists sort by it in 五十音 order",
          examples=["ヤマダ ハナコ"]),
    AfterValidator(normalize_reading),
]  # fmt: skip
CohortName = Annotated[str, Field(pattern=COHORT_NAME_PATTERN, examples=["dl_tokyo_2"])]
Threshold = Annotated[float, Field(ge=0.0, le=1.0, description="best accuracy needed to pass, 0–1")]
DailyLimit = Annotated[int, Field(ge=0, le=100, description="uploads per trainee per local day")]


def check_runtimes(value: list[RuntimeName]) -> list[RuntimeName]:
    """The reference NumPy runtime is always allowed; the list is kept in RuntimeName order."""
    if RuntimeName.NUMPY not in value:
        raise ValueError('"numpy" must be allowed: the NumPy runtime is the reference every cohort offers')
    return [name for name in RuntimeName if name in value]


Runtimes = Annotated[
    list[RuntimeName],
    Field(
        min_length=1,
        description='the runtimes its submissions may run in: "numpy" (always) and "tensorflow" (TensorFlow + Keras, '
        "chosen for code that imports tensorflow or keras)",
        examples=[list(ALL_RUNTIMES)],
    ),
    AfterValidator(check_runtimes),
]
MAX_ID = 2**31 - 1  # PostgreSQL INTEGER; larger ids cannot exist and must not reach the driver


class ApiModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _CohortFields(BaseModel):
    @model_validator(mode="after")
    def _dates_in_order(self) -> Any:
        start, end = getattr(self, "start_date", None), getattr(self, "end_date", None)
        if start is not None and end is not None and end < start:
            raise ValueError("end_date is before start_date")
        return self


class CohortCreate(_CohortFields):
    model_config = ConfigDict(extra="forbid")

    name: CohortName
    title: Title = ""
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    daily_limit: DailyLimit = 3
    timezone: TimeZone = "Asia/Tokyo"
    pass_threshold: Threshold | None = None
    upload_deadline: AwareDatetime | None = Field(None, description="uploads close after this instant")
    leaderboard_visible: bool = Field(False, description="trainees see an anonymised leaderboard")
    runtimes: Runtimes = Field(default_factory=lambda: list(RuntimeName))


class CohortUpdate(_CohortFields):
    """Only the fields sent are changed; send ``null`` to clear an optional one."""

    model_config = ConfigDict(extra="forbid")

    name: CohortName | None = None
    title: Title | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    daily_limit: DailyLimit | None = None
    timezone: TimeZone | None = None
    pass_threshold: Threshold | None = None
    upload_deadline: AwareDatetime | None = None
    leaderboard_visible: bool | None = None
    archived: bool | None = None
    runtimes: Runtimes | None = None


class CohortOut(ApiModel):
    id: int
    name: str
    title: str
    start_date: dt.date | None
    end_date: dt.date | None
    daily_limit: int
    timezone: str
    pass_threshold: float | None
    upload_deadline: dt.datetime | None
    leaderboard_visible: bool
    archived: bool
    runtimes: list[str]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name
    reading: Reading = ""
    role: Role = Role.TRAINEE
    language: Language = Language.JA
    send_invite: bool = Field(True, description="email a link to set the password (the site's invitation)")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    reading: Reading | None = None
    role: Role | None = None
    language: Language | None = None
    is_active: bool | None = None


class UserOut(ApiModel):
    id: int
    email: str
    name: str
    reading: str
    role: Role
    language: Language
    is_active: bool
    created_at: dt.datetime
    has_password: bool


class EnrollmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=1, le=MAX_ID)
    role: Literal[Role.TRAINEE, Role.INSTRUCTOR] = Role.TRAINEE


class EnrollmentOut(ApiModel):
    cohort_id: int
    user_id: int
    role: Role
    name: str
    reading: str
    email: str
    is_active: bool


class BulkEnrolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csv: str = Field(
        max_length=1_000_000,
        description="UTF-8 CSV with the header name,email and, optionally, role and reading (role: trainee or"
        " instructor, empty = trainee; reading: the name's furigana in kana)",
        examples=["name,email,role,reading\n山田 花子,hanako@example.com,trainee,ヤマダ ハナコ\n"],
    )
    send_invites: bool = Field(True, description="email new accounts a link to set their password")


class BulkEnrolRow(BaseModel):
    line: int
    email: str
    user_id: int
    created: bool
    enrolled: bool
    invited: bool


class BulkEnrolResult(BaseModel):
    created: int
    enrolled: int
    unchanged: int
    invited: int
    rows: list[BulkEnrolRow]


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_cohort_id: int = Field(ge=1, le=MAX_ID)
    from_cohort_id: int | None = Field(None, ge=1, le=MAX_ID, description="default: every cohort the trainee is in")


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    extra: int = Field(ge=1, le=50, description="uploads added to that day's limit")
    day: dt.date | None = Field(None, description="the cohort's local day; default today")
    cohort_id: int | None = Field(None, ge=1, le=MAX_ID, description="default: the trainee's current cohort")
    reason: Annotated[str, Field(max_length=500), AfterValidator(check_text)] = ""


class GrantOut(ApiModel):
    id: int
    user_id: int
    day: dt.date
    extra: int
    reason: str
    granted_by_id: int | None
    created_at: dt.datetime


class GrantResult(BaseModel):
    grant: GrantOut
    limit: int = Field(description="the trainee's limit that day, grants included")
    used: int


class RescoreOut(ApiModel):
    id: int
    requested_at: dt.datetime
    requested_by_id: int | None
    previous_status: str
    previous_accuracy: float | None
    previous_testset_id: int | None
    previous: Any


class SubmissionOut(ApiModel):
    id: int
    user_id: int
    cohort_id: int
    status: SubmissionStatus
    created_at: dt.datetime
    quota_day: dt.date
    counts_toward_limit: bool
    original_filename: str
    zip_size: int
    validation_accuracy: float | None
    change_note: str = Field(description="what the trainee wrote they changed, at upload")
    accuracy: float | None
    error_code: str | None
    testset_id: int | None
    finished_at: dt.datetime | None


class SubmissionDetail(SubmissionOut):
    zip_sha256: str
    correct: int | None
    total: int | None
    macro_accuracy: float | None
    loss: float | None
    per_class: Any
    confusion: Any
    log: str | None
    duration_s: float | None
    peak_memory_mb: float | None
    notices: Any
    result: Any
    rescores: list[RescoreOut]
    queue_position: int | None = Field(
        description="its place in the scoring queue's fair order (1: next); null unless queued"
    )
    wait_s: float | None = Field(
        description="seconds until its result is expected (runs ahead x recent runs / live scoring workers); null when "
        "not queued, before any run finished, or with no scoring worker alive"
    )


class RescoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort_id: int = Field(ge=1, le=MAX_ID)


class RescoreResult(BaseModel):
    queued: list[int] = Field(description="submission ids reset to queued; scored with the active test set")
    testset_version: str | None = Field(description="the active test set they will be scored against")


class TestSetOut(ApiModel):
    __test__ = False

    id: int
    version: str
    sha256: str
    n_images: int
    class_counts: list[int]
    created_at: dt.datetime
    is_active: bool


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    scope: TokenScope = TokenScope.INSTRUCTOR
    user_id: int | None = Field(None, ge=1, le=MAX_ID, description="whose token; default the caller")


class TokenOut(ApiModel):
    id: int
    user_id: int
    name: str
    prefix: str
    scope: TokenScope
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenOut):
    secret: str = Field(description="shown once: store it now, it cannot be read again")


class Me(BaseModel):
    user: UserOut
    scope: TokenScope
    token_id: int


class LeaderboardEntryOut(ApiModel):
    rank: int | None
    user_id: int
    name: str
    reading: str
    email: str
    best_accuracy: float | None
    best_reached_at: dt.datetime | None
    latest_accuracy: float | None
    submissions: int
    last_submission_at: dt.datetime | None
    passed: bool
    standing: str


class SharedFileOut(ApiModel):
    kind: str = Field(description="zip, weights or code (submit_katakana without whitespace and comments)")
    sha256: str
    name_a: str = Field(description="the file's path in trainee A's zip (empty for the zip itself)")
    name_b: str
    submission_a_id: int | None
    submission_b_id: int | None
    trainees: int = Field(description="trainees of the cohort who handed in this very file")
    counts: bool = Field(description="few enough share it for it to be evidence about this pair")


class SimilarityPairOut(ApiModel):
    """Two trainees whose work may be shared: a reason to talk with them, not proof."""

    user_a_id: int
    name_a: str
    email_a: str
    user_b_id: int
    name_b: str
    email_b: str
    submission_a_id: int | None = Field(description="A's submission in the pair that is the strongest evidence")
    submission_b_id: int | None
    z: float | None = Field(description="the copy index against the cohort's independent pairs (null: not judged)")
    z_needed: float = Field(description="what z must reach: rises with the pairs of submissions compared")
    same_wrong: int | None = Field(description="hidden-set images both got wrong with the same wrong class")
    expected_same_wrong: float | None = Field(description="... expected if the two worked independently")
    same_wrong_easy: int | None = Field(description="... of the observed, on images most of the cohort gets right")
    reference_trainees: int | None = Field(description="other trainees whose answers the expectation rests on")
    compared_pairs: int = Field(description="pairs of their submissions compared")
    error_agreement: float | None = Field(description="same_wrong / both_wrong")
    both_wrong: int | None = Field(description="hidden-set images both submissions got wrong")
    agreement: float | None = Field(description="share of all images with the same prediction")
    testset_version: str | None
    above_threshold: bool = Field(description="z ≥ z_needed")
    shared_files: list[SharedFileOut]
    updated_at: dt.datetime
