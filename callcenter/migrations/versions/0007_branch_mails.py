"""branch mails

Revision ID: 0007_branch_mails
Revises: 0001_crm
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0007_branch_mails"
down_revision: str | Sequence[str] | None = "0001_crm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "branch_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("sent_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
            name=op.f("fk_branch_mails_branch_id_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_branch_mails")),
        sa.UniqueConstraint("branch_id", "kind", "day", name="uq_branch_mails_once"),
    )


def downgrade() -> None:
    op.drop_table("branch_mails")
