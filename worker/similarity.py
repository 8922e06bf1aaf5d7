"""Keeping a cohort's similarity pairs up to date, one new result at a time.

After a submission's result is stored, it is compared with every other trainee's scored submissions
in the same cohort, the rest of the cohort as the reference (``scorer.similarity.Reference``): for
each other trainee the strongest pair of submissions is kept. The pair stored before competes with
the new ones, measured again against today's cohort once its reference has changed by more than
``REMEASURE``, so the pairs of whoever hands in stay current; a row is written only when its figures
change. The pairs of other trainees keep the figures of the cohort as it was at their own last
result; the reference changes little once a cohort has a few dozen trainees. Errors are compared
only between predictions on the same test set; when a rescore brings a new test set, the first
comparison on it replaces the pair's old figures.

Updates of one cohort are serialised (SQLite's write lock, a PostgreSQL advisory lock per cohort).
Identical files are found through the other submissions' rows in ``submission_files``, which each
update writes in its own transaction: two updates running side by side would each miss the other's
uncommitted rows, and the pair would never be recorded. Taken in turn, the second sees the first.

Nothing here raises into the scoring task: similarity is for instructors, and a failure to update
it must never cost a trainee their result or their email.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.models import Role, SimilarityPair, Submission, SubmissionFile, SubmissionStatus, TestSet, User, utcnow
from app.settings import Settings, get_settings
from scorer.metrics import labels_to_ids
from scorer.similarity import PRIOR, Comparison, CopyNull, Reference, predictions_from_bytes
from worker.db import sessions

log = logging.getLogger(__name__)

PRIOR_NULL = CopyNull(PRIOR.center, PRIOR.scale, 0)  # ranks a pair's pairs of submissions when storing
# A stored strongest pair is measured again when the reference it was measured on has changed by more
# than this share of its trainees; until then its figures stand (and its row is not rewritten).
REMEASURE = 0.1
MAX_SHARED_FILES = 20  # per pair: enough to name what is shared, bounded whatever a zip holds
# First half of PostgreSQL's two-key advisory lock (the cohort id is the second): set apart from the
# other advisory locks of the service by its own name.
_LOCK_NAMESPACE = int.from_bytes(hashlib.sha256(b"katakana-similarity-pairs").digest()[:4], "big", signed=True)


@functools.lru_cache(maxsize=4)
def _labels(path: str, sha256: str) -> np.ndarray:
    """A test set's label ids; keyed by digest too, so a re-imported set is never read stale."""
    return labels_to_ids(np.load(Path(path), allow_pickle=False))


@dataclass(frozen=True)
class _Other:
    submission_id: int
    user_id: int
    predictions: bytes


def lock_cohort(session: Session, cohort_id: int) -> None:
    """Wait for any other similarity update of this cohort to commit, and keep them waiting until
    this transaction ends.

    On PostgreSQL a transaction-scoped advisory lock per cohort (the rows to lock may not exist yet:
    a first pair, a first file), so other cohorts go on in parallel; read-committed statements after
    it see what the previous holder committed. SQLite has one writer at a time anyway: there the
    caller opens the transaction with its write lock (``transaction(..., write_lock=True)``), since a
    deferred transaction that read before another's commit could not write after it.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :cohort)"),
            {"namespace": _LOCK_NAMESPACE, "cohort": cohort_id},
        )


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


@dataclass(frozen=True)
class _Match:
    kind: str
    sha256: str
    my_name: str
    their_name: str
    their_submission_id: int


def _index_files(
    session: Session, submission_id: int, cohort_id: int, user_id: int, hashes: list[dict[str, str]]
) -> None:
    """(Re)write this submission's rows in ``submission_files``: a rescored submission replaces its own."""
    session.execute(delete(SubmissionFile).where(SubmissionFile.submission_id == submission_id))
    seen = set()
    for h in hashes:
        key = (h["kind"], h["sha256"], h.get("name", ""))
        if key in seen:
            continue
        seen.add(key)
        session.add(
            SubmissionFile(
                submission_id=submission_id, cohort_id=cohort_id, user_id=user_id, kind=h["kind"],
                name=str(h.get("name", ""))[:500], sha256=h["sha256"],
            )
        )  # fmt: skip
    session.flush()


def _identical_files(
    session: Session, cohort_id: int, user_id: int, hashes: list[dict[str, str]], trainees: set[int]
) -> dict[int, list[_Match]]:
    """Other trainees' scored submissions with a digest of the same kind: one indexed lookup."""
    mine = {(h["kind"], h["sha256"]): str(h.get("name", "")) for h in hashes}
    rows = session.execute(
        select(SubmissionFile.user_id, SubmissionFile.submission_id, SubmissionFile.kind, SubmissionFile.name,
               SubmissionFile.sha256)
        .join(Submission, Submission.id == SubmissionFile.submission_id)
        .where(
            SubmissionFile.cohort_id == cohort_id,
            SubmissionFile.sha256.in_({sha for _, sha in mine}),
            SubmissionFile.user_id != user_id,
            Submission.status == SubmissionStatus.SUCCEEDED,
        )
        .order_by(SubmissionFile.submission_id)
    )  # fmt: skip
    found: dict[int, list[_Match]] = {}
    for r in rows:
        if (r.kind, r.sha256) in mine and r.user_id in trainees:
            found.setdefault(r.user_id, []).append(
                _Match(r.kind, r.sha256, mine[(r.kind, r.sha256)], r.name, r.submission_id)
            )
    return found


