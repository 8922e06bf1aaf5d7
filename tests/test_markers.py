"""The markers the fast run (``pytest --fast``) leaves out reach the tests that need them, by fixture,
folder and parameter, without the test saying so (tests/fixtures/markers.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.markers import FAST, TESTS, markers_for


@dataclass
class CallSpec:
    params: dict[str, Any]


@dataclass
class FakeItem:
    """What ``markers_for`` reads of a collected test: its fixtures, its file, its parameters."""

    path: Path = TESTS / "app" / "test_something.py"
    fixturenames: list[str] = field(default_factory=list)
    callspec: CallSpec | None = None


def marks(**kwargs: Any) -> set[str]:
    return markers_for(FakeItem(**kwargs))  # type: ignore[arg-type]


def test_a_plain_test_gets_no_marker() -> None:
    assert marks(fixturenames=["tmp_path", "client", "sqlite_url"]) == set()


@pytest.mark.parametrize(
    ("fixture", "marker"),
    [
        ("browser", "browser"),
        ("postgres_server", "postgres"),
        ("redis_server", "live"),
        ("celery_worker_factory", "live"),
        ("service_factory", "live"),
    ],
)
def test_a_fixture_that_starts_something_expensive_marks_the_test(fixture: str, marker: str) -> None:
    assert marks(fixturenames=["tmp_path", fixture]) == {marker}


def test_the_postgresql_half_of_a_test_on_both_databases_is_marked() -> None:
    assert marks(fixturenames=["db_url"], callspec=CallSpec({"db_url": "postgresql"})) == {"postgres"}
    assert marks(fixturenames=["db_url"], callspec=CallSpec({"db_url": "sqlite"})) == set()
    assert marks(fixturenames=["empty_url"], callspec=CallSpec({"empty_url": "postgresql", "n": 3})) == {"postgres"}


def test_folders_mark_what_they_hold() -> None:
    assert marks(path=TESTS / "e2e" / "test_new.py") == {"live"}
    assert marks(path=TESTS / "reliability" / "test_new.py") == {"live"}
    assert marks(path=TESTS / "scorer" / "sandbox" / "test_new.py") == {"sandbox"}
    assert marks(path=TESTS / "scorer" / "test_new.py") == set()


def test_the_fast_run_leaves_out_every_marker_it_applies() -> None:
    for marker in ("sandbox", "browser", "postgres", "live", "slow"):
        assert marker in FAST and FAST.startswith("not (")


def test_the_markers_are_registered(pytestconfig: pytest.Config) -> None:
    registered = {line.split(":", 1)[0] for line in pytestconfig.getini("markers")}
    assert {"sandbox", "browser", "postgres", "live", "slow"} <= registered
