"""The schema comes only from Alembic: upgrade from empty, no drift from the models, clean downgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from app.models import Base
from tests.fixtures.db import alembic_config


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    return str(request.getfixturevalue("postgres_empty_database"))


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_check_and_downgrade(empty_url: str) -> None:
    config = alembic_config(empty_url)
    command.upgrade(config, "head")
    assert _tables(empty_url) == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
    command.check(config)  # raises if the models and the migrations disagree
    command.downgrade(config, "base")
    assert _tables(empty_url) == {"alembic_version"}
    command.upgrade(config, "head")  # and back up again: the downgrade left nothing behind
