"""The scoring queue: which waiting submission runs next, where each one stands, and how long it waits.

**The fair order.** A scoring worker takes the waiting submission of the trainee with the fewest runs
ahead of theirs: a trainee's second and third uploads wait behind other trainees' first ones, so
uploads A A A B C are scored A B C A A. "Runs ahead of theirs" are the trainee's runs going on now
and those that ended since the oldest wait began (the oldest ``queued_at`` among the waiting): the
service they had while others waited, even from a run that started just before. Between trainees
with as many runs, cohorts take turns (the cohort with fewer runs in that time first), so one
cohort's rush does not hold another's trainees back; then the longer wait goes first.
:func:`fair_order` is that rule, applied run after run to project the whole queue; the first of the
projection is what a worker claims (``worker.tasks.scoring``), and a trainee's place in it is what
their result page shows.

Nothing is stored for the order: it is computed from the submissions themselves (waiting rows, running
rows and the runs ended since the oldest wait began), so it survives restarts, needs no clean-up, and
every web process and worker computes the same one.

**The wait.** Runs take about the median of recent runs (:func:`typical_run_seconds`). Each waiting
run is laid, in the fair order, on the earliest free of the live scoring workers (a running one
frees its worker after the rest of its typical time): in a steady queue that is runs ahead × the
typical run ÷ live workers, and it is exact about the first few places, where a trainee looks most.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import logging
import math
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.models import Submission, SubmissionStatus
from app.observability.redis_client import redis_for
from app.observability.worker_presence import live_workers
from app.queue import SCORING_QUEUE, broker_url
from app.services.claims import claim_first
from app.settings import Settings

log = logging.getLogger(__name__)

FINAL = (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)
RECENT_RUNS = 20  # the typical run is the median of this many recent runs (of its runtime)
RECENT_RUNS_SCANNED = 10  # ... found among this many times as many recent runs of any runtime
DEFAULT_RUNTIME = "numpy"  # the reference runtime (scorer.runtime): what a record without a name ran in
MIN_RUN_S = 1.0  # an estimate is never "0 s": a run takes at least a second of the worker's time


def runtime_name(recorded: object) -> str:
    """The runtime a submission's ``runtime`` record names; without a name (a record made before there
    were several runtimes, or none yet), the reference runtime's."""
    name = recorded.get("name") if isinstance(recorded, dict) else None
    return str(name) if name else DEFAULT_RUNTIME


@dataclass(frozen=True)
class Waiting:
    """A submission in the queue, with what the fair order and the wait look at."""

    id: int
    user_id: int
    cohort_id: int
    queued_at: dt.datetime
    runtime: str = DEFAULT_RUNTIME


@dataclass(frozen=True)
class Running:
    id: int
    started_at: dt.datetime | None
    runtime: str = DEFAULT_RUNTIME
    cohort_id: int = 0


@dataclass(frozen=True)
class RunTimes:
    """What a run takes, per runtime: the median of that runtime's recent runs; a runtime without
    runs of its own yet is taken to take what recent runs of any runtime took (None: no run yet)."""

    by_runtime: Mapping[str, float]
    overall: float | None

    def of(self, runtime: str) -> float | None:
        return self.by_runtime.get(runtime, self.overall)


