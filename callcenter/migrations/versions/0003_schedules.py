"""schedules: distribution runs (audit of the daily random equal allocation)

Revision ID: 0003_schedules
Revises: 0001_crm
Create Date: 2026-11-27 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0003_schedules"
down_revision: str | Sequence[str] | None = "0001_crm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "distribution_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("started_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("due_count", sa.Integer(), nullable=False),
        sa.Column("dealt_count", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("allocation", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_distribution_runs")),
    )
    with op.batch_alter_table("distribution_runs", schema=None) as batch_op:
        batch_op.create_index("ix_distribution_runs_day", ["day", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("distribution_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_distribution_runs_day")
    op.drop_table("distribution_runs")
