"""web sign-in: logins (argon2 hashes, lockout) and browser sessions

Revision ID: 0014_web_sessions
Revises: 0006_auth
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0014_web_sessions"
down_revision: str | Sequence[str] | None = "0006_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_logins",
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("locked_until", crm_sync.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("password_set_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["specialists.id"],
            name=op.f("fk_web_logins_specialist_id_specialists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("specialist_id", name=op.f("pk_web_logins")),
        sa.UniqueConstraint("username", name=op.f("uq_web_logins_username")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid_sha256", sa.String(length=64), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["specialists.id"],
            name=op.f("fk_web_sessions_specialist_id_specialists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("sid_sha256", name=op.f("uq_web_sessions_sid_sha256")),
    )
    op.create_index("ix_web_sessions_specialist_id", "web_sessions", ["specialist_id"])


def downgrade() -> None:
    op.drop_index("ix_web_sessions_specialist_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("web_logins")
