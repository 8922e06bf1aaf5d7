"""A thread that keeps a running submission's ``heartbeat_at`` fresh while the sandbox works.

The sweeper takes a stale heartbeat to mean the worker died, so the beat must come from the worker
process itself and stop the moment the scoring ends. The update is fenced by the attempt number: a
worker that was presumed dead (and whose submission was handed to another) cannot keep the new
attempt's heartbeat alive.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from app.models import Submission, SubmissionStatus
from worker.db import sessions, utcnow

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, submission_id: int, attempt: int, interval_s: float) -> None:
        self.submission_id = submission_id
        self.attempt = attempt
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{submission_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> bool:
        """One beat; False once the row is no longer this attempt's (reclaimed or finished)."""
        with sessions()() as session, session.begin():
            result = session.execute(
                update(Submission)
                .where(
                    Submission.id == self.submission_id,
                    Submission.status == SubmissionStatus.RUNNING,
                    Submission.attempts == self.attempt,
                )
                .values(heartbeat_at=utcnow())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not self.beat():
                    log.warning(
                        "submission %s attempt %s was taken over; heartbeat stops",
                        self.submission_id,
                        self.attempt,
                    )
                    return
            except SQLAlchemyError:
                log.exception("heartbeat for submission %s failed; will try again", self.submission_id)
