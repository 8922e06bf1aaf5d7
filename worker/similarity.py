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

Each worker process keeps the predictions of the cohorts it updated last (``KEPT_COHORTS``) with
their per-image answer counts (``scorer.similarity.Answers``): an update lists the cohort's scored
submissions (ids and finish times, no predictions), reads the predictions of the ones it does not
hold yet (usually the new one alone) and counts them in. A submission it holds that is gone or was
scored again since makes it rebuild the cohort's counts, from memory for the rows that stand.

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
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    Connection,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.models import Role, SimilarityPair, Submission, SubmissionFile, SubmissionStatus, TestSet, User, utcnow
from app.settings import Settings, get_settings
from scorer.metrics import labels_to_ids
from scorer.similarity import PRIOR, Answers, Comparison, CopyNull, Reference, predictions_from_bytes
from worker.db import sessions

log = logging.getLogger(__name__)

PRIOR_NULL = CopyNull(PRIOR.center, PRIOR.scale, 0)  # ranks a pair's pairs of submissions when storing
# A stored strongest pair is measured again when the reference it was measured on has changed by more
# than this share of its trainees; until then its figures stand (and its row is not rewritten).
REMEASURE = 0.1
# Cohorts whose predictions a worker process keeps between updates, the most recently updated: 1,000
# submissions hold about 15 MB (and 100 trainees' representatives about 3 MB more).
KEPT_COHORTS = 4
MAX_SHARED_FILES = 20  # per pair: enough to name what is shared, bounded whatever a zip holds
# First half of PostgreSQL's two-key advisory lock (the cohort id is the second): set apart from the
# other advisory locks of the service by its own name.
_LOCK_NAMESPACE = int.from_bytes(hashlib.sha256(b"katakana-similarity-pairs").digest()[:4], "big", signed=True)


@functools.lru_cache(maxsize=4)
def _labels(path: str, sha256: str) -> np.ndarray:
    """A test set's label ids; keyed by digest too, so a re-imported set is never read stale."""
    return labels_to_ids(np.load(Path(path), allow_pickle=False))


@dataclass
class _Kept:
    """One cohort's predictions on one test set as this process last read them."""

    labels_sha256: str
    answers: Answers
    finished: dict[int, Any] = field(default_factory=dict)  # submission id → finished_at when read
    row: dict[int, int] = field(default_factory=dict)  # submission id → row of ``answers``


_kept: OrderedDict[tuple[int, int], _Kept] = OrderedDict()
_kept_lock = threading.RLock()  # one update at a time uses a process's kept answers


def forget_kept_cohorts() -> None:
    """Drop every cohort this process keeps (tests; a test set re-imported under the same id)."""
    with _kept_lock:
        _kept.clear()


def _read_predictions(session: Session, cohort_id: int, testset_id: int, ids: list[int]) -> dict[int, bytes]:
    query = select(Submission.id, Submission.predictions).where(
        Submission.cohort_id == cohort_id, Submission.testset_id == testset_id
    )
    if len(ids) <= 500:  # the usual case, a new result or two; else the cohort's rows, skipping known ones
        query = query.where(Submission.id.in_(ids))
    wanted = set(ids)
    return {r.id: r.predictions for r in _core(session).execute(query) if r.id in wanted and r.predictions is not None}


def _cohort_answers(
    session: Session,
    cohort_id: int,
    testset: TestSet,
    labels: np.ndarray,
    listed: dict[int, tuple[int, Any]],
    known: dict[int, bytes],
) -> _Kept:
    """The cohort's answers for exactly the ``listed`` submissions (id → (trainee, finished_at)),
    from what this process keeps, reading only the predictions it does not hold (nor finds in
    ``known``: the new result's own, read already). The caller holds ``_kept_lock`` while it uses them."""
    key = (cohort_id, testset.id)
    kept = _kept.pop(key, None)
    if kept is not None and kept.labels_sha256 != testset.sha256:
        kept = None  # another test set under the same id: nothing kept is comparable
    if kept is not None and any(listed.get(i, (None, None))[1] != at for i, at in kept.finished.items()):
        # A submission it holds is gone or was scored again: counted anew, the rows that stand from memory.
        standing = [i for i in sorted(listed) if i in kept.finished and kept.finished[i] == listed[i][1]]
        rebuilt = _Kept(testset.sha256, Answers(labels))
        if standing:
            _add(rebuilt, standing, kept.answers.stack[[kept.row[i] for i in standing]], listed)
        kept = rebuilt
    kept = kept or _Kept(testset.sha256, Answers(labels))
    missing = sorted(i for i in listed if i not in kept.row)
    if missing:
        found = {i: known[i] for i in missing if i in known}
        if len(found) < len(missing):
            found |= _read_predictions(session, cohort_id, testset.id, [i for i in missing if i not in known])
        ids = [i for i in missing if len(found.get(i) or b"") == len(labels)]
        if ids:
            stack = np.frombuffer(b"".join(found[i] for i in ids), dtype=np.uint8).reshape(len(ids), len(labels))
            _add(kept, ids, stack, listed)
    _kept[key] = kept  # the most recently used last
    while len(_kept) > KEPT_COHORTS:
        _kept.popitem(last=False)
    return kept


