"""Keeping a cohort's similarity pairs up to date, one new result at a time.

After a submission's result is stored, it is compared with every other trainee's scored
submissions in the same cohort (``scorer.similarity``): the strongest pair of submissions per pair
of trainees can only grow when a submission is added, so the stored best is updated in place and
nothing else is recomputed. Errors are compared only between predictions on the same test set;
when a rescore brings a new test set, the first comparison on it replaces the pair's old figures.

Nothing here raises into the scoring task: similarity is for instructors, and a failure to update
it must never cost a trainee their result or their email.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Role, SimilarityPair, Submission, SubmissionStatus, TestSet, User, utcnow
from app.settings import Settings, get_settings
from scorer.metrics import labels_to_ids
from scorer.similarity import Agreement, compare, predictions_from_bytes, strongest_per_group
from worker.db import sessions

log = logging.getLogger(__name__)

MAX_SHARED_FILES = 20  # per pair: enough to name what is shared, bounded whatever a zip holds


@functools.lru_cache(maxsize=4)
def _labels(path: str, sha256: str) -> np.ndarray:
    """A test set's label ids; keyed by digest too, so a re-imported set is never read stale."""
    return labels_to_ids(np.load(Path(path), allow_pickle=False))


@dataclass(frozen=True)
class _Other:
    submission_id: int
    user_id: int
    testset_id: int | None
    predictions: bytes | None
    file_hashes: list[dict[str, str]]


def _trainee_ids(session: Session, cohort_id: int) -> set[int]:
    """Trainees who submitted in the cohort (by account role: an instructor's or admin's trial
    uploads of the course's examples are not trainees' work, and a trainee moved to another cohort
    keeps the submissions made here)."""
    submitters = select(Submission.user_id).where(Submission.cohort_id == cohort_id).distinct()
    return set(session.scalars(select(User.id).where(User.role == Role.TRAINEE, User.id.in_(submitters))))


