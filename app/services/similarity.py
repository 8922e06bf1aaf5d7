"""Reading a cohort's similarity pairs for instructors and admins (the worker writes them).

A pair is listed when its copy index reaches what independence would produce at most once in
``false_alarm_rate`` pairs (the cohort's own null, ``scorer.similarity.CopyNull``; the threshold rises
with the number of pairs of submissions compared), or when the two trainees handed in an identical
file that few others in the cohort hand in (at most ``rare_max`` trainees: a file half the cohort
hands in is the course's, and says nothing about a pair). Who may read this is decided by the callers
with ``cohort_access``; trainees, emails and the anonymised leaderboard never see any of it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from app.models import Role, SimilarityPair, Submission, SubmissionFile, SubmissionStatus, TestSet, User
from app.services.csv_cells import csv_cell
from scorer.similarity import SMALL_COHORT, CopyNull, z_needed

FILE_KINDS = ("weights", "zip", "code")  # the strongest evidence first


@dataclass(frozen=True)
class SharedFile:
    kind: str  # zip, weights or code
    sha256: str
    name_a: str
    name_b: str
    submission_a_id: int | None
    submission_b_id: int | None
    trainees: int  # trainees of the cohort who handed in this very file
    counts: bool  # few enough of them for the file to be evidence about this pair


@dataclass(frozen=True)
class FlaggedPair:
    user_a_id: int
    name_a: str
    email_a: str
    user_b_id: int
    name_b: str
    email_b: str
    submission_a_id: int | None  # the pair of submissions that is the strongest evidence
    submission_b_id: int | None
    error_agreement: float | None
    both_wrong: int | None
    same_wrong: int | None
    agreement: float | None
    expected_same_wrong: float | None  # identical wrong answers expected under independence
    same_wrong_easy: int | None  # identical wrong answers on images most of the cohort gets right
    reference_trainees: int | None  # other trainees the expectation rests on
    compared_pairs: int  # pairs of their submissions compared (scored on the pair's test set)
    z: float | None  # the copy index against the cohort's null (None: not judged)
    z_needed: float  # what it must reach for this pair
    testset_version: str | None
    updated_at: dt.datetime
    above_threshold: bool
    shared_files: list[SharedFile] = field(default_factory=list)

    @property
    def evidence_files(self) -> list[SharedFile]:
        return [f for f in self.shared_files if f.counts]


@dataclass(frozen=True)
class SimilarityView:
    pairs: list[FlaggedPair]
    null: CopyNull  # where the cohort's independent pairs lie
    small: bool  # too few pairs of its own: the null rests mostly on the synthetic baseline's prior
    false_alarm_rate: float
    rare_max: int


def _shared_files(value: Any, sharing: dict[tuple[str, str], int], rare_max: int) -> list[SharedFile]:
    out = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        kind, sha = str(item.get("kind", "")), str(item.get("sha256", ""))
        trainees = sharing.get((kind, sha), 2)
        out.append(
            SharedFile(
                kind=kind,
                sha256=sha,
                name_a=str(item.get("name_a", "")),
                name_b=str(item.get("name_b", "")),
                submission_a_id=item.get("submission_a_id"),
                submission_b_id=item.get("submission_b_id"),
                trainees=trainees,
                counts=trainees <= rare_max,
            )
        )
    return sorted(out, key=lambda f: (not f.counts, FILE_KINDS.index(f.kind) if f.kind in FILE_KINDS else 9, f.name_a))


def _sharing(db: Session, cohort_id: int, digests: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How many of the cohort's trainees handed in each file (in a scored submission)."""
    if not digests:
        return {}
    rows = db.execute(
        select(SubmissionFile.kind, SubmissionFile.sha256, func.count(func.distinct(SubmissionFile.user_id)))
        .join(Submission, Submission.id == SubmissionFile.submission_id)
        .join(User, User.id == SubmissionFile.user_id)
        .where(
            SubmissionFile.cohort_id == cohort_id,
            SubmissionFile.sha256.in_({sha for _, sha in digests}),
            Submission.status == SubmissionStatus.SUCCEEDED,
            User.role == Role.TRAINEE,
        )
        .group_by(SubmissionFile.kind, SubmissionFile.sha256)
    )
    return {(kind, sha): int(n) for kind, sha, n in rows}


def _scored_counts(db: Session, cohort_id: int) -> dict[tuple[int, int | None], int]:
    """Each trainee's scored submissions with kept predictions, per test set: what was compared."""
    rows = db.execute(
        select(Submission.user_id, Submission.testset_id, func.count())
        .where(
            Submission.cohort_id == cohort_id,
            Submission.status == SubmissionStatus.SUCCEEDED,
            Submission.predictions.is_not(None),
        )
        .group_by(Submission.user_id, Submission.testset_id)
    )
    return {(user, testset): int(n) for user, testset, n in rows}