def _add(kept: _Kept, ids: list[int], stack: np.ndarray, listed: dict[int, tuple[int, Any]]) -> None:
    first = kept.answers.size
    kept.answers.add(stack, np.array([listed[i][0] for i in ids]), np.array(ids))
    for j, i in enumerate(ids):
        kept.row[i] = first + j
        kept.finished[i] = listed[i][1]


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


_PAIRS = cast(Table, SimilarityPair.__table__)
# The columns of a stored pair's strongest pair of submissions.
_FIGURES = (
    "testset_id", "submission_a_id", "submission_b_id", "both_wrong", "same_wrong", "error_agreement", "agreement",
    "expected_same_wrong", "lift", "lift_se", "same_wrong_easy", "reference_trainees",
)  # fmt: skip


def _core(session: Session) -> Connection:
    """The session's connection, in its transaction, flushed first: the update reads and writes plain
    columns, never entities, and the ORM's handling of a thousand rows cost more than the numbers."""
    session.flush()
    return session.connection()


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


def _strength(lift: float | None, se: float | None) -> float:
    """``PRIOR_NULL.z`` of one pair of submissions (the same arithmetic in plain floats); -inf when
    the pair was not judged."""
    if lift is None or se is None or not (math.isfinite(lift) and math.isfinite(se)):
        return -math.inf
    return (lift - PRIOR_NULL.center) / math.sqrt(PRIOR_NULL.scale**2 + se**2)


def _figures(result: Comparison, mine: int, theirs: list[int]) -> list[_Figures]:
    """The figures of each row of ``result`` (``theirs``: the rows' submission ids), as plain numbers."""
    total = result.agreement.total
    out = []
    for other, both, same, agree, expected, lift, se, easy, reference in zip(
        theirs, result.agreement.both_wrong.tolist(), result.agreement.same_wrong.tolist(),
        result.agreement.agree.tolist(), result.expected.tolist(), result.lift.tolist(), result.lift_se.tolist(),
        result.same_wrong_easy.tolist(), result.reference_trainees.tolist(), strict=True,
    ):  # fmt: skip
        strength = _strength(lift, se)
        judged = strength > -math.inf
        out.append(
            _Figures(
                mine=mine,
                theirs=other,
                strength=strength,
                both_wrong=both,
                same_wrong=same,
                agreement=agree / total if total else None,
                expected=expected,
                lift=lift if judged else None,
                lift_se=se if judged else None,
                easy=easy,
                reference=reference,
            )
        )
    return out


def _stored(pair: Any, mine: int, theirs: int) -> _Figures:
    """A pair's stored strongest pair of submissions, as figures to weigh against new ones."""
    lift, se = pair.lift, pair.lift_se
    strength = _strength(lift, se)
    return _Figures(
        mine, theirs, strength, pair.both_wrong or 0, pair.same_wrong or 0, pair.agreement,
        pair.expected_same_wrong or 0.0, pair.lift, pair.lift_se, pair.same_wrong_easy or 0,
        pair.reference_trainees or 0,
    )  # fmt: skip