def fair_order(
    waiting: Iterable[Waiting], user_runs: Mapping[int, int], cohort_runs: Mapping[int, int]
) -> list[Waiting]:
    """The order in which ``waiting`` would be scored, one run after another, given the runs each
    trainee (``user_runs``) and cohort (``cohort_runs``) already has ahead (see the module's
    docstring). Pure: the same inputs give the same order, on every process."""
    lanes: dict[tuple[int, int], deque[Waiting]] = {}  # a trainee's waiting runs in a cohort, oldest first
    for item in sorted(waiting, key=lambda w: (w.queued_at, w.id)):
        lanes.setdefault((item.user_id, item.cohort_id), deque()).append(item)
    runs = Counter(user_runs)
    served = Counter(cohort_runs)
    # Per cohort, its trainees' next runs: (the trainee's runs ahead, waiting since, id, trainee).
    heads: dict[int, list[tuple[int, dt.datetime, int, int]]] = {}
    for (user, cohort), lane in lanes.items():
        heapq.heappush(heads.setdefault(cohort, []), (runs[user], lane[0].queued_at, lane[0].id, user))

    def turn(cohort: int) -> tuple[int, int, dt.datetime, int]:
        ahead, since, first, _ = heads[cohort][0]
        return ahead, served[cohort], since, first

    order: list[Waiting] = []
    while heads:
        cohort = min(heads, key=turn)
        ahead, _, _, user = heapq.heappop(heads[cohort])
        lane = lanes[(user, cohort)]
        if ahead != runs[user]:  # the trainee ran in another cohort meanwhile: queue them again
            heapq.heappush(heads[cohort], (runs[user], lane[0].queued_at, lane[0].id, user))
            continue
        order.append(lane.popleft())
        runs[user] += 1
        served[cohort] += 1
        if lane:
            heapq.heappush(heads[cohort], (runs[user], lane[0].queued_at, lane[0].id, user))
        elif not heads[cohort]:
            del heads[cohort]
    return order


@dataclass(frozen=True)
class QueueSnapshot:
    """The queue at one moment: the waiting submissions in fair order, and the running ones."""

    order: tuple[Waiting, ...]
    running: tuple[Running, ...]

    @functools.cached_property
    def _places(self) -> dict[int, int]:
        return {item.id: place for place, item in enumerate(self.order, start=1)}

    def position(self, submission_id: int) -> int | None:
        """1 for the next to be scored; None when it does not wait."""
        return self._places.get(submission_id)

    def runs_ahead(self, submission_id: int) -> int | None:
        """The runs that come before this one: those waiting before it and those going on now."""
        place = self.position(submission_id)
        return None if place is None else place - 1 + len(self.running)

    def starts_in(self, times: RunTimes, slots: int, now: dt.datetime) -> dict[int, float]:
        """Seconds from ``now`` until each waiting run is expected to start, with ``slots`` live
        scoring workers and runs taking their runtime's typical time (see the module's docstring);
        empty before any run has finished."""
        if times.overall is None:
            return {}
        free = []
        for run in self.running:
            elapsed = (now - run.started_at).total_seconds() if run.started_at else 0.0
            free.append(max(0.0, (times.of(run.runtime) or times.overall) - elapsed))
        # More runs going on than workers seen: a worker's presence lapsed, not its run.
        free += [0.0] * max(0, slots - len(free))
        heapq.heapify(free)
        starts: dict[int, float] = {}
        for item in self.order:
            start = heapq.heappop(free)
            starts[item.id] = start
            heapq.heappush(free, start + (times.of(item.runtime) or times.overall))
        return starts


@dataclass(frozen=True)
class CohortQueue:
    """A cohort's uploads in the queue, for its instructors during a deadline."""

    waiting: int  # the cohort's uploads waiting to be scored
    running: int  # ... and being scored now
    all_waiting: int  # every cohort's, for scale
    oldest_wait_s: float | None  # how long its oldest waiting upload has waited
    drain_s: float | None  # until the last of them is expected to have its result (None: not known)


def cohort_queue(
    snapshot: QueueSnapshot, cohort_id: int, times: RunTimes, slots: int | None, now: dt.datetime
) -> CohortQueue:
    """Where a cohort's uploads stand in the queue. Live workers not known: one assumed; none: no
    time to drain is promised."""
    mine = [item for item in snapshot.order if item.cohort_id == cohort_id]
    running = [run for run in snapshot.running if run.cohort_id == cohort_id]
    drain: float | None = None
    if slots != 0 and times.overall is not None and (mine or running):
        starts = snapshot.starts_in(times, slots or 1, now)
        ends = [starts[item.id] + (times.of(item.runtime) or times.overall) for item in mine]
        for run in running:
            elapsed = (now - run.started_at).total_seconds() if run.started_at else 0.0
            ends.append(max(0.0, (times.of(run.runtime) or times.overall) - elapsed))
        drain = float(math.ceil(max(ends)))
    oldest = min((item.queued_at for item in mine), default=None)
    return CohortQueue(
        waiting=len(mine),
        running=len(running),
        all_waiting=len(snapshot.order),
        oldest_wait_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        drain_s=drain,
    )


