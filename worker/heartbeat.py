"""A thread that keeps a running submission's ``heartbeat_at`` fresh while the sandbox works.

The sweeper takes a stale heartbeat to mean the worker died, so the beat must come from the worker
process itself and stop the moment the scoring ends. The update is fenced by the attempt number: a
worker that was presumed dead (and whose submission was handed to another) cannot keep the new
attempt's heartbeat alive.

The thread runs in a copy of the task's context, so its log lines carry the task's bound
``submission_id`` like every other line about the submission (threads start with an empty context).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from types import TracebackType

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.models import Submission, SubmissionStatus
from worker.db import sessions, utcnow

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        submission_id: int,
        attempt: int,
        interval_s: float,
        session_factory: sessionmaker[Session] | None = None,
    ) -> None:
        self.submission_id = submission_id
        self._sessions = session_factory
        self.attempt = attempt
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        # The context is copied when the beat starts, i.e. with whatever the task has bound by then.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._run,),
            name=f"heartbeat-{self.submission_id}",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def beat(self) -> bool:
        """One beat; False once the row is no longer this attempt's (reclaimed or finished)."""
        factory = self._sessions or sessions()
        with factory() as session, session.begin():
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
