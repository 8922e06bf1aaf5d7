"""Database sessions for the worker: one engine per process.

Celery's prefork pool forks children from the main process; a SQLAlchemy engine (its pooled
connections) must never cross a fork, so the engine is keyed by the process id and rebuilt in a child.
"""

from __future__ import annotations

import datetime as dt
import os
import threading

from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.settings import get_settings

_lock = threading.Lock()
_cache: dict[int, sessionmaker[Session]] = {}


def sessions() -> sessionmaker[Session]:
    pid = os.getpid()
    with _lock:
        factory = _cache.get(pid)
        if factory is None:
            _cache.clear()  # inherited from the parent: never reuse its connections
            factory = make_sessionmaker(make_engine(get_settings().database_url))
            _cache[pid] = factory
        return factory


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
