"""The admin command line: ``python -m app.cli COMMAND``.

- ``create-admin``: an admin account (the password is asked for, or generated and printed);
- ``import-testset DATA LABELS [--version V]``: the hidden test set as a new, active version;
- ``import-public DATA LABELS``: the course's public training set, for the pre-flight's smoke run;
- ``demo``: the synthetic test set and demo accounts (admin, instructor, trainee), printed;
- ``create-token EMAIL [--scope admin|instructor]``: an API token, printed once;
- ``cohort-runtimes COHORT [RUNTIME ...]``: show or set the runtimes a cohort allows (numpy, tensorflow);
- ``serve``: the embedded service — Redis, migrations, workers, beat, the site — until Ctrl-C.

Settings come from ``KATAKANA_*`` variables as everywhere else; every command that touches the
database first migrates it to head, so a fresh checkout needs no separate setup step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.models import Cohort, Enrollment, Language, Role, TestSet, User
from app.security.passwords import MIN_PASSWORD_LENGTH, hash_password
from app.settings import Settings, get_settings

DEMO_COHORT = "demo"
DEMO_TESTSET_VERSION = "synthetic-v1"
DEMO_ACCOUNTS = (
    ("admin", "admin@example.com", "管理者 (demo)", Role.ADMIN),
    ("instructor", "instructor@example.com", "講師 (demo)", Role.INSTRUCTOR),
    ("trainee", "trainee@example.com", "受講生 (demo)", Role.TRAINEE),
)


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _sessions(settings: Settings) -> sessionmaker[Session]:
    from app.supervisor import migrate_to_head

    migrate_to_head(settings.database_url)
    return make_sessionmaker(make_engine(settings.database_url))


def new_password() -> str:
    return secrets.token_urlsafe(12)


def upsert_user(session: Session, email: str, name: str, role: Role, password: str) -> User:
    email = email.strip().lower()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=name, role=role, language=Language.JA)
        session.add(user)
    user.role = role
    user.is_active = True
    user.password_hash = hash_password(password)
    session.flush()
    return user


# --- create-admin ---------------------------------------------------------------------------------


def create_admin(settings: Settings, email: str, name: str, password: str | None) -> str:
    """Create (or promote) an admin; returns the password, generated when none was given."""
    password = password or new_password()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CommandError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    with _sessions(settings).begin() as session:
        upsert_user(session, email, name, Role.ADMIN, password)
    return password


def _cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    password = None
    if args.ask_password:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise CommandError("the passwords differ")
    password = create_admin(settings, args.email, args.name or args.email.split("@")[0], password)
    print(f"admin {args.email.lower()} is ready")
    if not args.ask_password:
        print(f"password: {password}")
    return 0


# --- import-testset -------------------------------------------------------------------------------


def import_testset_files(
    settings: Settings, data: Path, labels: Path, version: str | None, activate: bool = True
) -> TestSet:
    from app.services.testset_import import TestSetRejected, default_version, import_testset

    assert settings.testset_dir is not None
    try:
        with _sessions(settings).begin() as session:
            return import_testset(
                session,
                data,
                labels,
                settings.testset_dir,
                version=version or default_version(dt.datetime.now(dt.UTC)),
                activate=activate,
            )
    except TestSetRejected as exc:
        raise CommandError(str(exc)) from exc


def _cmd_import_testset(args: argparse.Namespace, settings: Settings) -> int:
    row = import_testset_files(settings, args.data, args.labels, args.version, activate=not args.inactive)
    state = "active" if row.is_active else "inactive"
    print(f"test set {row.version} imported ({state}): {row.n_images} images, sha256 {row.sha256}")
    print("images per class: " + json.dumps(row.class_counts))
    return 0


# --- import-public --------------------------------------------------------------------------------


def _cmd_import_public(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.public_set import PublicSetRejected, import_public_set

    try:
        imported = import_public_set(settings, args.data, args.labels)
    except PublicSetRejected as exc:
        raise CommandError(f"the public set cannot be imported: {exc}") from exc
    print(f"public set imported: {imported.n_images} images into {imported.data.parent}")
    print("images per class: " + json.dumps(imported.class_counts))
    print("the pre-flight now runs submissions on a few of these images and checks their accuracy")
    return 0


# --- demo -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoAccount:
    role: str
    email: str
    password: str


def _demo_dataset(settings: Settings, dataset: Path | None) -> Path:
    if dataset is not None:
        return dataset
    target = settings.data_dir / "synthetic"
    if not (target / "test_label.npy").exists():
        from scorer.dataset import write_dataset

        print(f"generating the synthetic data set in {target} ...", flush=True)
        write_dataset(target, seed=0)
    return target


def demo(settings: Settings, dataset: Path | None = None) -> list[DemoAccount]:
    """Idempotent: the synthetic set is imported once; the accounts get fresh passwords each time.

    The synthetic training set is stored as the public set too (unless one is stored already), so
    the pre-flight's near-chance guard is on in the demo: without a public set a model that
    predicts one class for everything is scored, and spends an upload, without a question."""
    from app.services.public_set import import_public_set, public_set

    sessions = _sessions(settings)
    with sessions() as session:
        have_set = session.scalar(select(TestSet.id).where(TestSet.version == DEMO_TESTSET_VERSION))
    if have_set is None:
        folder = _demo_dataset(settings, dataset)
        import_testset_files(settings, folder / "test_data.npy", folder / "test_label.npy", DEMO_TESTSET_VERSION)
    if public_set(settings) is None:
        folder = _demo_dataset(settings, dataset)
        import_public_set(settings, folder / "train_data.npy", folder / "train_label.npy")
    accounts: list[DemoAccount] = []
    with sessions.begin() as session:
        cohort = session.scalar(select(Cohort).where(Cohort.name == DEMO_COHORT))
        if cohort is None:
            cohort = Cohort(
                name=DEMO_COHORT,
                title="デモ講座 / Demo cohort",
                daily_limit=settings.default_daily_limit,
                timezone=settings.default_timezone,
                pass_threshold=0.9,
            )
            session.add(cohort)
            session.flush()
        for role_name, email, name, role in DEMO_ACCOUNTS:
            password = new_password()
            user = upsert_user(session, email, name, role, password)
            if role != Role.ADMIN and session.get(Enrollment, (user.id, cohort.id)) is None:
                session.add(Enrollment(user_id=user.id, cohort_id=cohort.id, role=role))
            accounts.append(DemoAccount(role_name, email, password))
    return accounts


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from app.supervisor import public_set_line

    accounts = demo(settings, args.dataset)
    print(public_set_line(settings))
    print("demo accounts (new passwords on every `demo`):")
    for account in accounts:
        print(f"  {account.role:<10} {account.email:<26} {account.password}")
    return 0


# --- serve ----------------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.supervisor import serve

    return serve(settings, host=args.host, port=settings.port if args.port is None else args.port)


# --- create-token ---------------------------------------------------------------------------------


def create_api_token(settings: Settings, email: str, scope: str, name: str) -> str:
    """An API token for an existing admin or instructor; returns the secret (shown once)."""
    from app.models import TokenScope
    from app.services.api_tokens import TokenRefused, create_token

    with _sessions(settings).begin() as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise CommandError(f"no user {email}: create it first (create-admin, or the API's POST /api/v1/users)")
        try:
            return create_token(session, user, TokenScope(scope), name).secret
        except TokenRefused as exc:
            raise CommandError(f"{email} is {user.role.value}: it cannot hold a {scope} token") from exc


def _cmd_create_token(args: argparse.Namespace, settings: Settings) -> int:
    secret = create_api_token(settings, args.email, args.scope, args.name)
    print(f"{args.scope} token for {args.email.lower()} (shown once; store it now):")
    print(secret)
    return 0


# --- cohort-runtimes ------------------------------------------------------------------------------


def cohort_runtimes(settings: Settings, name: str, runtimes: Sequence[str] | None = None) -> list[str]:
    """The runtimes cohort ``name`` allows, after setting them to ``runtimes`` when given (the same
    rule as the API's: names of scorer.runtime.RuntimeName, "numpy" always among them)."""
    from pydantic import TypeAdapter, ValidationError

    from app.api.schemas import Runtimes

    with _sessions(settings).begin() as session:
        cohort = session.scalar(select(Cohort).where(func.lower(Cohort.name) == name.lower()))
        if cohort is None:
            raise CommandError(f"no cohort {name}")
        if runtimes is not None:
            try:
                chosen = TypeAdapter(Runtimes).validate_python(list(runtimes))
            except ValidationError as exc:
                problems = "; ".join(str(e["msg"]) for e in exc.errors())
                raise CommandError(f"runtimes {' '.join(runtimes)}: {problems}") from None
            cohort.runtimes = [runtime.value for runtime in chosen]
        return list(cohort.runtimes)


def _cmd_cohort_runtimes(args: argparse.Namespace, settings: Settings) -> int:
    allowed = cohort_runtimes(settings, args.cohort, args.runtimes or None)
    print(f"{args.cohort}: {' '.join(allowed)}")
    return 0


# --- main -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    admin = commands.add_parser("create-admin", help="create or promote an admin account")
    admin.add_argument("email")
    admin.add_argument("--name", default=None)
    admin.add_argument("--ask-password", action="store_true", help="type the password (else one is generated)")
    admin.set_defaults(handler=_cmd_create_admin)

    testset = commands.add_parser("import-testset", help="import the hidden test set as a new version")
    testset.add_argument("data", type=Path, help="test_data.npy, shaped (N, 1, 28, 28)")
    testset.add_argument("labels", type=Path, help="test_label.npy, one-hot (N, 15) or class ids (N,)")
    testset.add_argument("--version", default=None, help="a name for this version (default: the time)")
    testset.add_argument("--inactive", action="store_true", help="import without making it the active set")
    testset.set_defaults(handler=_cmd_import_testset)

    public = commands.add_parser(
        "import-public", help="store the course's public training set for the pre-flight's accuracy check"
    )
    public.add_argument("data", type=Path, help="train_data.npy, shaped (N, 1, 28, 28)")
    public.add_argument("labels", type=Path, help="train_label.npy, one-hot (N, 15)")
    public.set_defaults(handler=_cmd_import_public)

    demo_cmd = commands.add_parser("demo", help="synthetic test set and demo accounts")
    demo_cmd.add_argument("--dataset", type=Path, default=None, help="an already generated synthetic set")
    demo_cmd.set_defaults(handler=_cmd_demo)

    serve_cmd = commands.add_parser("serve", help="run the embedded service until Ctrl-C")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=None, help="default: KATAKANA_PORT, else 8000")
    serve_cmd.set_defaults(handler=_cmd_serve)

    token_cmd = commands.add_parser("create-token", help="issue an API token (Authorization: Bearer) for a user")
    token_cmd.add_argument("email", help="an existing admin or instructor")
    token_cmd.add_argument("--scope", choices=["admin", "instructor"], default="admin")
    token_cmd.add_argument("--name", default="cli", help="a label to recognise the token by")
    token_cmd.set_defaults(handler=_cmd_create_token)

    runtimes_cmd = commands.add_parser(
        "cohort-runtimes",
        help="show or set the runtimes a cohort's submissions may run in",
        description="With no RUNTIME, print the cohort's runtimes; with some, allow exactly those. "
        '"numpy" (the reference) is always allowed; "tensorflow" runs code that imports tensorflow or keras.',
    )
    runtimes_cmd.add_argument("cohort", help="the cohort's name")
    runtimes_cmd.add_argument("runtimes", nargs="*", metavar="RUNTIME", help="numpy, tensorflow")
    runtimes_cmd.set_defaults(handler=_cmd_cohort_runtimes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args, get_settings()))
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
