"""One zip holding every trainee's best (or latest scored) submission of a cohort, streamed.

A cohort's submissions can add up to gigabytes, so the archive is never built in memory or on
disk: :func:`stream_zip` writes it through :mod:`zipfile` into a tiny buffer that is emptied after
every chunk, and the web layer sends each piece as it comes (the standard library writes a
data descriptor after each member when the output cannot seek). Members are stored, not
compressed again: the trainees' zips are compressed already.

Which submission each trainee contributes is read from the leaderboard's summary rows, so the
zip agrees with the leaderboard the instructor is looking at. An ``index.csv`` lists every
trainee, including those with nothing to include.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.folding import name_order
from app.models import Cohort, Enrollment, Role, Submission, TraineeScore, User
from app.services import storage
from app.services.csv_cells import csv_cell

CHUNK = 1024 * 1024
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


class Which(StrEnum):
    BEST = "best"
    LATEST = "latest"  # the latest scored submission (the leaderboard's "latest accuracy")


@dataclass(frozen=True)
class Member:
    user_id: int
    name: str
    email: str
    submission: Submission | None
    path: Path | None  # None: nothing to include (never scored, or the file is gone)
    arcname: str
    reading: str = ""


def _safe(text: str, limit: int = 80) -> str:
    cleaned = _UNSAFE.sub("_", text).strip(" .") or "_"
    return cleaned[:limit]


def members(db: Session, cohort: Cohort, which: Which, storage_dir: Path) -> list[Member]:
    """Every active trainee of the cohort, by name (by reading, as the leaderboard sorts them), with
    the chosen submission's file if any."""
    column = TraineeScore.best_submission_id if which == Which.BEST else TraineeScore.latest_submission_id
    rows = db.execute(
        select(User.id, User.name, User.email, User.reading, Submission)
        .select_from(Enrollment)
        .join(User, User.id == Enrollment.user_id)
        .outerjoin(TraineeScore, (TraineeScore.cohort_id == cohort.id) & (TraineeScore.user_id == User.id))
        .outerjoin(Submission, Submission.id == column)
        .where(Enrollment.cohort_id == cohort.id, Enrollment.role == Role.TRAINEE, User.is_active.is_(True))
    ).all()
    out = []
    for user_id, name, email, reading, submission in sorted(rows, key=lambda r: (name_order(r[1], r[3]), r[0])):
        path = None
        arcname = ""
        if submission is not None:
            candidate = storage.path_for(storage_dir, submission.storage_key)
            if candidate.is_file():
                path = candidate
                original = _safe(Path(submission.original_filename).name or "submission.zip")
                arcname = f"{_safe(name)}_{user_id}/{submission.id}_{original}"
        out.append(Member(user_id, name, email, submission, path, arcname, reading))
    return out


class _Buffer(io.RawIOBase):
    """A write-only, non-seekable sink whose contents the streamer takes after each write."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def index_csv(
    entries: list[Member],
    cohort_timezone: str,
    percent: Callable[[float | None], str],
    local_time: Callable[[dt.datetime | None, str], str],
) -> bytes:
    """The archive's table of contents, values formatted as on the leaderboard page."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["user_id", "name", "reading", "email", "submission_id", "accuracy", "submitted_at", "file_in_zip"])
    for m in entries:
        s = m.submission
        writer.writerow(
            [
                m.user_id,
                csv_cell(m.name),  # the trainee's own text: never a formula in the instructor's spreadsheet
                m.reading,  # kana only (app.folding.normalize_reading): never a formula
                csv_cell(m.email),
                s.id if s else "",
                percent(s.accuracy) if s else "",
                local_time(s.created_at, cohort_timezone) if s else "",
                csv_cell(m.arcname),  # starts with the name
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def stream_zip(entries: list[Member], index: bytes, timezone: str = "UTC") -> Iterator[bytes]:
    """The archive in pieces of about ``CHUNK`` bytes; only files are read here (no database).
    Members are dated on the cohort's clock (``timezone``), as ``index.csv`` writes the times: a
    zip's dates carry no zone, and unzipping shows them as they are."""
    sink = _Buffer()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr("index.csv", index)
        yield sink.take()
        for member in entries:
            if member.path is None:
                continue
            info = zipfile.ZipInfo(member.arcname, date_time=_zip_time(member.submission, timezone))
            with member.path.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while block := source.read(CHUNK):
                    target.write(block)
                    yield sink.take()
            yield sink.take()
    yield sink.take()  # the central directory


def _zip_time(submission: Submission | None, timezone: str) -> tuple[int, int, int, int, int, int]:
    if submission is None or submission.created_at.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    t = submission.created_at.astimezone(ZoneInfo(timezone))
    return (t.year, t.month, t.day, t.hour, t.minute, t.second)
