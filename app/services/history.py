"""A trainee's history in a cohort as data to take away: 「識別精度の変遷」 for the course's
presentations (中間発表, 最終発表), as a CSV for a notebook and as a chart (:mod:`app.web.history_png`).

One row per submission, oldest first: when, which file, its state, the test accuracy, the
validation accuracy the trainee measured themselves (the course asks to compare the two), the pass
line and what they said they changed at upload. The trainee downloads their own; the cohort's
instructors and admins download any trainee's (the routes decide who may).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Cohort, Submission, SubmissionStatus, User
from app.services.csv_cells import csv_cell

# Stable column names, for ``pandas.read_csv`` in a notebook; accuracies in percent (96.15).
CSV_COLUMNS = (
    "submission_id", "submitted_at", "file", "status", "test_accuracy_percent",
    "validation_accuracy_percent", "pass_line_percent", "change_note",
)  # fmt: skip


@dataclass(frozen=True)
class HistoryRow:
    submission_id: int
    submitted_at: dt.datetime  # in the cohort's time zone
    file: str
    status: SubmissionStatus
    test_accuracy: float | None  # a fraction; None unless scored
    validation_accuracy: float | None  # the trainee's own measurement, when they gave it
    change_note: str

    @property
    def scored(self) -> bool:
        return self.status == SubmissionStatus.SUCCEEDED and self.test_accuracy is not None


@dataclass(frozen=True)
class History:
    trainee: str
    cohort: str
    timezone: str
    pass_line: float | None
    rows: list[HistoryRow]

    @property
    def scored(self) -> list[HistoryRow]:
        return [row for row in self.rows if row.scored]


def history(db: Session, trainee: User, cohort: Cohort) -> History:
    submissions = db.scalars(
        select(Submission)
        .where(Submission.user_id == trainee.id, Submission.cohort_id == cohort.id)
        .order_by(Submission.created_at, Submission.id)
    )
    zone = ZoneInfo(cohort.timezone)
    rows = [
        HistoryRow(
            submission_id=s.id,
            submitted_at=s.created_at.astimezone(zone),
            file=s.original_filename,
            status=s.status,
            test_accuracy=s.accuracy if s.status == SubmissionStatus.SUCCEEDED else None,
            validation_accuracy=s.validation_accuracy,
            change_note=s.change_note,
        )
        for s in submissions
    ]
    return History(trainee.name, cohort.title or cohort.name, cohort.timezone, cohort.pass_threshold, rows)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.2f}"


def history_csv(found: History) -> bytes:
    """UTF-8 without a byte-order mark (``pandas.read_csv`` would keep it in the first column's
    name); times in the cohort's zone with their offset (ISO 8601), accuracies in percent."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in found.rows:
        writer.writerow(
            [
                row.submission_id,
                row.submitted_at.isoformat(timespec="minutes"),
                csv_cell(row.file),
                row.status.value,
                _percent(row.test_accuracy),
                _percent(row.validation_accuracy),
                _percent(found.pass_line),
                csv_cell(row.change_note),  # the trainee's own text: never a formula in a spreadsheet
            ]
        )
    return out.getvalue().encode("utf-8")
