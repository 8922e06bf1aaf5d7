"""The admin command line: test set import checks, accounts, the demo, and ``serve`` for real."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from sqlalchemy import select

from app.cli import CommandError, build_parser, cohort_runtimes, create_admin, demo, import_testset_files, main
from app.db import make_engine, make_sessionmaker
from app.models import Cohort, Enrollment, Role, TestSet, User
from app.security.passwords import verify_password
from app.services.public_set import public_set
from app.services.testset_import import sha256_of_testset
from app.settings import Settings
from app.supervisor import public_set_line
from scorer.classes import IMAGE_SHAPE, NUM_CLASSES
from tests.fixtures.artifacts import DataSet
from tests.fixtures.embedded import embedded_serve
from tests.fixtures.services import wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", environment="test")  # type: ignore[call-arg]


def write_set(folder: Path, n_per_class: int = 2, *, one_hot: bool = True) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.repeat(np.arange(NUM_CLASSES), n_per_class)
    data, labels = folder / "data.npy", folder / "labels.npy"
    np.save(data, np.zeros((len(ids), *IMAGE_SHAPE), dtype=np.float32))
    np.save(labels, np.eye(NUM_CLASSES, dtype=np.float32)[ids] if one_hot else ids)
    return data, labels


def rows(settings: Settings) -> list[TestSet]:
    with make_sessionmaker(make_engine(settings.database_url))() as session:
        return list(session.scalars(select(TestSet).order_by(TestSet.id)))


def test_import_testset_copies_a_new_active_version_with_private_labels(settings: Settings, tmp_path: Path) -> None:
    first = import_testset_files(settings, *write_set(tmp_path / "a"), "2026-a")
    second = import_testset_files(settings, *write_set(tmp_path / "b", 3, one_hot=False), "2026-b")

    old, new = rows(settings)
    assert (old.version, old.is_active) == ("2026-a", False)  # the newer import took over
    assert (new.version, new.is_active, new.n_images) == ("2026-b", True, 45)
    assert new.class_counts == [3] * NUM_CLASSES and first.class_counts == [2] * NUM_CLASSES
    data, labels = Path(new.data_path), Path(new.labels_path)
    assert data.parent == settings.testset_dir.resolve() / "2026-b"
    assert new.sha256 == sha256_of_testset(data, labels) == second.sha256
    assert stat.S_IMODE(labels.stat().st_mode) == 0o400  # the worker's user only
    assert stat.S_IMODE(data.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((30, 28, 28)), np.eye(NUM_CLASSES)[np.arange(30) % 15], "(N, 1, 28, 28)"),
        (np.zeros((30, *IMAGE_SHAPE)), np.eye(NUM_CLASSES)[np.arange(29) % 15], "29 labels for 30 images"),
        (np.zeros((30, *IMAGE_SHAPE)), np.arange(30) % 14, "classes [14] have no images"),
        (np.zeros((30, *IMAGE_SHAPE)), np.full((30, NUM_CLASSES), 1.0), "exactly one 1"),
        (np.zeros((30, *IMAGE_SHAPE)), np.zeros((30, 10)), "one-hot (N, 15)"),
        (np.zeros((30, *IMAGE_SHAPE)), np.arange(30) % 16, "0..14"),
    ],
)
def test_import_testset_refuses_what_would_break_scoring(
    settings: Settings, tmp_path: Path, images: np.ndarray, labels: np.ndarray, message: str
) -> None:
    np.save(tmp_path / "d.npy", images)
    np.save(tmp_path / "l.npy", labels)
    with pytest.raises(CommandError, match=re.escape(message)):
        import_testset_files(settings, tmp_path / "d.npy", tmp_path / "l.npy", "bad")
    assert rows(settings) == []
    assert not (settings.testset_dir / "bad").exists()


def test_import_testset_refuses_a_version_twice(settings: Settings, tmp_path: Path) -> None:
    import_testset_files(settings, *write_set(tmp_path / "a"), "v1")
    with pytest.raises(CommandError, match="already exists"):
        import_testset_files(settings, *write_set(tmp_path / "a"), "v1")


def test_create_admin_generates_a_password_that_logs_in(settings: Settings) -> None:
    password = create_admin(settings, "Boss@Example.com", "Boss", None)
    with make_sessionmaker(make_engine(settings.database_url))() as session:
        user = session.scalar(select(User).where(User.email == "boss@example.com"))
    assert user is not None and user.role == Role.ADMIN
    assert verify_password(user.password_hash, password)
    with pytest.raises(CommandError, match="at least"):
        create_admin(settings, "x@example.com", "X", "short")


def test_demo_imports_the_synthetic_set_once_and_prints_working_accounts(
    settings: Settings, synthetic_set: DataSet
) -> None:
    assert "near-chance guard is OFF" in public_set_line(settings)
    accounts = demo(settings, synthetic_set.dir)
    again = demo(settings, synthetic_set.dir)  # idempotent: no second test set, no duplicate users
    # The synthetic training set is the public set: the pre-flight's near-chance guard is on.
    stored = public_set(settings)
    assert stored is not None and stored.n_images == np.load(synthetic_set.train_label).shape[0]
    assert "near-chance guard is on" in public_set_line(settings)

    (testset,) = rows(settings)
    assert (testset.version, testset.is_active, testset.n_images) == ("synthetic-v1", True, 14500)
    with make_sessionmaker(make_engine(settings.database_url))() as session:
        users = {u.email: u for u in session.scalars(select(User))}
        cohort = session.scalar(select(Cohort).where(Cohort.name == "demo"))
        enrolled = {e.user.email: e.role for e in session.scalars(select(Enrollment))}
    assert cohort is not None
    assert [a.role for a in accounts] == ["admin", "instructor", "trainee"]
    assert {a.email for a in accounts} == set(users)
    for account in again:
        assert verify_password(users[account.email].password_hash, account.password)
    assert enrolled == {"instructor@example.com": Role.INSTRUCTOR, "trainee@example.com": Role.TRAINEE}


def test_main_reports_user_errors_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    np.save(tmp_path / "d.npy", np.zeros((3, 28, 28)))
    np.save(tmp_path / "l.npy", np.zeros(3))
    monkeypatch.setenv("KATAKANA_DATA_DIR", str(tmp_path / "data"))
    from app.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["import-testset", str(tmp_path / "d.npy"), str(tmp_path / "l.npy")]) == 2
    finally:
        get_settings.cache_clear()
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.live
def test_serve_runs_the_embedded_service_and_stops_it_all_on_ctrl_c(tmp_path: Path, synthetic_set: DataSet) -> None:
    with embedded_serve(tmp_path, synthetic_set.dir) as serve:

        def page_answers() -> bool:
            try:
                return httpx.get(f"{serve.url}/login", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(page_answers, "the site to answer")
        wait_for(lambda: "sandbox self-test passed" in serve.output(), "the scoring worker")
        assert (serve.data_dir / "redis" / "redis.sock").is_socket()  # the embedded Redis
        children = psutil.Process(serve.process.pid).children(recursive=True)
        assert len(children) >= 4  # redis, two workers (with their pool), the site
    output = serve.output()
    assert "near-chance guard is on" in output  # the demo stored the public set, and serve says so
    assert serve.exit_code == 0, output
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], output
    assert "Warm shutdown" in output


def test_cohort_runtimes_shows_and_sets_what_a_cohort_allows(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*argv: str) -> str:
        args = build_parser().parse_args(["cohort-runtimes", *argv])
        assert args.handler(args, settings) == 0
        return capsys.readouterr().out.strip()

    with pytest.raises(CommandError, match="no cohort"):  # (and the database is migrated to head)
        cohort_runtimes(settings, "dl_tokyo_5")
    with make_sessionmaker(make_engine(settings.database_url)).begin() as session:
        session.add(Cohort(name="dl_tokyo_5"))
    assert run("DL_TOKYO_5") == "DL_TOKYO_5: numpy tensorflow"  # a new cohort's default
    assert run("dl_tokyo_5", "numpy") == "dl_tokyo_5: numpy"
    with make_sessionmaker(make_engine(settings.database_url))() as session:
        cohort = session.scalar(select(Cohort).where(Cohort.name == "dl_tokyo_5"))
        assert cohort is not None and cohort.runtimes == ["numpy"]
    with pytest.raises(CommandError, match="numpy"):  # the reference is always allowed
        cohort_runtimes(settings, "dl_tokyo_5", ["tensorflow"])
    with pytest.raises(CommandError, match="torch"):
        cohort_runtimes(settings, "dl_tokyo_5", ["numpy", "torch"])
    assert cohort_runtimes(settings, "dl_tokyo_5") == ["numpy"]
