"""Long polling, as the result page and the pre-flight page follow their state (``live.js``).

Without ``wait`` the feed answers at once. With ``wait`` (seconds, at most ``LONG_POLL_MAX_S``) it
answers as soon as the state differs from what the page shows — within one tick of the change being
stored — or when ``wait`` runs out, or when the page goes away.

What a held request costs is the point of this module, because one user can open hundreds:

- **One watcher per process** (:class:`Watcher`, one for submissions and one for pre-flights): a
  single task that, while anyone waits, reads a *mark* of every watched id in one query per tick on
  one worker thread, and wakes the requests whose mark changed. A mark is cheap and changes whenever
  the page's state may have (a submission's status, and for a queued one the queue's make-up). A
  held request reads the database when it starts and when woken, never per tick, and writes
  nothing. Each web process runs its own watcher against the database, where the workers store
  every change, so it needs nothing from Redis or from the process that stored the change, and the
  one query serves SQLite and PostgreSQL alike.
- **A cap per user** (``long_poll_per_user`` held requests per process): more are answered at once
  with the state as it is and ``Retry-After`` (10-20 s), which ``live.js`` waits before it asks
  again: a fifth tab is updated every few seconds instead of at once, and a script's hundreds of
  polls cost a plain look each, spread out.

No session is held while waiting: each look opens and closes its own, so waiting pages cannot
exhaust the pool.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Generic, TypeVar

import anyio
from fastapi import Depends, Request

from app.web.deps import NotFound, app_state

log = logging.getLogger(__name__)

LONG_POLL_MAX_S = 25.0  # below common proxy idle time-outs (30-60 s)
# A page over its user's cap asks again after this many seconds (Retry-After), not at once; drawn at
# random, so the polls one script sends together come back spread out rather than as one burst.
OVER_CAP_RETRY_S = (10, 20)
DISCONNECT_CHECK_S = 1.0  # how often a held request looks whether its page went away

State = TypeVar("State")
Mark = Hashable
_UNREAD = object()  # a watched id whose first mark is not read yet


@dataclass
class _Watched:
    """One id being watched, shared by every request waiting on it."""

    waiters: int = 0
    mark: object = _UNREAD
    read: anyio.Event = field(default_factory=anyio.Event)  # set once its first mark is in
    changed: anyio.Event = field(default_factory=anyio.Event)  # set, then replaced, at each change

    def saw(self, mark: object) -> None:
        if self.mark is _UNREAD:
            self.mark = mark
            self.read.set()
        elif mark != self.mark:
            self.mark = mark
            self.changed.set()
            self.changed = anyio.Event()


class Watcher:
    """Reads the marks of every watched id together, once per ``tick``, while anyone waits.

    ``read(ids)`` (blocking: it runs on a worker thread) returns each id's mark; an id it leaves out
    (deleted, say) has the mark None.
    """

    def __init__(self, name: str, read: Callable[[list[int]], dict[int, Mark]], tick: float) -> None:
        self.name = name
        self._read = read
        self._tick = tick
        self._watched: dict[int, _Watched] = {}
        self._wanted = anyio.Event()  # set while anyone waits
        self.reads = 0  # how many times it read (for tests and benchmarks)

    async def run(self) -> None:
        """The watcher's loop, for the process's life (the app's lifespan runs it)."""
        while True:
            if not self._watched:
                self._wanted = anyio.Event()
                await self._wanted.wait()
            ids = list(self._watched)
            try:
                marks = await anyio.to_thread.run_sync(self._read, ids)
            except Exception:  # a database blip: the requests wait for the next tick, or their deadline
                log.exception("the %s watcher could not read; trying again", self.name)
                marks = None
            if marks is not None:
                self.reads += 1
                for item_id in ids:
                    watched = self._watched.get(item_id)
                    if watched is not None:
                        watched.saw(marks.get(item_id))
            await anyio.sleep(self._tick)

    @asynccontextmanager
    async def watching(self, item_id: int) -> AsyncIterator[_Watched]:
        """Watch ``item_id`` for the block. Once ``read`` is set (its first mark is in), any change
        after a look taken from then on shows as ``changed``."""
        watched = self._watched.setdefault(item_id, _Watched())
        watched.waiters += 1
        self._wanted.set()
        try:
            yield watched
        finally:
            watched.waiters -= 1
            if watched.waiters == 0 and self._watched.get(item_id) is watched:
                del self._watched[item_id]


class HeldPolls:
    """How many requests each user holds in this process, against ``per_user``."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._held: dict[int, int] = {}

    @contextmanager
    def hold(self, user_id: int) -> Iterator[bool]:
        """Whether this request may be held (False: the user holds ``per_user`` already)."""
        if self._held.get(user_id, 0) >= self.per_user:
            yield False
            return
        self._held[user_id] = self._held.get(user_id, 0) + 1
        try:
            yield True
        finally:
            self._held[user_id] -= 1
            if not self._held[user_id]:
                del self._held[user_id]

    def held(self, user_id: int) -> int:
        return self._held.get(user_id, 0)


@dataclass(frozen=True)
class Polled(Generic[State]):
    """The state to answer with; ``retry_after_s`` when the request was over its user's cap."""

    state: State
    retry_after_s: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Cache-Control": "no-store"}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


async def long_poll(
    request: Request,
    watcher: Watcher,
    item_id: int,
    user_id: int,
    look: Callable[[], State | None],
    moved: Callable[[State], bool],
    wait: float,
    due_in: Callable[[State], float | None] = lambda _state: None,
) -> Polled[State]:
    """Look (on a worker thread) until ``moved`` says the page's view is out of date, ``wait`` runs
    out or the page goes away, looking again only when the watcher sees ``item_id`` change; 404
    when ``look`` finds nothing the viewer may see. ``due_in`` says how soon a state changes by
    itself when looked at (a pre-flight nobody settles is given up by its look), so the wait ends then."""
    state = await anyio.to_thread.run_sync(look)
    if state is None:
        raise NotFound
    deadline = anyio.current_time() + max(0.0, min(wait, LONG_POLL_MAX_S))
    if moved(state) or anyio.current_time() >= deadline:
        return Polled(state)
    holds: HeldPolls = request.app.state.held_polls
    with holds.hold(user_id) as held:
        if not held:
            return Polled(state, random.randint(*OVER_CAP_RETRY_S))  # noqa: S311 - spreading load, not a secret
        async with watcher.watching(item_id) as watched:
            with anyio.move_on_after(deadline - anyio.current_time()):
                await watched.read.wait()
            if not watched.read.is_set():  # the watcher could not read in time: answer as it stands
                return Polled(state)
            while True:
                changed = watched.changed  # before the look: a change after it sets this one
                state = await anyio.to_thread.run_sync(look)
                if state is None:
                    raise NotFound
                if moved(state) or anyio.current_time() >= deadline:
                    return Polled(state)
                # A state due to change by itself is looked at again then (at least a second on:
                # a look that did not change it is not repeated at once).
                due = due_in(state)
                until = deadline if due is None else min(deadline, anyio.current_time() + max(DISCONNECT_CHECK_S, due))
                woken = await _changed_before(request, changed, until)
                if not woken and (anyio.current_time() >= deadline or await request.is_disconnected()):
                    return Polled(state)


async def _changed_before(request: Request, changed: anyio.Event, until: float) -> bool:
    """Wait for ``changed`` until ``until`` (the event loop's clock); False when time ran out or the
    page went away first."""
    while anyio.current_time() < until:
        with anyio.move_on_after(min(DISCONNECT_CHECK_S, until - anyio.current_time())):
            await changed.wait()
            return True
        if await request.is_disconnected():
            return False
    return False


# The process's one watcher of each kind (``create_app`` starts them), for the routes that long-poll.
SubmissionWatcherDep = Annotated[Watcher, Depends(app_state("submission_watcher"))]
PreflightWatcherDep = Annotated[Watcher, Depends(app_state("preflight_watcher"))]
