"""A pre-flight's lifecycle: one upload's pre-flight, followed live instead of waited on.

The upload request stores the zip, takes the trainee's pre-flight turn, inserts an ``Preflight``
row and sends the pre-flight; it waits only briefly (``preflight_inline_wait_s``) for the verdict and
otherwise answers with the pre-flight's page. Whoever runs the pre-flight — the pre-flight worker in
production — acts on the verdict through :func:`settle`, so a trainee who closes the tab still gets
an accepted upload scored:

- refused by the pre-flight (or a fault of the server's): ``refused``/``failed``, nothing spent;
- near chance on the public smoke images, not confirmed (now or earlier for this zip):
  ``needs_confirmation``; :func:`confirm` later accepts it without a new upload — within
  ``preflight_confirm_ttl_h``: after that :func:`expire_unconfirmed` (the sweeper, or the pre-flight's
  own page) ends it as ``expired`` and deletes its zip, nothing spent;
- otherwise the slot is spent (``spend_slot``, the same rules as ever) in the very transaction that
  marks the pre-flight ``accepted`` — or, with the day's uploads gone meanwhile, ``refused`` (nothing
  spent).

**The pre-flight's fair order.** The pre-flight's message only wakes a pre-flight worker, which claims
the waiting pre-flight of the trainee with the least pre-flight time in the last hour (:func:`claim_next`;
``started_at`` marks a claimed pre-flight). With every trainee holding at most one pre-flight at a time (the
gate), a trainee who has not been checked lately is next as soon as a worker frees: however many
accounts keep slow pre-flights going, another trainee's pre-flight waits for one pre-flight at most (the smoke
time limit), then runs. A pre-flight nobody claimed within ``preflight_wait_s`` is not started any more.

Every transition starts from ``checking`` (or ``needs_confirmation`` for a confirmation) under the
write lock, so a task delivered twice, or two confirmations at once, give one submission. Each
settling also frees the trainee's pre-flight turn; a pre-flight nobody settles (no worker, a crashed one)
is ended as ``failed`` by :func:`expire_if_stale` once ``preflight_wait_s`` is over, and its turn
expires on its own (``preflight_lease_s``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import write_lock
from app.models import Cohort, Preflight, PreflightLease, PreflightState, SmokeConfirmation, Submission
from app.services import storage
from app.services.claims import claim_first
from app.services.preflight import refusals
from app.services.preflight.gate import Lease
from app.services.preflight.verdict import Checker, PreflightVerdict, cached_preflight
from app.services.public_set import public_set_identity
from app.services.storage import ReceivedUpload
from app.services.submissions import SubmissionRefused, spend_slot
from app.settings import Settings

log = logging.getLogger(__name__)

# Settled for good (needs_confirmation waits for the trainee).
FINAL = frozenset({PreflightState.REFUSED, PreflightState.ACCEPTED, PreflightState.FAILED, PreflightState.EXPIRED})
PENDING = (PreflightState.CHECKING, PreflightState.NEEDS_CONFIRMATION)  # states whose stored zip will still be read
PREFLIGHT_TIME_WINDOW = dt.timedelta(hours=1)  # the fair order weighs the pre-flight time of this window


# Hands a committed pre-flight to whoever runs it (the pre-flight workers; an in-process checker in
# tests) and returns at once: the caller learns the outcome from the row, by either path.
StartPreflight = Callable[[int], None]


@dataclass(frozen=True)
class PreflightView:
    """A detached copy of a pre-flight, for pages and the live feed."""

    id: int
    user_id: int
    cohort_id: int
    state: PreflightState
    verdict: dict[str, Any] | None
    refusal: dict[str, Any] | None
    submission_id: int | None
    original_filename: str
    zip_sha256: str
    zip_size: int
    created_at: dt.datetime

    @property
    def settled(self) -> bool:
        return self.state != PreflightState.CHECKING

    @classmethod
    def of(cls, row: Preflight) -> PreflightView:
        return cls(
            row.id, row.user_id, row.cohort_id, PreflightState(row.state), row.verdict, row.refusal, row.submission_id,
            row.original_filename, row.zip_sha256, row.zip_size, row.created_at,
        )  # fmt: skip


def start(
    factory: sessionmaker[Session],
    *,
    user_id: int,
    cohort_id: int,
    upload: ReceivedUpload,
    validation_accuracy: float | None,
    confirmed: bool,
    lease: Lease,
    now: dt.datetime,
    change_note: str = "",
) -> int:
    """Insert the ``checking`` row, the received zip entering the store in the same transaction;
    the caller sends the pre-flight only after this commits."""
    with write_lock(factory) as db:
        row = Preflight(
            user_id=user_id, cohort_id=cohort_id, state=PreflightState.CHECKING, storage_key=upload.storage_key,
            zip_sha256=upload.sha256, zip_size=upload.size, original_filename=upload.original_filename,
            validation_accuracy=validation_accuracy, change_note=change_note, confirmed=confirmed,
            lease_token=lease.token,
            created_at=now, updated_at=now,
        )  # fmt: skip
        db.add(row)
        db.flush()
        upload.keep()
        return row.id


def get_own(factory: sessionmaker[Session], user_id: int, preflight_id: int) -> PreflightView | None:
    """The pre-flight if it is ``user_id``'s; None otherwise (callers answer 404 either way)."""
    with factory() as db:
        row = db.get(Preflight, preflight_id)
        return PreflightView.of(row) if row is not None and row.user_id == user_id else None


