"""The embedded supervisor's restart back-off and its children's settings (the restart itself is tested live in
tests/reliability/test_embedded_restart.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from app.settings import Settings
from app.supervisor import RESTART_BACKOFF_S, STABLE_AFTER_S, Child, Supervisor, served_url


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


def test_the_children_link_to_the_address_the_site_serves_on(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    env = Supervisor(settings, host="127.0.0.1", port=8123).child_env("redis://127.0.0.1:1/0")
    assert env["KATAKANA_BASE_URL"] == "http://127.0.0.1:8123"  # not the default port 8000
    assert Settings(_env_file=None, base_url=env["KATAKANA_BASE_URL"]).base_url == "http://127.0.0.1:8123"  # type: ignore[call-arg]
    assert served_url("::1", 8123) == "http://[::1]:8123"
    assert served_url("0.0.0.0", 8123) == f"http://{socket.getfqdn()}:8123"


def test_an_address_the_operator_set_is_kept(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, base_url="https://scorer.example.ac.jp/")  # type: ignore[call-arg]
    env = Supervisor(settings, host="127.0.0.1", port=8123).child_env("redis://127.0.0.1:1/0")
    assert env["KATAKANA_BASE_URL"] == "https://scorer.example.ac.jp"
