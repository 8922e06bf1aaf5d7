"""The embedded supervisor's restart back-off (the restart itself is tested live in
tests/reliability/test_embedded_restart.py)."""

from __future__ import annotations

from app.supervisor import RESTART_BACKOFF_S, STABLE_AFTER_S, Child


def test_a_worker_that_keeps_dying_young_waits_longer_each_time_up_to_a_cap() -> None:
    child = Child("scoring worker", ["celery"])
    waits = []
    now = 1000.0
    for _ in range(9):
        child.started_at = now
        now += 1  # dies a second after each start
        waits.append(child.schedule_restart(now))
        assert child.restart_at == now + waits[-1]
        now += waits[-1]
    first, longest = RESTART_BACKOFF_S
    assert waits[:4] == [first, first * 2, first * 4, first * 8]
    assert waits[-1] == longest and max(waits) == longest


def test_a_worker_that_ran_a_while_before_dying_starts_its_back_off_afresh() -> None:
    child = Child("scoring worker", ["celery"])
    child.started_at = 0.0
    child.schedule_restart(1.0)
    child.started_at = 2.0
    assert child.schedule_restart(3.0) == RESTART_BACKOFF_S[0] * 2
    child.started_at = 10.0
    assert child.schedule_restart(10.0 + STABLE_AFTER_S) == RESTART_BACKOFF_S[0]