def _locked(db: Session, preflight_id: int) -> Preflight | None:
    return db.scalar(select(Preflight).where(Preflight.id == preflight_id).with_for_update())


def _release_turn(db: Session, row: Preflight) -> None:
    db.execute(
        delete(PreflightLease).where(PreflightLease.user_id == row.user_id, PreflightLease.token == row.lease_token)
    )


def _end(row: Preflight, state: PreflightState, now: dt.datetime, key: str, **extra: Any) -> None:
    row.state, row.updated_at = state, now
    row.refusal = {"key": key, **extra}


def _accept(db: Session, row: Preflight, now: dt.datetime) -> int | None:
    """Spend the slot for ``row`` in the caller's locked transaction; the submission's id, or None
    when the slot cannot be spent (the pre-flight is then refused with the reason, nothing spent)."""
    upload = ReceivedUpload(
        original_filename=row.original_filename, sha256=row.zip_sha256, size=row.zip_size, storage_key=row.storage_key
    )
    try:  # refuses before it writes anything, so the pre-flight's new state still commits
        submission = spend_slot(
            db, user_id=row.user_id, cohort_id=row.cohort_id, upload=upload,
            validation_accuracy=row.validation_accuracy, now=now, change_note=row.change_note,
        )  # fmt: skip
    except SubmissionRefused as exc:
        _end(row, PreflightState.REFUSED, now, refusals.slot_reason(exc.reason).key, reason=exc.reason)
        return None
    row.state, row.updated_at, row.submission_id = PreflightState.ACCEPTED, now, submission.id
    return submission.id


def allowed_runtimes(factory: sessionmaker[Session], preflight_id: int) -> list[str] | None:
    """The runtimes the pre-flight's cohort allows (None: the pre-flight is gone; every runtime is then fine,
    as it will not be settled)."""
    with factory() as db:
        return db.scalar(
            select(Cohort.runtimes)
            .join(Preflight, Preflight.cohort_id == Cohort.id)
            .where(Preflight.id == preflight_id)
        )


def _runtime_refusal(verdict: PreflightVerdict, allowed: Collection[str]) -> dict[str, Any] | None:
    """The error for an accepted verdict whose runtime the cohort does not allow (now): the
    verdict may come from the cache, filled for another cohort or before an admin's change."""
    runtime = verdict.report.get("runtime")
    found = verdict.report.get("framework_import")
    if not runtime or runtime in allowed or not isinstance(found, dict):
        return None
    from scorer.runtime_choice import FrameworkImport, not_offered

    try:
        return not_offered(FrameworkImport(**found), "not_allowed").to_json()
    except TypeError:  # a verdict of another engine version: refuse without the details
        return None