@dataclass(frozen=True)
class _Figures:
    """The copy index's figures for one pair of submissions (this trainee's first)."""

    mine: int
    theirs: int
    strength: float  # the z against the prior's null: ranks one pair of trainees' pairs of submissions
    both_wrong: int
    same_wrong: int
    agreement: float | None  # same prediction, right or wrong
    expected: float
    lift: float | None
    lift_se: float | None
    easy: int
    reference: int


def _figures(result: Comparison, i: int, mine: int, theirs: int) -> _Figures:
    lift, se = float(result.lift[i]), float(result.lift_se[i])
    judged = math.isfinite(lift) and math.isfinite(se)
    strength = float(PRIOR_NULL.z(lift, se)) if judged else -math.inf
    total = result.agreement.total
    return _Figures(
        mine, theirs, strength, int(result.agreement.both_wrong[i]), int(result.agreement.same_wrong[i]),
        int(result.agreement.agree[i]) / total if total else None, float(result.expected[i]),
        lift if judged else None, se if judged else None, int(result.same_wrong_easy[i]),
        int(result.reference_trainees[i]),
    )  # fmt: skip


def _stored(pair: SimilarityPair, mine: int, theirs: int) -> _Figures:
    """A pair's stored strongest pair of submissions, as figures to weigh against new ones."""
    lift, se = pair.lift, pair.lift_se
    strength = float(PRIOR_NULL.z(lift, se)) if lift is not None and se is not None else -math.inf
    return _Figures(
        mine, theirs, strength, pair.both_wrong or 0, pair.same_wrong or 0, pair.agreement,
        pair.expected_same_wrong or 0.0, pair.lift, pair.lift_se, pair.same_wrong_easy or 0,
        pair.reference_trainees or 0,
    )  # fmt: skip


def _compare_cohort(
    session: Session, row: Any, trainees: set[int], existing: dict[tuple[int, int], SimilarityPair]
) -> dict[int, _Figures]:
    """This submission against every other trainee's on the same test set, the rest of the cohort as
    the reference; and this trainee's stored strongest pairs measured again against today's cohort
    (once the reference has grown or shrunk by more than ``REMEASURE``). Returns each partner's
    strongest pair of submissions."""
    testset = session.get(TestSet, row.testset_id) if row.testset_id is not None else None
    if row.predictions is None or testset is None:
        return {}
    new = predictions_from_bytes(row.predictions)
    labels = _labels(testset.labels_path, testset.sha256)
    # Only predictions on the same test set compare; bytes, not ORM objects: 3,000 × 14.5 kB. In
    # submission order, so each trainee's last row (their latest) represents them in the reference.
    candidates = (
        select(Submission.id, Submission.user_id, Submission.predictions)
        .where(
            Submission.cohort_id == row.cohort_id,
            Submission.status == SubmissionStatus.SUCCEEDED,
            Submission.testset_id == row.testset_id,
            Submission.predictions.is_not(None),
        )
        .order_by(Submission.id)
    )
    comparable, own = [], {}
    for r in session.execute(candidates):
        if r.user_id not in trainees or len(r.predictions) != len(new):
            continue
        if r.user_id == row.user_id:
            own[r.id] = r.predictions
        else:
            comparable.append(_Other(r.id, r.user_id, r.predictions))
    if not comparable or len(labels) != len(new):
        return {}
    stack = np.frombuffer(b"".join(o.predictions for o in comparable), dtype=np.uint8)
    groups = np.array([o.user_id for o in comparable], dtype=np.int64)
    reference = Reference(labels, stack.reshape(len(comparable), len(new)), groups)
    result = reference.compare_strongest(new)
    best: dict[int, _Figures] = {}
    for j, i in enumerate(result.rows):
        o = comparable[int(i)]
        f = _figures(result, j, row.id, o.submission_id)
        if o.user_id not in best or f.strength > best[o.user_id].strength:
            best[o.user_id] = f

    index = {o.submission_id: i for i, o in enumerate(comparable)}
    again: dict[int, list[int]] = {}  # my earlier submission → rows of the partners' submissions it paired
    for (a, _b), pair in existing.items():
        if pair.testset_id != row.testset_id:
            continue
        mine, theirs = (
            (pair.submission_a_id, pair.submission_b_id)
            if a == row.user_id
            else (pair.submission_b_id, pair.submission_a_id)
        )
        if mine is None or theirs is None or mine not in own or mine == row.id or theirs not in index:
            continue
        i = index[theirs]
        reference_now = reference.answerers - int(reference.in_reference[reference.group_index[i]])
        measured = pair.reference_trainees
        if pair.lift is None or measured is None or abs(reference_now - measured) > REMEASURE * max(reference_now, 1):
            again.setdefault(mine, []).append(i)
        else:  # the cohort has hardly changed since: the stored figures stand
            f = _stored(pair, mine, theirs)
            if f.strength > best[comparable[i].user_id].strength:
                best[comparable[i].user_id] = f
    for mine, rows in again.items():
        earlier = reference.compare(predictions_from_bytes(own[mine]), np.array(sorted(rows)))
        for j, i in enumerate(earlier.rows):
            f = _figures(earlier, j, mine, comparable[int(i)].submission_id)
            partner = comparable[int(i)].user_id
            if f.strength > best[partner].strength:
                best[partner] = f
    return best