def read_snapshot(db: Session) -> QueueSnapshot:
    """The queue as the database has it now, in fair order."""
    columns = (Submission.id, Submission.user_id, Submission.cohort_id, Submission.runtime)
    waiting = [
        Waiting(row.id, row.user_id, row.cohort_id, row.queued_at, runtime_name(row.runtime))
        for row in db.execute(
            select(*columns, Submission.queued_at).where(Submission.status == SubmissionStatus.QUEUED)
        )
    ]
    running = db.execute(
        select(*columns, Submission.started_at).where(Submission.status == SubmissionStatus.RUNNING)
    ).all()
    user_runs: Counter[int] = Counter(row.user_id for row in running)
    cohort_runs: Counter[int] = Counter(row.cohort_id for row in running)
    if waiting:
        since = min(item.queued_at for item in waiting)
        finished_since = db.execute(
            select(Submission.user_id, Submission.cohort_id).where(
                Submission.finished_at >= since, Submission.status.in_(FINAL)
            )
        ).all()
        user_runs.update(row.user_id for row in finished_since)
        cohort_runs.update(row.cohort_id for row in finished_since)
    order = fair_order(waiting, user_runs, cohort_runs)
    return QueueSnapshot(
        tuple(order),
        tuple(Running(row.id, row.started_at, runtime_name(row.runtime), row.cohort_id) for row in running),
    )


def claim_next(db: Session, values: Mapping[str, Any]) -> int | None:
    """Claim the first waiting submission of the fair order, setting ``values`` on it (status
    ``running``, the attempt…), inside the caller's write-locked transaction (``app.db.write_lock``);
    its id, or None when nothing waits. See :mod:`app.services.claims` for why it is exactly once."""
    order = read_snapshot(db).order
    return claim_first(
        db, Submission, (item.id for item in order), Submission.status == SubmissionStatus.QUEUED, values
    )


def typical_run_seconds(db: Session, limit: int = RECENT_RUNS) -> RunTimes:
    """How long a run takes, per runtime: the median wall time, start to finish, of each runtime's
    last ``limit`` runs (among the last few hundred of all). A median is not thrown by one runaway
    run; runs the service itself failed (the sweeper giving up on a lost host, a missing zip) are no
    measure of a run. Rounded up to whole seconds, at least :data:`MIN_RUN_S`: the page says
    "about 4 s", never "0 s"."""
    rows = db.execute(
        select(Submission.started_at, Submission.finished_at, Submission.runtime)
        .where(
            Submission.status.in_(FINAL),
            Submission.started_at.is_not(None),
            Submission.finished_at.is_not(None),
            or_(Submission.error_blame.is_(None), Submission.error_blame != "server"),
        )
        .order_by(Submission.id.desc())  # the primary key: stops after the limit, no new index
        .limit(limit * RECENT_RUNS_SCANNED)
    ).all()
    every: list[float] = []
    per_runtime: dict[str, list[float]] = {}
    for started, finished, recorded in rows:
        if started is None or finished is None:
            continue
        seconds = (finished - started).total_seconds()
        if len(every) < limit:
            every.append(seconds)
        runtime = per_runtime.setdefault(runtime_name(recorded), [])
        if len(runtime) < limit:
            runtime.append(seconds)
    return RunTimes({name: _typical(durations) for name, durations in per_runtime.items()},
                    _typical(every) if every else None)  # fmt: skip


def _typical(durations: list[float]) -> float:
    return float(max(MIN_RUN_S, math.ceil(statistics.median(durations))))