def settle(
    factory: sessionmaker[Session],
    preflight_id: int,
    verdict: PreflightVerdict,
    *,
    near_chance_below: float,
    now: dt.datetime,
) -> int | None:
    """Record the verdict and act on it; the new submission's id when one was queued (the caller
    then sends it for scoring), else None — also when the pre-flight had already been settled."""
    with write_lock(factory) as db:
        row = _locked(db, preflight_id)
        if row is None or row.state != PreflightState.CHECKING:
            return None  # delivered twice, or expired meanwhile: the first decision stands
        row.verdict = verdict.to_json()
        _release_turn(db, row)
        if verdict.server_fault:
            _end(row, PreflightState.FAILED, now, refusals.INTERNAL.key)
            return None
        if verdict.ok:
            cohort = db.get(Cohort, row.cohort_id)
            refusal = _runtime_refusal(verdict, cohort.runtimes if cohort is not None else ())
            if refusal is not None:
                verdict = PreflightVerdict(ok=False, error=refusal, notices=verdict.notices, report=verdict.report)
                row.verdict = verdict.to_json()
        if not verdict.ok:
            _end(row, PreflightState.REFUSED, now, refusals.REFUSED.key)
            return None
        if verdict.near_chance(near_chance_below):
            remembered = db.get(SmokeConfirmation, (row.user_id, row.zip_sha256)) is not None
            if not remembered and not row.confirmed:
                _end(row, PreflightState.NEEDS_CONFIRMATION, now, refusals.NEAR_CHANCE.key)
                return None
            if not remembered:
                db.add(SmokeConfirmation(user_id=row.user_id, zip_sha256=row.zip_sha256))
        return _accept(db, row, now)


def confirm(
    factory: sessionmaker[Session], user_id: int, preflight_id: int, now: dt.datetime, *, settings: Settings
) -> tuple[PreflightView, int | None] | None:
    """The trainee's "upload it anyway" for a near-chance pre-flight: remember it for this zip and spend
    the slot. None when the pre-flight is not theirs; otherwise the pre-flight as it now stands and the id of
    the submission queued by THIS call (None when it was not: another state, a repeated click, the
    day's uploads gone, or the confirmation window over), which the caller sends for scoring.

    The window is judged here, under the lock, not only by the sweeper: a click after it must not
    spend the slot just because the sweep has not come round yet. (The confirm route runs
    :func:`expire_if_stale` first, which deletes the zip; a pre-flight that crosses the line between the
    two leaves its zip to the store's purge of zips nothing pending names.)"""
    with write_lock(factory) as db:
        row = _locked(db, preflight_id)
        if row is None or row.user_id != user_id:
            return None
        queued = None
        if row.state == PreflightState.NEEDS_CONFIRMATION and row.updated_at <= confirm_deadline(settings, now):
            _end(row, PreflightState.EXPIRED, now, refusals.EXPIRED.key)
        elif row.state == PreflightState.NEEDS_CONFIRMATION:
            row.confirmed = True
            if db.get(SmokeConfirmation, (row.user_id, row.zip_sha256)) is None:
                db.add(SmokeConfirmation(user_id=row.user_id, zip_sha256=row.zip_sha256))
            row.refusal = None
            queued = _accept(db, row, now)
        return PreflightView.of(row), queued


def expire_if_stale(factory: sessionmaker[Session], preflight_id: int, settings: Settings, now: dt.datetime) -> None:
    """End a pre-flight nobody settled within ``preflight_wait_s`` (no pre-flight worker running, or the
    one that had it died) as the server's fault: nothing spent, the trainee may upload again. A
    near-chance pre-flight past its confirmation window ends as expired, as the sweeper would end it."""
    give_up(factory, preflight_id, now, older_than=now - dt.timedelta(seconds=settings.preflight_wait_s))
    expire_unconfirmed(factory, settings, now, preflight_id=preflight_id)