def flagged_pairs(db: Session, cohort_id: int, *, false_alarm_rate: float, rare_max: int) -> SimilarityView:
    """Pairs worth a conversation, strongest first: rare identical weights, other rare identical
    files, then by copy index."""
    figures = db.execute(
        select(SimilarityPair.id, SimilarityPair.user_a_id, SimilarityPair.user_b_id, SimilarityPair.testset_id,
               SimilarityPair.lift, SimilarityPair.lift_se, SimilarityPair.shared_count)
        .where(SimilarityPair.cohort_id == cohort_id)
    ).all()  # fmt: skip
    scored = _scored_counts(db, cohort_id)
    compared = {
        f.id: scored.get((f.user_a_id, f.testset_id), 1) * scored.get((f.user_b_id, f.testset_id), 1) for f in figures
    }
    judged = [f for f in figures if f.lift is not None and f.lift_se is not None]
    null = CopyNull.of([f.lift for f in judged], [f.lift_se for f in judged])
    z_of = {f.id: float(null.z(f.lift, f.lift_se)) for f in judged}
    above = {f.id for f in judged if z_of[f.id] >= z_needed(compared[f.id], false_alarm_rate)}
    candidates = above | {f.id for f in figures if f.shared_count}
    if not candidates:
        return SimilarityView([], null, null.pairs < SMALL_COHORT * (SMALL_COHORT - 1) // 2, false_alarm_rate, rare_max)

    user_a, user_b = aliased(User), aliased(User)
    rows = db.execute(
        select(SimilarityPair, user_a, user_b, TestSet.version)
        .join(user_a, user_a.id == SimilarityPair.user_a_id)
        .join(user_b, user_b.id == SimilarityPair.user_b_id)
        .outerjoin(TestSet, TestSet.id == SimilarityPair.testset_id)
        .where(SimilarityPair.id.in_(candidates))
    ).all()
    digests = {(str(f.get("kind")), str(f.get("sha256"))) for pair, *_ in rows for f in pair.shared_files or []}
    sharing = _sharing(db, cohort_id, digests)
    pairs = []
    for pair, a, b, version in rows:
        files = _shared_files(pair.shared_files, sharing, rare_max)
        if pair.id not in above and not any(f.counts for f in files):
            continue  # only files the course's trainees commonly share: no evidence about this pair
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
                expected_same_wrong=pair.expected_same_wrong,
                same_wrong_easy=pair.same_wrong_easy,
                reference_trainees=pair.reference_trainees,
                compared_pairs=compared[pair.id],
                z=z_of.get(pair.id),
                z_needed=z_needed(compared[pair.id], false_alarm_rate),
                testset_version=version,
                updated_at=pair.updated_at,
                above_threshold=pair.id in above,
                shared_files=files,
            )
        )

    def order(p: FlaggedPair) -> tuple[bool, bool, float, str, str]:
        kinds = {f.kind for f in p.evidence_files}
        return ("weights" not in kinds and "zip" not in kinds, not kinds, -(p.z or -99.0), p.name_a, p.name_b)

    pairs.sort(key=order)
    small = null.pairs < SMALL_COHORT * (SMALL_COHORT - 1) // 2
    return SimilarityView(pairs, null, small, false_alarm_rate, rare_max)


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


CSV_HEADER = [
    "trainee_a", "email_a", "submission_a", "trainee_b", "email_b", "submission_b",
    "copy_index_z", "z_needed", "above_threshold", "same_wrong", "expected_same_wrong", "same_wrong_easy",
    "reference_trainees", "compared_pairs", "error_agreement", "both_wrong", "agreement", "testset", "shared_files",
]  # fmt: skip


def pairs_csv(pairs: list[FlaggedPair]) -> str:
    """One row per pair; shared files as ``kind:name_a=name_b (n trainees)`` joined by ``; ``, with
    `` not counted`` after a file too common to be evidence. UTF-8 with a BOM."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for p in pairs:
        files = "; ".join(
            f"{f.kind}:{f.name_a or '(zip)'}={f.name_b or '(zip)'} ({f.trainees} trainees)"
            + ("" if f.counts else " not counted")
            for f in p.shared_files
        )
        writer.writerow(
            [
                csv_cell(p.name_a), csv_cell(p.email_a), p.submission_a_id or "",
                csv_cell(p.name_b), csv_cell(p.email_b), p.submission_b_id or "",
                _number(p.z, 2), _number(p.z_needed, 2), "yes" if p.above_threshold else "no",
                "" if p.same_wrong is None else p.same_wrong, _number(p.expected_same_wrong, 1),
                "" if p.same_wrong_easy is None else p.same_wrong_easy,
                "" if p.reference_trainees is None else p.reference_trainees,
                p.compared_pairs,
                _number(p.error_agreement, 4), "" if p.both_wrong is None else p.both_wrong,
                _number(p.agreement, 4), csv_cell(p.testset_version), csv_cell(files),
            ]
        )  # fmt: skip
    return "\ufeff" + out.getvalue()