def live_scoring_slots(settings: Settings) -> int | None:
    """Runs the live scoring workers can do at once (their pool sizes); None when Redis cannot say."""
    client = redis_for(broker_url(settings))
    try:
        workers = live_workers(client)
    except (redis.RedisError, OSError) as exc:
        log.debug("cannot count the live scoring workers: %s", exc)
        return None
    finally:
        client.close()
    return sum(worker.slots for worker in workers if SCORING_QUEUE in worker.queues)


QueueState = tuple[tuple[str, int, int], ...]


class QueueWatch:
    """A process's view of the scoring queue for pages that show a place and a wait.

    The fair order is computed again only when the queue changed, judged by its make-up
    (:func:`queue_state`: one line per status, how many rows wait or run and the sum of their ids),
    which moves with every upload, claim, result and rescoring. While pages wait on their result, the
    long-poll watcher reads that make-up on every tick anyway (``app.services.progress.progress_marks``)
    and hands it here (:meth:`saw`): a look within ``seen_max_age_s`` of that reading uses it and
    reads nothing of the queue itself, so the pages a change wakes cost no query of the queue each.
    Without a recent reading (nobody waits), a look reads the make-up itself. The live workers are
    read from Redis at most every ``slots_max_age_s``.
    """

    def __init__(
        self, slots: Callable[[], int | None], *, slots_max_age_s: float = 5.0, seen_max_age_s: float = 1.0
    ) -> None:
        self._slots_reader = slots
        self._slots_max_age_s = slots_max_age_s
        self._seen_max_age_s = seen_max_age_s
        self._lock = threading.Lock()
        self._snapshot: tuple[QueueState, QueueSnapshot] | None = None
        self._seen: tuple[float, QueueState] | None = None  # the watcher's last reading, and when
        self._slots: tuple[float, int | None] | None = None
        self.orders = 0  # how many times the fair order was computed (for tests)

    def saw(self, db: Session, state: QueueState) -> None:
        """The watcher read the queue's make-up ``state`` (with ``db``) just now: keep it, and
        compute the order for it now if it changed, before the pages it wakes look."""
        with self._lock:
            self._seen = (time.monotonic(), state)
        self._snapshot_of(db, state)

    def snapshot(self, db: Session, *, fresh: bool = False) -> QueueSnapshot:
        """The queue as it stands (its order computed at most once per change); ``fresh``: as it
        stands now, not as the watcher last saw it."""
        with self._lock:
            seen = self._seen
        if not fresh and seen is not None and time.monotonic() - seen[0] < self._seen_max_age_s:
            return self._snapshot_of(db, seen[1])
        return self._snapshot_of(db, queue_state(db))

    def _snapshot_of(self, db: Session, state: QueueState) -> QueueSnapshot:
        with self._lock:
            cached = self._snapshot
        if cached is not None and cached[0] == state:
            return cached[1]
        snapshot = read_snapshot(db)
        with self._lock:
            self._snapshot = (state, snapshot)
            self.orders += 1
        return snapshot

    def slots(self) -> int | None:
        """Live scoring workers' slots, as of at most ``slots_max_age_s`` ago."""
        with self._lock:
            cached = self._slots
        if cached is not None and time.monotonic() - cached[0] < self._slots_max_age_s:
            return cached[1]
        slots = self._slots_reader()
        with self._lock:
            self._slots = (time.monotonic(), slots)
        return slots


def queue_state(db: Session) -> QueueState:
    """The queue's make-up: per status (queued, running), how many rows and the sum of their ids. A
    new upload has a larger id than any before it, so one submission leaving and another arriving
    still change the sum."""
    rows = db.execute(
        select(Submission.status, func.count(), func.coalesce(func.sum(Submission.id), 0))
        .where(Submission.status.in_((SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)))
        .group_by(Submission.status)
    ).all()
    return tuple(sorted((SubmissionStatus(status).value, int(count), int(total)) for status, count, total in rows))