def _compare_cohort(
    session: Session, row: Any, trainees: set[int], existing: dict[tuple[int, int], Any]
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
    if len(labels) != len(new):
        return {}
    # Only predictions on the same test set compare. Listed without their bytes (3,000 × 14.5 kB):
    # the predictions come from what this process keeps, read from the database only when new.
    listing = select(
        Submission.id,
        Submission.user_id,
        type_coerce(Submission.finished_at, String).label("finished"),  # a token: compared, never parsed
    ).where(
        Submission.cohort_id == row.cohort_id,
        Submission.status == SubmissionStatus.SUCCEEDED,
        Submission.testset_id == row.testset_id,
        func.length(Submission.predictions) == len(new),
    )
    listed = {r.id: (r.user_id, r.finished) for r in _core(session).execute(listing) if r.user_id in trainees}
    with _kept_lock:
        kept = _cohort_answers(session, row.cohort_id, testset, labels, listed, {row.id: row.predictions})
        return _compare_kept(kept, row, new, existing)


def _compare_kept(kept: _Kept, row: Any, new: np.ndarray, existing: dict[tuple[int, int], Any]) -> dict[int, _Figures]:
    """``_compare_cohort`` on the cohort's kept answers, the new submission's trainee left out."""
    answers = kept.answers
    if not np.any(answers.groups != row.user_id):
        return {}
    submission_ids, users = answers.keys, answers.groups
    reference = Reference.leaving_out(answers, row.user_id)
    result = reference.compare_strongest(new)
    best: dict[int, _Figures] = {}
    figures = _figures(result, row.id, submission_ids[result.rows].tolist())
    for partner, f in zip(users[result.rows].tolist(), figures, strict=True):
        if partner not in best or f.strength > best[partner].strength:
            best[partner] = f

    own = {int(submission_ids[r]): int(r) for r in np.flatnonzero(users == row.user_id)}
    again: dict[int, list[int]] = {}  # my earlier submission → rows of the partners' submissions it paired
    for (a, _b), pair in existing.items():
        if pair.testset_id != row.testset_id:
            continue
        mine, theirs = (
            (pair.submission_a_id, pair.submission_b_id)
            if a == row.user_id
            else (pair.submission_b_id, pair.submission_a_id)
        )
        if mine is None or theirs is None or mine not in own or mine == row.id or theirs not in kept.row:
            continue
        i = kept.row[theirs]
        if int(users[i]) == row.user_id:
            continue
        reference_now = reference.answerers - int(reference.in_reference[reference.group_index[i]])
        measured = pair.reference_trainees
        if pair.lift is None or measured is None or abs(reference_now - measured) > REMEASURE * max(reference_now, 1):
            again.setdefault(mine, []).append(i)
        else:  # the cohort has hardly changed since: the stored figures stand
            f = _stored(pair, mine, theirs)
            if f.strength > best[int(users[i])].strength:
                best[int(users[i])] = f
    for mine, rows in again.items():
        # In submission order, as the rows were first compared: the first of equally strong pairs wins.
        ordered = np.array(sorted(rows, key=lambda i: int(submission_ids[i])), dtype=np.int64)
        earlier = reference.compare(answers.stack[own[mine]], ordered)
        theirs = submission_ids[earlier.rows].tolist()
        for partner, f in zip(users[earlier.rows].tolist(), _figures(earlier, mine, theirs), strict=True):
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
    pairs = _PAIRS
    existing = {
        (p.user_a_id, p.user_b_id): p
        for p in _core(session).execute(
            select(pairs.c.id, pairs.c.user_a_id, pairs.c.user_b_id, pairs.c.shared_files,
                   *(pairs.c[name] for name in _FIGURES))
            .where(pairs.c.cohort_id == row.cohort_id,
                   or_(pairs.c.user_a_id == row.user_id, pairs.c.user_b_id == row.user_id))
        )
    }  # fmt: skip
    best = _compare_cohort(session, row, trainees, existing)
    shared = _identical_files(session, row.cohort_id, row.user_id, mine, trainees) if mine else {}

    inserts: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # by the columns they change
    for partner in sorted(set(best) | set(shared)):
        a, b = sorted((row.user_id, partner))
        i_am_a = row.user_id == a
        pair = existing.get((a, b))
        values: dict[str, Any] = {}
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
            # Written only when they change: most stored pairs stand.
            values.update((name, v) for name, v in figures.items() if pair is None or getattr(pair, name) != v)
        if partner in shared:
            before = list(pair.shared_files or []) if pair is not None else []
            files = list(before)
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
            if len(files) != len(before):
                values.update(shared_files=files, shared_count=len(files))
        if pair is None:
            inserts.append(
                {name: None for name in _FIGURES}
                | {"shared_files": [], "shared_count": 0}
                | values
                | {"cohort_id": row.cohort_id, "user_a_id": a, "user_b_id": b, "updated_at": now}
            )
        elif values:
            updates.setdefault(tuple(sorted(values)), []).append(values | {"pair_id": pair.id, "updated_at": now})
    # Plain statements, each run once for all its rows: the ORM's unit of work cost more than the rest.
    connection = _core(session)
    if inserts:
        connection.execute(insert(pairs), inserts)
    for names, rows in updates.items():
        statement = (
            update(pairs)
            .where(pairs.c.id == bindparam("pair_id"))
            .values({name: bindparam(name) for name in (*names, "updated_at")})
        )
        connection.execute(statement, rows)
    return len(inserts) + sum(len(rows) for rows in updates.values())


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