def update_for_submission(session: Session, submission_id: int, settings: Settings, now: dt.datetime) -> int:
    """Fold one scored submission into its cohort's pairs; returns the number of pairs written.

    The caller owns the transaction (on SQLite, opened with the write lock: see ``lock_cohort``).
    Only trainees' succeeded submissions take part.
    """
    row = session.execute(
        select(
            Submission.id, Submission.user_id, Submission.cohort_id, Submission.status, Submission.testset_id,
            Submission.predictions, Submission.file_hashes,
        ).where(Submission.id == submission_id)
    ).first()  # fmt: skip
    if row is None or row.status != SubmissionStatus.SUCCEEDED:
        return 0
    lock_cohort(session, row.cohort_id)  # before reading others' files: see the module's docstring
    trainees = _trainee_ids(session, row.cohort_id)
    if row.user_id not in trainees:
        return 0
    mine = _hash_list(row.file_hashes)
    _index_files(session, row.id, row.cohort_id, row.user_id, mine)
    existing = {
        (p.user_a_id, p.user_b_id): p
        for p in session.scalars(
            select(SimilarityPair).where(
                SimilarityPair.cohort_id == row.cohort_id,
                or_(SimilarityPair.user_a_id == row.user_id, SimilarityPair.user_b_id == row.user_id),
            )
        )
    }
    best = _compare_cohort(session, row, trainees, existing)
    shared = _identical_files(session, row.cohort_id, row.user_id, mine, trainees) if mine else {}

    partners = set(best) | set(shared)
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
            # The strongest pair of submissions, the stored one measured again among the candidates.
            f = best[partner]
            figures = {
                "testset_id": row.testset_id,
                "submission_a_id": f.mine if i_am_a else f.theirs,
                "submission_b_id": f.theirs if i_am_a else f.mine,
                "both_wrong": f.both_wrong,
                "same_wrong": f.same_wrong,
                "error_agreement": f.same_wrong / f.both_wrong if f.both_wrong else None,
                "agreement": f.agreement,
                "expected_same_wrong": f.expected,
                "lift": f.lift,
                "lift_se": f.lift_se,
                "same_wrong_easy": f.easy,
                "reference_trainees": f.reference,
            }
            for name, value in figures.items():  # written only when they change: most stored pairs stand
                if getattr(pair, name) != value:
                    setattr(pair, name, value)
                    changed = True
        if partner in shared:
            files = list(pair.shared_files or [])
            known = {(f.get("kind"), f.get("sha256")) for f in files}
            for m in shared[partner]:
                if (m.kind, m.sha256) in known or len(files) >= MAX_SHARED_FILES:
                    continue
                known.add((m.kind, m.sha256))
                files.append(
                    {
                        "kind": m.kind,
                        "sha256": m.sha256,
                        "name_a": m.my_name if i_am_a else m.their_name,
                        "name_b": m.their_name if i_am_a else m.my_name,
                        "submission_a_id": row.id if i_am_a else m.their_submission_id,
                        "submission_b_id": m.their_submission_id if i_am_a else row.id,
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


def refresh_after_result(
    submission_id: int, settings: Settings | None = None, factory: sessionmaker[Session] | None = None
) -> None:
    """What the scoring task calls after storing a result: update, retrying once, never raise.

    Updates of one cohort take turns (``lock_cohort``), so two workers finishing submissions of the
    same pair at once no longer both insert it; the retry stays for whatever else may still collide.
    """
    settings = settings or get_settings()
    for attempt in (1, 2):
        try:
            with transaction(factory or sessions(), write_lock=True) as session:
                update_for_submission(session, submission_id, settings, utcnow())
            return
        except IntegrityError:
            if attempt == 2:
                log.exception("similarity update for submission %s failed twice", submission_id)
        except Exception:
            log.exception("similarity update for submission %s failed", submission_id)
            return
