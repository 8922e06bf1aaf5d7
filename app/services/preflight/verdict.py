"""Pre-flight: the scoring engine's quick check of a zip, run before a daily slot is spent.

A zip that fails here costs the trainee nothing and the reason is shown at once. The pre-flight runs on a
worker (``worker.tasks.preflight``, the ``preflight`` queue): trainee code never runs in the web
process, which holds the sessions and the database credentials. The worker also acts on the verdict
(``app.services.preflight.lifecycle``); the upload request waits for it only briefly. The verdict is
cached by the zip's SHA-256 (and the engine's version, and the public set's SHA-256: its smoke
accuracy depends on that set), so uploading the same broken zip again does not start a sandbox
again, and simultaneous checks of one zip in one worker process run it once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.models import PreflightVerdictCache


@dataclass(frozen=True)
class PreflightVerdict:
    """``scorer.report.CheckReport.to_json()`` as the site reads it; every other field the report
    carries is kept in ``report`` and written back by ``to_json``, so the cache and the refusal pass
    the whole report on."""

    ok: bool
    error: dict[str, Any] | None = None  # ScoringError.to_json(): code, message, message_ja, ...
    notices: list[dict[str, str]] = field(default_factory=list)  # [{"ja": ..., "en": ...}]
    log: str = ""
    report: dict[str, Any] = field(default_factory=dict)  # the worker's whole CheckReport, as JSON

    def to_json(self) -> dict[str, Any]:
        return {**self.report, "ok": self.ok, "error": self.error, "notices": self.notices, "log": self.log}

    @property
    def smoke(self) -> dict[str, Any] | None:
        """SmokeAccuracy.to_json(), when the public set was imported (scored outside the sandbox)."""
        smoke = self.report.get("smoke")
        return smoke if isinstance(smoke, dict) else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreflightVerdict:
        return cls(
            ok=bool(data["ok"]),
            error=data.get("error"),
            notices=list(data.get("notices") or []),
            log=str(data.get("log") or ""),
            report=dict(data),
        )

    def near_chance(self, threshold: float) -> bool:
        """An accepted zip that got the public smoke images about as right as guessing."""
        from scorer.smoke import SmokeAccuracy

        smoke = SmokeAccuracy.from_json(self.smoke)
        return self.ok and smoke is not None and smoke.near_chance(threshold)

    @property
    def depends_on_cohort(self) -> bool:
        """Refused for needing a runtime the pre-flight was not offered: that depends on the cohort (and
        the server), not on the zip alone, so it is not cached. It costs no sandbox to find again."""
        return bool(self.error and self.error.get("code") == "runtime_not_offered")

    @property
    def server_fault(self) -> bool:
        """The pre-flight could not run (sandbox unavailable, internal error): not the zip's fault."""
        return bool(self.error and self.error.get("blame") == "server")

    def error_message(self, lang: str) -> str:
        if not self.error:
            return ""
        return str(self.error.get("message_ja" if lang == "ja" else "message", self.error.get("code", "")))


Checker = Callable[[Path], PreflightVerdict]

PASSED = PreflightVerdict(ok=True)


def engine_version() -> str:
    from scorer import __version__

    return __version__


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(sha256: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(sha256, threading.Lock())


def cached_preflight(
    factory: sessionmaker[Session], zip_path: Path, sha256: str, checker: Checker, public_set_sha256: str = ""
) -> PreflightVerdict:
    """The verdict for this zip, from the cache or by running ``checker`` (blocking: run in a thread).

    ``public_set_sha256`` names the public set the pre-flight will score on ("" for none; see
    ``app.services.public_set.public_set_identity``): read it before the pre-flight, so a verdict is
    never filed under a set imported after the pre-flight began. A checker that raises, or reports a
    fault of the server's, is not cached: the zip may be fine.
    """
    version = engine_version()
    with _lock_for(sha256):
        with factory() as db:
            row = db.get(PreflightVerdictCache, (sha256, version, public_set_sha256))
            if row is not None:
                return PreflightVerdict.from_json(row.report)
        verdict = checker(zip_path)
        if verdict.server_fault or verdict.depends_on_cohort:  # the next upload should check again
            return verdict
        with factory() as db:
            db.add(
                PreflightVerdictCache(
                    zip_sha256=sha256, engine_version=version, public_set_sha256=public_set_sha256, ok=verdict.ok,
                    report=verdict.to_json(),
                )
            )  # fmt: skip
            try:
                db.commit()
            except IntegrityError:  # another web process cached it first
                db.rollback()
        return verdict
