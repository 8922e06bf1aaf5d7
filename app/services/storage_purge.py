"""Remove zips nobody's submission refers to: refused uploads, and partial files of dead processes.

An upload refused by the pre-flight (or by the daily limit, the pre-flight gate, a bad CSRF token…)
costs the trainee nothing, so it must not cost the server storage either: 3 × 8 MiB a day of
refused zips kept forever is a disk filled for free. They are kept ``refused_upload_retention_s``
(a day by default) so support can still look at "the zip the site refused this morning", then the
periodic sweep deletes them, together with ``incoming/`` files a crashed web process left behind.

A zip is kept while any submission row names it (identical uploads share one file), and while it
is younger than the retention: an upload being checked right now has no row yet, and a fresh
upload of the same content re-writes the file (new modification time), so it is never taken away
from under an upload in progress.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Submission

log = logging.getLogger(__name__)


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def purge_unreferenced_zips(db: Session, storage_dir: Path, now: dt.datetime, retention_s: int) -> list[str]:
    """Delete stored zips no submission refers to, older than ``retention_s``; returns their keys."""
    cutoff = now.timestamp() - retention_s
    removed: list[str] = []
    zips = storage_dir / "zips"
    if zips.is_dir():
        referenced = set(db.scalars(select(Submission.storage_key).distinct()))
        for path in sorted(zips.glob("*/*.zip")):
            key = path.relative_to(storage_dir).as_posix()
            if key in referenced or not _older_than(path, cutoff):
                continue
            # Checked again just before: an identical upload may have re-written it meanwhile.
            named = db.scalar(select(Submission.id).where(Submission.storage_key == key).limit(1))
            if named is None and _older_than(path, cutoff):
                path.unlink(missing_ok=True)
                removed.append(key)
    incoming = storage_dir / "incoming"
    if incoming.is_dir():
        for path in incoming.iterdir():
            if path.is_file() and _older_than(path, cutoff):
                path.unlink(missing_ok=True)
                removed.append(path.relative_to(storage_dir).as_posix())
    if removed:
        log.info("removed %d unreferenced upload(s) older than %d s", len(removed), retention_s)
    return removed
