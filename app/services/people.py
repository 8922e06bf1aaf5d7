"""Accounts and enrolments as an admin manages them: create, invite, bulk-enrol from CSV, move.

Invitations reuse the site's one-time password links and the mail outbox — the same link a
"forgot my password" mail carries, with the ``invite`` purpose — so there is one mechanism to
secure and to test. Bulk enrolment checks the whole CSV before changing anything: a typo on line
40 must not leave 39 half-enrolled people behind.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.folding import normalize_reading
from app.i18n import Translator, normalize_lang
from app.models import Cohort, EmailOutbox, Enrollment, Language, Role, TokenPurpose, User
from app.security import password_links
from app.security.tokens import token_hash
from app.services.outbox import queue_email
from app.settings import Settings

CSV_ROLES = {"": Role.TRAINEE, "trainee": Role.TRAINEE, "instructor": Role.INSTRUCTOR}
CSV_REQUIRED = ["name", "email"]
CSV_OPTIONAL = ("role", "reading")  # after the two required columns, in any order


@dataclass(frozen=True)
class CsvProblem:
    """One bad line: ``code`` names the message (``csv_problem_<code>`` in the i18n tables)."""

    line: int
    code: str
    params: dict[str, str]

    def text(self, t: Translator) -> str:
        return t("csv_line", line=self.line, problem=t(f"csv_problem_{self.code}", **self.params))


class CsvProblems(ValueError):
    """Every bad line of the CSV, in file order (an admin fixes them all in one go)."""

    def __init__(self, problems: list[CsvProblem]) -> None:
        super().__init__(f"{len(problems)} bad line(s)")
        self.problems = problems


@dataclass(frozen=True)
class CsvPerson:
    line: int
    name: str
    email: str
    role: Role
    reading: str = ""  # フリガナ, normalised (app.folding.normalize_reading); "" when not given


def parse_people_csv(text: str, check_email: object) -> list[CsvPerson]:
    """Rows of ``name,email`` and, named in the header, ``role`` and ``reading`` (フリガナ);
    raises :class:`CsvProblems` listing every bad line.

    A bad header stops there: without it, the columns of the other lines mean nothing.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in next(reader, [])]
    extra = header[2:]
    if header[:2] != CSV_REQUIRED or any(h not in CSV_OPTIONAL for h in extra) or len(set(extra)) < len(extra):
        raise CsvProblems([CsvProblem(1, "header", {"found": ",".join(header)[:100]})])
    column = {name: i for i, name in enumerate(header)}
    people: list[CsvPerson] = []
    problems: list[CsvProblem] = []
    first_line: dict[str, int] = {}
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            problems.append(CsvProblem(number, "columns", {}))
            continue
        name, email = row[0].strip(), row[1].strip().lower()
        role_text = _cell(row, column.get("role")).lower()
        reading = _cell(row, column.get("reading"))
        before = len(problems)
        if not name or len(name) > 200:
            problems.append(CsvProblem(number, "name", {}))
        try:
            email = check_email(email)  # type: ignore[operator]
        except ValueError:
            problems.append(CsvProblem(number, "email", {"email": email[:100]}))
        if role_text not in CSV_ROLES:
            problems.append(CsvProblem(number, "role", {"role": role_text[:50]}))
        try:
            reading = normalize_reading(reading)
        except ValueError:
            problems.append(CsvProblem(number, "reading", {"reading": reading[:50]}))
        if email in first_line:
            problems.append(CsvProblem(number, "duplicate", {"email": email, "first": str(first_line[email])}))
        first_line.setdefault(email, number)
        if len(problems) == before:
            people.append(CsvPerson(number, name, email, CSV_ROLES[role_text], reading))
    if problems:
        raise CsvProblems(problems)
    return people


def _cell(row: list[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def invite(db: Session, user: User, settings: Settings, cohort: Cohort | None = None) -> EmailOutbox:
    """Queue the invitation mail with a fresh one-time link (the caller commits, then delivers).

    The mail names the cohort (when the invitation comes with an enrolment), how long the link
    works, and the login page to use once the password is set.
    """
    token = password_links.issue(db, user, TokenPurpose.INVITE, settings)
    t = Translator(normalize_lang(user.language.value))
    course = cohort.title or cohort.name if cohort is not None else ""
    body = t(
        "invite_mail_body",
        name=user.name,
        cohort=t("invite_mail_cohort", cohort=course) if course else "",
        link=password_links.link(token, settings),
        days=settings.invite_token_ttl_days,
        login=f"{settings.base_url}/login",
        email=user.email,
        forgot=f"{settings.base_url}/password/forgot",
    )
    key = f"invite:{token_hash(token)[:16]}"  # never the token itself: keys name mail files and headers
    return queue_email(db, key=key, to=user.email, subject=t("invite_mail_subject"), body_text=body)


def create_user(
    db: Session, *, email: str, name: str, role: Role, language: Language = Language.JA, reading: str = ""
) -> User:
    user = User(
        email=email, name=name, reading=reading, role=role, language=language, password_hash=None, is_active=True
    )
    db.add(user)
    db.flush()
    return user


def enrol(db: Session, user: User, cohort_id: int, role: Role) -> bool:
    """Enrol (or change the role in the cohort); True when something changed.

    An instructor enrolment makes a trainee account an instructor: the instructor pages are
    reached by the account's role.
    """
    if role == Role.INSTRUCTOR and user.role == Role.TRAINEE:
        user.role = Role.INSTRUCTOR
    existing = db.get(Enrollment, (user.id, cohort_id))
    if existing is None:
        db.add(Enrollment(user_id=user.id, cohort_id=cohort_id, role=role))
        db.flush()
        return True
    if existing.role != role:
        existing.role = role
        return True
    return False


def move_trainee(db: Session, user: User, to_cohort_id: int, from_cohort_id: int | None = None) -> None:
    """Leave the old cohort(s) as a trainee and join the new one; past submissions keep their cohort."""
    query = delete(Enrollment).where(
        Enrollment.user_id == user.id, Enrollment.role == Role.TRAINEE, Enrollment.cohort_id != to_cohort_id
    )
    if from_cohort_id is not None:
        query = query.where(Enrollment.cohort_id == from_cohort_id)
    db.execute(query)
    enrol(db, user, to_cohort_id, Role.TRAINEE)


def user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email))
