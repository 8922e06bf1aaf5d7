"""Dockerfile and docker-compose.yml, checked offline (no Docker engine runs here).

The compose file is parsed with PyYAML and held against the code it starts: every command names a
module that imports, the Celery workers together consume every queue (scoring on its own), beat runs
once, every ``KATAKANA_*`` variable is a real setting and the production settings are accepted,
the sandbox's container options are present where trainee code runs, the hidden test set's volume
is mounted into the scoring worker only, and what the Dockerfile creates is what compose expects.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.queue import QUEUES, SANDBOXED_QUEUES, SCORING_QUEUE, TESTSETS_QUEUE
from app.settings import Settings
from scorer.runtime import RuntimeName, default_locations
from tests.app.test_settings import environment_variables

REPO = Path(__file__).resolve().parents[1]
OURS = ("migrate", "web", "worker", "worker-preflight", "worker-mail")
SANDBOXED = ("worker", "worker-preflight")  # scoring, and the pre-flight smoke run
SANDBOX_OPTIONS = {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}
DATA_DIR = "/var/lib/katakana"
TESTSET_DIR = "/var/lib/katakana-testsets"
Services = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> Services:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def interpolate(value: str) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, with test values."""
    samples = {"KATAKANA_SECRET_KEY": "s" * 48, "POSTGRES_PASSWORD": "pw"}

    def one(match: re.Match[str]) -> str:
        name, op, default = match.group(1), match.group(2), match.group(3)
        return samples.get(name, default if op == ":-" else "x")

    return re.sub(r"\$\{([A-Z_]+)(?:(:[-?])([^}]*))?\}", one, value)


