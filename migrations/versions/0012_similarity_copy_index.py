"""similarity copy index: each pair's expected shared mistakes, lift and what it was measured on

A pair of trainees was flagged by error agreement alone (of the images both got wrong, the share
with the same wrong class) at a fixed 0.90, which independent models of the course's template reach.
The worker now also stores, for the pair's strongest pair of submissions, the identical wrong answers
expected under independence given the rest of the cohort, the lift of the observed ones over them
(with its standard error), how many of them fall on images most of the cohort gets right, and how
many other trainees the expectation rests on; the page standardises the lifts against the cohort's
own. Existing pairs keep their old figures (the new columns empty) until either trainee's next
result refreshes them.

Revision ID: similarity_copy_index
Revises: leaderboard_versions
Create Date: 2026-12-06 02:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "similarity_copy_index"
down_revision: str | None = "leaderboard_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("expected_same_wrong", sa.Float()),
    ("lift", sa.Float()),
    ("lift_se", sa.Float()),
    ("same_wrong_easy", sa.Integer()),
    ("reference_trainees", sa.Integer()),
)


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("similarity_pairs", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("similarity_pairs") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
