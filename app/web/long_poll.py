"""Long polling, as the result page and the upload-check page follow their state (``live.js``).

Without ``wait`` the feed answers at once. With ``wait`` (seconds, at most ``LONG_POLL_MAX_S``) it
answers as soon as the state differs from what the page shows — within one tick of the change being
stored — or when ``wait`` runs out. No session is held while waiting: each look opens and closes its
own, so waiting pages cannot exhaust the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from fastapi import Request

from app.web.deps import NotFound

LONG_POLL_MAX_S = 25.0  # below common proxy idle time-outs (30-60 s)

State = TypeVar("State")


async def long_poll(
    request: Request, look: Callable[[], State | None], moved: Callable[[State], bool], wait: float, tick: float
) -> State:
    """Look (on a worker thread) until ``moved`` says the page's view is out of date, ``wait`` runs
    out or the page goes away; 404 when ``look`` finds nothing the viewer may see."""
    deadline = anyio.current_time() + max(0.0, min(wait, LONG_POLL_MAX_S))
    while True:
        state = await anyio.to_thread.run_sync(look)
        if state is None:
            raise NotFound
        if moved(state) or anyio.current_time() >= deadline:
            return state
        if await request.is_disconnected():
            return state  # the page went away: stop looking for it
        await anyio.sleep(tick)
