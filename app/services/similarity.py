"""Reading a cohort's similarity pairs for instructors and admins (the worker writes them).

A pair is listed when its strongest pair of submissions agrees in its mistakes at least as much as
the threshold (with enough shared mistakes to mean something), or when the two trainees handed in
an identical file. Who may read this is decided by the callers with ``cohort_access``; trainees,
emails and the anonymised leaderboard never see any of it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased

from app.models import SimilarityPair, TestSet, User
from app.services.csv_cells import csv_cell

FILE_KINDS = ("zip", "weights", "code")


@dataclass(frozen=True)
class SharedFile:
    kind: str  # zip, weights or code
    sha256: str
    name_a: str
    name_b: str
    submission_a_id: int | None
    submission_b_id: int | None


@dataclass(frozen=True)
class FlaggedPair:
    user_a_id: int
    name_a: str
    email_a: str
    user_b_id: int
    name_b: str
    email_b: str
    submission_a_id: int | None  # the pair of submissions whose mistakes agree most
    submission_b_id: int | None
    error_agreement: float | None
    both_wrong: int | None
    same_wrong: int | None
    agreement: float | None
    testset_version: str | None
    updated_at: dt.datetime
    above_threshold: bool
    shared_files: list[SharedFile] = field(default_factory=list)


def _shared_files(value: Any) -> list[SharedFile]:
    out = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        out.append(
            SharedFile(
                kind=str(item.get("kind", "")),
                sha256=str(item.get("sha256", "")),
                name_a=str(item.get("name_a", "")),
                name_b=str(item.get("name_b", "")),
                submission_a_id=item.get("submission_a_id"),
                submission_b_id=item.get("submission_b_id"),
            )
        )
    return sorted(out, key=lambda f: (FILE_KINDS.index(f.kind) if f.kind in FILE_KINDS else 9, f.name_a))


def flagged_pairs(db: Session, cohort_id: int, *, threshold: float, min_shared_mistakes: int) -> list[FlaggedPair]:
    """Pairs worth a conversation, strongest first: identical files, then by error agreement."""
    user_a, user_b = aliased(User), aliased(User)
    above = and_(SimilarityPair.error_agreement >= threshold, SimilarityPair.both_wrong >= min_shared_mistakes)
    rows = db.execute(
        select(SimilarityPair, user_a, user_b, TestSet.version)
        .join(user_a, user_a.id == SimilarityPair.user_a_id)
        .join(user_b, user_b.id == SimilarityPair.user_b_id)
        .outerjoin(TestSet, TestSet.id == SimilarityPair.testset_id)
        .where(SimilarityPair.cohort_id == cohort_id, or_(above, SimilarityPair.shared_count > 0))
    ).all()
    pairs = []
    for pair, a, b, version in rows:
        is_above = (
            pair.error_agreement is not None
            and pair.error_agreement >= threshold
            and (pair.both_wrong or 0) >= min_shared_mistakes
        )
        pairs.append(
            FlaggedPair(
                user_a_id=a.id,
                name_a=a.name,
                email_a=a.email,
                user_b_id=b.id,
                name_b=b.name,
                email_b=b.email,
                submission_a_id=pair.submission_a_id,
                submission_b_id=pair.submission_b_id,
                error_agreement=pair.error_agreement,
                both_wrong=pair.both_wrong,
                same_wrong=pair.same_wrong,
                agreement=pair.agreement,
                testset_version=version,
                updated_at=pair.updated_at,
                above_threshold=is_above,
                shared_files=_shared_files(pair.shared_files),
            )
        )
    pairs.sort(key=lambda p: (not p.shared_files, -(p.error_agreement or 0.0), p.name_a, p.name_b))
    return pairs


CSV_HEADER = [
    "trainee_a", "email_a", "submission_a", "trainee_b", "email_b", "submission_b",
    "error_agreement", "both_wrong", "same_wrong", "agreement", "above_threshold", "testset", "shared_files",
]  # fmt: skip


def pairs_csv(pairs: list[FlaggedPair]) -> str:
    """One row per pair; shared files as ``kind:name_a=name_b`` joined by ``; ``. UTF-8 with a BOM."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for p in pairs:
        files = "; ".join(f"{f.kind}:{f.name_a or '(zip)'}={f.name_b or '(zip)'}" for f in p.shared_files)
        writer.writerow(
            [
                csv_cell(p.name_a), csv_cell(p.email_a), p.submission_a_id or "",
                csv_cell(p.name_b), csv_cell(p.email_b), p.submission_b_id or "",
                "" if p.error_agreement is None else f"{p.error_agreement:.4f}",
                "" if p.both_wrong is None else p.both_wrong,
                "" if p.same_wrong is None else p.same_wrong,
                "" if p.agreement is None else f"{p.agreement:.4f}",
                "yes" if p.above_threshold else "no",
                csv_cell(p.testset_version), csv_cell(files),
            ]
        )  # fmt: skip
    return "\ufeff" + out.getvalue()
