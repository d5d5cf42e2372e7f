"""the supervisors' wallboard: live state shared between processes, listening-in audit

Revision ID: 0015_board
Revises: 0014_web_sessions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0015_board"
down_revision: str | Sequence[str] | None = "0014_web_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = crm_sync.models.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "board_entries",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("rev", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("gone", sa.Boolean(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_board_entries")),
    )
    op.create_index("ix_board_entries_owner_rev", "board_entries", ["owner", "rev"])
    op.create_table(
        "supervisor_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("supervisor_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("target_seat", sa.String(length=100), nullable=True),
        sa.Column("channel", sa.String(length=100), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("requested_at", UTC_TIME, nullable=False),
        sa.Column("done_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["supervisor_id"],
            ["specialists.id"],
            name=op.f("fk_supervisor_actions_supervisor_id_specialists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["specialists.id"],
            name=op.f("fk_supervisor_actions_specialist_id_specialists"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervisor_actions")),
    )
    op.create_index("ix_supervisor_actions_at", "supervisor_actions", ["requested_at"])


def downgrade() -> None:
    op.drop_index("ix_supervisor_actions_at", table_name="supervisor_actions")
    op.drop_table("supervisor_actions")
    op.drop_index("ix_board_entries_owner_rev", table_name="board_entries")
    op.drop_table("board_entries")