def _hash_list(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    return [h for h in value if isinstance(h, dict) and h.get("sha256") and h.get("kind")]


def _strength(both_wrong: int | None, rate: float | None, min_both_wrong: int) -> tuple[bool, float, int]:
    return ((both_wrong or 0) >= min_both_wrong, -1.0 if rate is None else rate, both_wrong or 0)


def _shared(mine: list[dict[str, str]], theirs: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    """(kind, sha256, my name, their name) for every digest both submissions have."""
    by_key = {(h["kind"], h["sha256"]): h.get("name", "") for h in theirs}
    return [
        (h["kind"], h["sha256"], h.get("name", ""), by_key[(h["kind"], h["sha256"])])
        for h in mine
        if (h["kind"], h["sha256"]) in by_key
    ]


def update_for_submission(session: Session, submission_id: int, settings: Settings, now: dt.datetime) -> int:
    """Fold one scored submission into its cohort's pairs; returns the number of pairs written.

    The caller owns the transaction. Only trainees' succeeded submissions take part.
    """
    row = session.execute(
        select(
            Submission.id, Submission.user_id, Submission.cohort_id, Submission.status, Submission.testset_id,
            Submission.predictions, Submission.file_hashes,
        ).where(Submission.id == submission_id)
    ).first()  # fmt: skip
    if row is None or row.status != SubmissionStatus.SUCCEEDED:
        return 0
    trainees = _trainee_ids(session, row.cohort_id)
    if row.user_id not in trainees:
        return 0
    mine = _hash_list(row.file_hashes)
    candidates = select(
        Submission.id, Submission.user_id, Submission.testset_id, Submission.predictions, Submission.file_hashes
    ).where(
        Submission.cohort_id == row.cohort_id,
        Submission.status == SubmissionStatus.SUCCEEDED,
        Submission.user_id != row.user_id,
    )
    others = [
        _Other(r.id, r.user_id, r.testset_id, r.predictions, _hash_list(r.file_hashes))
        for r in session.execute(candidates)
        if r.user_id in trainees
    ]

    best: dict[int, tuple[_Other, int, int, int, int]] = {}  # user → (submission, both, same, agree, total)
    if row.predictions is not None and row.testset_id is not None:
        testset = session.get(TestSet, row.testset_id)
        new = predictions_from_bytes(row.predictions)
        comparable = [o for o in others if o.testset_id == row.testset_id and o.predictions is not None]
        comparable = [o for o in comparable if len(o.predictions or b"") == len(new)]
        if testset is not None and comparable:
            labels = _labels(testset.labels_path, testset.sha256)
            if len(labels) == len(new):
                stack = np.frombuffer(b"".join(o.predictions or b"" for o in comparable), dtype=np.uint8)
                result: Agreement = compare(new, stack.reshape(len(comparable), len(new)), labels)
                groups = np.array([o.user_id for o in comparable], dtype=np.int64)
                for user_id, i in strongest_per_group(groups, result, settings.similarity_min_shared_mistakes).items():
                    best[user_id] = (
                        comparable[i], int(result.both_wrong[i]), int(result.same_wrong[i]),
                        int(result.agree[i]), result.total,
                    )  # fmt: skip

    shared: dict[int, list[tuple[_Other, tuple[str, str, str, str]]]] = {}
    if mine:
        for other in others:
            for match in _shared(mine, other.file_hashes):
                shared.setdefault(other.user_id, []).append((other, match))

    partners = set(best) | set(shared)
    if not partners:
        return 0
    existing = {
        (p.user_a_id, p.user_b_id): p
        for p in session.scalars(
            select(SimilarityPair).where(
                SimilarityPair.cohort_id == row.cohort_id,
                or_(SimilarityPair.user_a_id == row.user_id, SimilarityPair.user_b_id == row.user_id),
            )
        )
    }
    written = 0
    for partner in sorted(partners):
        a, b = sorted((row.user_id, partner))
        i_am_a = row.user_id == a
        pair = existing.get((a, b))
        if pair is None:
            pair = SimilarityPair(cohort_id=row.cohort_id, user_a_id=a, user_b_id=b, shared_files=[], shared_count=0)
            session.add(pair)
        changed = False
        if partner in best:
            other, both, same, agree, total = best[partner]
            rate = same / both if both else None
            new_strength = _strength(both, rate, settings.similarity_min_shared_mistakes)
            old_strength = _strength(pair.both_wrong, pair.error_agreement, settings.similarity_min_shared_mistakes)
            if pair.testset_id != row.testset_id or pair.agreement is None or new_strength > old_strength:
                pair.testset_id = row.testset_id
                pair.submission_a_id = row.id if i_am_a else other.submission_id
                pair.submission_b_id = other.submission_id if i_am_a else row.id
                pair.both_wrong, pair.same_wrong = both, same
                pair.error_agreement = rate
                pair.agreement = agree / total if total else None
                changed = True
        if partner in shared:
            files = list(pair.shared_files or [])
            known = {(f.get("kind"), f.get("sha256")) for f in files}
            for other, (kind, sha, my_name, their_name) in shared[partner]:
                if (kind, sha) in known or len(files) >= MAX_SHARED_FILES:
                    continue
                known.add((kind, sha))
                files.append(
                    {
                        "kind": kind,
                        "sha256": sha,
                        "name_a": my_name if i_am_a else their_name,
                        "name_b": their_name if i_am_a else my_name,
                        "submission_a_id": row.id if i_am_a else other.submission_id,
                        "submission_b_id": other.submission_id if i_am_a else row.id,
                    }
                )
            if len(files) != len(pair.shared_files or []):
                pair.shared_files = files  # a new list: JSON columns notice assignment, not mutation
                pair.shared_count = len(files)
                changed = True
        if changed:
            pair.updated_at = now
            written += 1
    return written


def refresh_after_result(submission_id: int, settings: Settings | None = None) -> None:
    """What the scoring task calls after storing a result: update, retrying once on a race, never raise.

    Two workers finishing submissions of the same pair at once may both insert the pair; the loser
    retries, then finds the row the winner wrote.
    """
    settings = settings or get_settings()
    for attempt in (1, 2):
        try:
            with sessions()() as session, session.begin():
                update_for_submission(session, submission_id, settings, utcnow())
            return
        except IntegrityError:
            if attempt == 2:
                log.exception("similarity update for submission %s failed twice", submission_id)
        except Exception:
            log.exception("similarity update for submission %s failed", submission_id)
            return


def rebuild_cohort(session: Session, cohort_id: int, settings: Settings, now: dt.datetime | None = None) -> int:
    """Recompute a cohort's pairs from scratch (in submission order), e.g. after the threshold of
    evidence changed. The result equals what the incremental updates built."""
    session.execute(delete(SimilarityPair).where(SimilarityPair.cohort_id == cohort_id))
    ids: Iterable[int] = session.scalars(
        select(Submission.id)
        .where(Submission.cohort_id == cohort_id, Submission.status == SubmissionStatus.SUCCEEDED)
        .order_by(Submission.id)
    ).all()
    for submission_id in ids:
        update_for_submission(session, submission_id, settings, now or utcnow())
        session.flush()
    return session.query(SimilarityPair).filter(SimilarityPair.cohort_id == cohort_id).count()
