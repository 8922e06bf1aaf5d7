"""This worker process's pre-warmed sandboxes (see scorer/warm.py): one per runtime, warmed after a task.

A Celery prefork child runs one task at a time in its main thread; that long-lived thread starts the
next task's sandbox at the end of the current task (``--die-with-parent`` follows the thread that
started bwrap, so never a helper thread) and hands it over in the next one. The slot is created
lazily, in the child: a sandbox started in the parent before the fork would belong to no task.
The first task of a process, or one whose warm sandbox no longer fits (another test set, changed
limits or runtime, died, idle too long), takes the cold path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from app.settings import Settings
from scorer.runtime import RuntimeName
from scorer.warm import HarnessSpec, WarmSlot

log = logging.getLogger(__name__)

_slot: WarmSlot | None = None


def warm_slot(settings: Settings) -> WarmSlot | None:
    """This process's slot; None when pre-warming is switched off."""
    global _slot
    if not settings.sandbox_prewarm:
        return None
    if _slot is None:
        runtimes = set(RuntimeName) if settings.sandbox_prewarm_tensorflow else {RuntimeName.NUMPY}
        _slot = WarmSlot(settings.sandbox_prewarm_idle_seconds, runtimes=frozenset(runtimes))
    return _slot


def warm_next(slot: WarmSlot | None, specs: Callable[[], list[HarnessSpec]]) -> None:
    """Start the sandboxes for this process's next task, one per installed runtime the slot keeps
    warm (which one the next task needs is known only once its zip is read); a runtime whose warm
    sandbox still fits keeps it. Never fails the task that just ended."""
    if slot is None:
        return
    try:
        for spec in specs():
            if slot.keeps(spec) and not slot.holds(spec):
                slot.warm(spec)
    except Exception:
        log.warning("pre-warming the next sandbox failed; the next task runs cold", exc_info=True)


def close_slot(**_: Any) -> None:
    """``worker_process_shutdown``: end this process's warm sandbox with the process."""
    if _slot is not None:
        _slot.close()