def confirm_deadline(settings: Settings, now: dt.datetime) -> dt.datetime:
    """A pre-flight that went ``needs_confirmation`` at or before this is past its confirmation window."""
    return now - dt.timedelta(hours=settings.preflight_confirm_ttl_h)


def expire_unconfirmed(
    factory: sessionmaker[Session], settings: Settings, now: dt.datetime, *, preflight_id: int | None = None
) -> list[int]:
    """End the near-chance pre-flights nobody confirmed within ``preflight_confirm_ttl_h`` (all of
    them, or just ``preflight_id``) as ``expired`` and delete their zips; the ids of the pre-flights ended.

    Nothing was spent for them, so nothing is given back. The state changes under the write lock
    and only from ``needs_confirmation``, so a confirmation racing this gives one outcome: the
    submission, or the expiry. Zips are content-addressed, so a zip is deleted only when no
    submission or pending pre-flight names it and nobody stored it again since the window began (a
    fresh upload of the same bytes rewrites the file before it records its pre-flight)."""
    deadline = confirm_deadline(settings, now)
    due = (Preflight.state == PreflightState.NEEDS_CONFIRMATION, Preflight.updated_at <= deadline)
    query = select(Preflight.id, Preflight.storage_key).where(*due)
    if preflight_id is not None:
        query = query.where(Preflight.id == preflight_id)
    with factory() as db:  # a plain read first: the pre-flight page's poll and every sweep ask, rarely in vain
        if db.execute(query.limit(1)).first() is None:
            return []
    with write_lock(factory) as db:
        rows = db.execute(query.with_for_update()).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        refusal = {"key": refusals.EXPIRED.key}
        db.execute(
            update(Preflight)
            .where(Preflight.id.in_(ids), *due)
            .values(state=PreflightState.EXPIRED, updated_at=now, refusal=refusal)
            .execution_options(synchronize_session=False)
        )
    assert settings.storage_dir is not None
    keys = sorted({row.storage_key for row in rows})
    storage.discard(settings.storage_dir, keys, lambda batch: referenced_keys(factory, batch), deadline.timestamp())
    log.info("pre-flights %s: confirmation window over; expired, nothing spent", ids)
    return ids


def preflight_marks(factory: sessionmaker[Session], ids: list[int]) -> dict[int, Hashable]:
    """For the long-poll watcher (``app.web.long_poll``): each pre-flight's state, in one query."""
    with factory() as db:
        return {
            row.id: row.state for row in db.execute(select(Preflight.id, Preflight.state).where(Preflight.id.in_(ids)))
        }


def referenced_keys(factory: sessionmaker[Session], keys: Collection[str]) -> set[str]:
    """Which of these stored zips something will still read: a submission (scoring, rescoring,
    downloads) or a pre-flight under way or awaiting "upload it anyway"."""
    with factory() as db:
        used = set(db.scalars(select(Submission.storage_key).where(Submission.storage_key.in_(keys))))
        pending = Preflight.state.in_(PENDING)
        used |= set(db.scalars(select(Preflight.storage_key).where(Preflight.storage_key.in_(keys), pending)))
        return used


def give_up(
    factory: sessionmaker[Session], preflight_id: int, now: dt.datetime, older_than: dt.datetime | None = None
) -> None:
    """End a ``checking`` check (created before ``older_than``, if given) as unanswered and free the
    trainee's turn: the pre-flight could not be sent, or no worker settled it in time.

    A plain read decides first whether there is anything to end: the pre-flight page's live feed asks on
    every look, and must not take the write lock for a pre-flight that is simply still being checked."""
    due = select(Preflight.id).where(Preflight.id == preflight_id, Preflight.state == PreflightState.CHECKING)
    if older_than is not None:
        due = due.where(Preflight.created_at <= older_than)
    with factory() as db:
        if db.scalar(due) is None:
            return
    with write_lock(factory) as db:
        row = _locked(db, preflight_id)
        if row is None or row.state != PreflightState.CHECKING:
            return
        if older_than is not None and row.created_at > older_than:
            return
        _release_turn(db, row)
        _end(row, PreflightState.FAILED, now, refusals.UNANSWERED.key)