def option(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def celery_services(services: Services) -> dict[str, list[str]]:
    return {name: s["command"] for name, s in services.items() if s.get("command", [None])[0] == "celery"}


def test_the_services_the_issue_asks_for_are_there(services: Services) -> None:
    assert {"web", "worker", "redis", "postgres", "mailpit"} <= set(services)
    for name in OURS:
        assert services[name]["image"] == "katakana-scorer:latest"
        assert services[name]["build"]["context"] == "."
        assert (REPO / services[name]["build"]["dockerfile"]).is_file()


def test_every_command_starts_code_that_exists(services: Services) -> None:
    for name, command in celery_services(services).items():
        module = importlib.import_module(str(option(command, "-A")))
        assert hasattr(module, "app"), name
    web = services["web"]["command"]
    module_name, _, factory = str(option(web, "--factory")).partition(":")
    assert callable(getattr(importlib.import_module(module_name), factory))
    assert services["migrate"]["command"][:2] == ["alembic", "upgrade"]
    assert (REPO / "alembic.ini").is_file() and (REPO / "migrations" / "env.py").is_file()


def test_workers_consume_every_queue_and_scoring_alone(services: Services) -> None:
    commands = celery_services(services)
    consumed = {name: set(str(option(command, "-Q")).split(",")) for name, command in commands.items()}
    assert set().union(*consumed.values()) == set(QUEUES)
    scoring = [name for name, queues in consumed.items() if SCORING_QUEUE in queues]
    # Slow work delays nothing else (the rare test-set import must run where the test sets are).
    assert all(consumed[name] <= {SCORING_QUEUE, TESTSETS_QUEUE} for name in scoring)
    with_beat = [name for name, command in commands.items() if "-B" in command]
    assert len(with_beat) == 1  # one scheduler, or every sweep would run twice
    assert str(option(services[with_beat[0]]["command"], "-s")).startswith(DATA_DIR + "/")
    assert "deploy" not in services[with_beat[0]]


def test_the_environment_is_made_of_real_settings_accepted_in_production(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = set(environment_variables())
    for name in OURS:
        env = services[name]["environment"]
        assert set(env) <= known, set(env) - known
        with monkeypatch.context() as patched:  # read as the container reads them, KATAKANA_WORKER_* too
            for key, value in env.items():
                patched.setenv(key, interpolate(str(value)))
            settings = Settings(_env_file=None)  # type: ignore[call-arg]  # raises if unsafe
        assert settings.is_production and settings.sandbox_mode == "bwrap" and not settings.allow_unsandboxed
        assert str(settings.data_dir) == DATA_DIR and str(settings.testset_dir) == TESTSET_DIR
        assert settings.database_url.startswith("postgresql+psycopg://")
        assert settings.smtp_host in services and settings.redis_url.startswith("redis://redis:")


def test_trainee_code_runs_only_where_the_sandbox_options_are_set(
    services: Services,
) -> None:
    for name in SANDBOXED:
        assert set(services[name]["security_opt"]) == SANDBOX_OPTIONS
        assert not services[name].get("privileged") and not services[name].get("cap_add")
    for name, command in celery_services(services).items():  # every queue that runs trainee code
        if set(str(option(command, "-Q")).split(",")) & SANDBOXED_QUEUES:
            assert name in SANDBOXED, name
    for name in ("web", "worker-mail"):  # no trainee code there: Docker's default confinement
        assert "security_opt" not in services[name] and not services[name].get("privileged"), name
    assert services["web"]["user"] not in ("root", "0")


def test_volumes_are_declared_shared_and_the_labels_stay_with_the_scoring_worker(
    compose: dict[str, Any], services: Services
) -> None:
    declared = set(compose["volumes"])
    mounts: dict[str, dict[str, str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            mounts.setdefault(name, {})[target] = source
    data_volumes = {mounts[name][DATA_DIR] for name in ("web", "worker", "worker-preflight", "worker-mail")}
    assert len(data_volumes) == 1  # the site stores zips where the worker reads them
    testset_users = [name for name, targets in mounts.items() if TESTSET_DIR in targets]
    assert testset_users == ["worker"]


def test_test_sets_are_imported_where_the_test_set_volume_is(compose: dict[str, Any], services: Services) -> None:
    """The CLI import (as the compose file tells admins to run it) and the API's import task both
    run in a service that mounts the test-set volume, as root (the folder is 0700 root); the site,
    which receives the API upload, does not mount it and never imports itself."""

    def mounts_testsets(name: str) -> bool:
        return any(v.split(":")[1] == TESTSET_DIR for v in services[name].get("volumes", []))

    header = (REPO / "docker-compose.yml").read_text()
    cli = re.findall(r"docker compose run --rm (\S+) python -m app\.cli import-testset", header)
    assert cli and all(mounts_testsets(name) and services[name]["user"] == "root" for name in cli)
    importers = [
        name for name, command in celery_services(services).items()
        if TESTSETS_QUEUE in str(option(command, "-Q")).split(",")
    ]  # fmt: skip
    assert importers and all(mounts_testsets(name) and services[name]["user"] == "root" for name in importers)
    assert not mounts_testsets("web")
    # What the site hands over travels through the data volume the importing worker shares.
    volumes = [v.split(":") for name in ("web", *importers) for v in services[name]["volumes"]]
    assert len({source for source, target, *_ in volumes if target == DATA_DIR}) == 1


def test_dependencies_name_services_and_wait_for_the_migration(services: Services) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    for name in ("web", "worker", "worker-preflight", "worker-mail"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_the_dockerfile_provides_what_compose_expects(services: Services, dockerfile: str) -> None:
    runtime_python = services["worker"]["environment"]["KATAKANA_RUNTIME_PYTHON"]
    runtime_venv = str(Path(runtime_python).parents[1])
    assert f"python -m venv {runtime_venv}" in dockerfile
    assert (REPO / "runtime" / "requirements.txt").is_file() and "runtime/requirements.txt" in dockerfile
    assert "bubblewrap" in dockerfile
    # The TensorFlow runtime where scorer.runtime looks for it, from its pinned requirements (optional).
    tensorflow_venv = default_locations(RuntimeName.TENSORFLOW)[0].parents[1]
    assert f"python -m venv {tensorflow_venv}" in dockerfile
    assert "-r /tmp/runtime-tensorflow-requirements.txt" in dockerfile
    assert "COPY runtime/requirements-tensorflow.txt /tmp/runtime-tensorflow-requirements.txt" in dockerfile
    assert "ARG WITH_TENSORFLOW=1" in dockerfile
    for name in OURS:
        user = services[name].get("user")
        if user and user != "root":
            assert re.search(rf"useradd .*\b{user}\b", dockerfile), user
    # The image installs the versions CI verified (constraints.txt), and the file is in the context.
    assert re.search(r'pip install -c constraints\.txt -e "\.\[service\]"', dockerfile)
    assert (REPO / "constraints.txt").is_file()


def test_the_build_context_leaves_out_local_data_and_environments() -> None:
    """``COPY . /app`` must not bake a developer's database, uploads, test-set labels or .env in."""
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv/", "var/", "*.npy", ".env", ".git/"} <= ignored
    assert not {"constraints.txt", "runtime/", "scorer/", "app/"} & ignored
