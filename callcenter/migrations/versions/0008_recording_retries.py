"""recording retries

Revision ID: 0008_recording_retries
Revises: 0005_recordings
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0008_recording_retries"
down_revision: str | Sequence[str] | None = "0005_recordings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("tries", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("retry_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_recordings_retry_at", ["retry_at"])


def downgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.drop_index("ix_recordings_retry_at")
        batch.drop_column("retry_at")
        batch.drop_column("tries")
