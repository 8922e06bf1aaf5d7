"""Importing a hidden test set sent through the admin API, on a worker that holds the test-set folder.

The scoring workers mount the test-set folder (root-owned, 0700; the labels 0400), the web container
does not: so the site saves the uploaded files under the shared data folder and asks here. The
import is the same code the ``import-testset`` command runs; the answer goes back on a reply list.
At most once: the admin is waiting, and an import that did not happen is simply sent again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.queue import IMPORT_TESTSET_TASK, broker_url, send_reply
from app.services.testset_import import TestSetRejected, import_and_commit
from app.settings import get_settings
from worker.celery_app import DELIVERIES, app
from worker.db import sessions

log = logging.getLogger(__name__)


def _inside(base: Path, key: str) -> Path:
    path = (base / key).resolve()
    if not path.is_relative_to(base.resolve()):
        raise TestSetRejected(f"{key!r} is not under the data folder")
    return path


@app.task(name=IMPORT_TESTSET_TASK, **DELIVERIES[IMPORT_TESTSET_TASK].options)
def import_testset(data_key: str, labels_key: str, version: str, activate: bool, reply: str) -> None:
    settings = get_settings()
    assert settings.testset_dir is not None
    answer: dict[str, object]
    try:
        data, labels = _inside(settings.data_dir, data_key), _inside(settings.data_dir, labels_key)
        row_id = import_and_commit(sessions(), data, labels, settings.testset_dir, version=version, activate=activate)
        answer = {"id": row_id}
        log.info("test set %s imported (id %s, active=%s)", version, row_id, activate)
    except TestSetRejected as exc:
        answer = {"rejected": str(exc)}
    except Exception as exc:  # a fault of ours: the admin is told, and nothing half-imported is visible
        log.exception("importing test set %s failed", version)
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    send_reply(broker_url(settings), reply, answer)