def claim_next(
    factory: sessionmaker[Session], settings: Settings, now: dt.datetime, task_id: str | None = None
) -> int | None:
    """Claim the waiting pre-flight that comes first in the pre-flight's fair order (see the module's
    docstring) for the delivery ``task_id``; its id, or None when none waits. Exactly once on both
    databases (``app.services.claims``)."""
    fresh = now - dt.timedelta(seconds=settings.preflight_wait_s)
    checking = Preflight.state == PreflightState.CHECKING
    unclaimed = checking & Preflight.started_at.is_(None) & (Preflight.created_at > fresh)
    with write_lock(factory) as db:
        waiting = db.execute(select(Preflight.id, Preflight.user_id, Preflight.created_at).where(unclaimed)).all()
        if not waiting:
            return None
        used = preflight_seconds(db, {row.user_id for row in waiting}, now)
        order = sorted(waiting, key=lambda row: (used.get(row.user_id, 0.0), row.created_at, row.id))
        values = {"started_at": now, "task_id": task_id}
        return claim_first(db, Preflight, (row.id for row in order), unclaimed, values)


def claim(factory: sessionmaker[Session], preflight_id: int, now: dt.datetime) -> bool:
    """Claim this very check (a process that pre-flights its own uploads, without pre-flight workers)."""
    with write_lock(factory) as db:
        unclaimed = (Preflight.state == PreflightState.CHECKING) & Preflight.started_at.is_(None)
        return claim_first(db, Preflight, [preflight_id], unclaimed, {"started_at": now}) is not None


def preflight_seconds(db: Session, user_ids: Collection[int], now: dt.datetime) -> dict[int, float]:
    """Pre-flight time each trainee used in the last hour: from when a worker took each pre-flight to
    its verdict (or to now, for checks still running)."""
    rows = db.execute(
        select(Preflight.user_id, Preflight.state, Preflight.started_at, Preflight.updated_at).where(
            Preflight.user_id.in_(user_ids), Preflight.started_at > now - PREFLIGHT_TIME_WINDOW
        )
    ).all()
    used: dict[int, float] = {}
    for row in rows:
        assert row.started_at is not None
        until = now if row.state == PreflightState.CHECKING else row.updated_at
        used[row.user_id] = used.get(row.user_id, 0.0) + max(0.0, (until - row.started_at).total_seconds())
    return used


def check_and_settle(
    factory: sessionmaker[Session],
    settings: Settings,
    preflight_id: int,
    checker: Checker,
    enqueue: Callable[[int], object],
    clock: Callable[[], dt.datetime],
) -> None:
    """Run the pre-flight of a stored check (through the verdict cache) and act on the verdict.

    What the pre-flight worker does for each pre-flight; an in-process ``checker`` (tests, a site without
    pre-flight) goes through the same steps.
    """
    with factory() as db:
        row = db.get(Preflight, preflight_id)
        if row is None or row.state != PreflightState.CHECKING:
            return
        key, sha256 = row.storage_key, row.zip_sha256
    assert settings.storage_dir is not None
    path = storage.path_for(settings.storage_dir, key)
    try:
        verdict = cached_preflight(factory, path, sha256, checker, public_set_identity(settings))
    except Exception as exc:  # a fault of ours: the pre-flight ends as the server's, nothing spent
        log.exception("pre-flight of check %s failed internally", preflight_id)
        error = {
            "code": "internal_error",
            "blame": "server",
            "message": type(exc).__name__,
            "message_ja": type(exc).__name__,
        }
        verdict = PreflightVerdict(ok=False, error=error)
    submission_id = settle(factory, preflight_id, verdict, near_chance_below=settings.preflight_near_chance_below,
                           now=clock())  # fmt: skip
    if submission_id is not None:
        try:
            enqueue(submission_id)
        except Exception:  # the row is committed as queued: the sweeper re-queues it
            log.exception("could not enqueue submission %s; the sweeper will", submission_id)
