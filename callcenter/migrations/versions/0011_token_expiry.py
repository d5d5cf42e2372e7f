"""api tokens: an expiry, and a prefix to show in lists

Revision ID: 0011_token_expiry
Revises: 0006_auth

A token's secret is stored only as its SHA-256; the prefix (the first characters, far too few
to guess the rest) lets a person tell their tokens apart in `tokens list`. Tokens issued
before this revision have no prefix and are shown by id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0011_token_expiry"
down_revision: str | Sequence[str] | None = "0006_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("expires_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("prefix", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("prefix")
        batch.drop_column("expires_at")
