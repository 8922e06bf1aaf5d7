"""Hand-offs after the request's transaction: mail to the outbox worker, submissions to scoring.

FastAPI runs background tasks after the response, and the request's database session commits
before the response is sent, so the worker always finds the rows it is told about. A broker that
is down loses nothing: the rows are committed and the worker's sweeper sends them later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from fastapi import BackgroundTasks

from app.web.deps import DeliverEmail, Enqueue

log = logging.getLogger(__name__)


def _run_all(send: Callable[[int], object], ids: list[int], what: str) -> None:
    for item in ids:
        try:
            send(item)
        except Exception:
            log.exception("could not hand %s %s to the worker; the sweeper will", what, item)


def deliver_mail_later(deliver: DeliverEmail, background: BackgroundTasks, outbox_ids: Iterable[int]) -> None:
    ids = list(outbox_ids)
    if ids:
        background.add_task(_run_all, deliver, ids, "mail")


def enqueue_later(enqueue: Enqueue, background: BackgroundTasks, submission_ids: Iterable[int]) -> None:
    ids = list(submission_ids)
    if ids:
        background.add_task(_run_all, enqueue, ids, "submission")
