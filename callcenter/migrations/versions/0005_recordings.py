"""recordings and reviews

Revision ID: 0005_recordings
Revises: 0001_crm
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0005_recordings"
down_revision: str | Sequence[str] | None = "0001_crm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = crm_sync.models.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("contact_result", sa.String(length=32), nullable=True),
        sa.Column("source_name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ended_at", UTC_DT, nullable=False),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("stored_at", UTC_DT, nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("speech_seconds", sa.Float(), nullable=True),
        sa.Column("silence_ratio", sa.Float(), nullable=True),
        sa.Column("waveform", sa.JSON(), nullable=True),
        sa.Column("format", sa.String(length=8), nullable=True),
        sa.Column("storage_key", sa.String(length=500), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("keep", sa.Boolean(), nullable=False),
        sa.Column("keep_by", sa.Integer(), nullable=True),
        sa.Column("keep_at", UTC_DT, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'stored', 'no_audio', 'corrupt', 'missing', 'failed')",
            name=op.f("ck_recordings_status"),
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_recordings_lead_id_leads"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["specialists.id"],
            name=op.f("fk_recordings_specialist_id_specialists"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["keep_by"],
            ["specialists.id"],
            name=op.f("fk_recordings_keep_by_specialists"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("attempt_id", name=op.f("uq_recordings_attempt_id")),
    )
    op.create_index("ix_recordings_ended_at", "recordings", ["ended_at"])
    op.create_index("ix_recordings_specialist_ended", "recordings", ["specialist_id", "ended_at"])
    op.create_index("ix_recordings_lead_id", "recordings", ["lead_id"])
    op.create_table(
        "recording_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("callback_at", UTC_DT, nullable=True),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_recording_reviews_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["specialists.id"],
            name=op.f("fk_recording_reviews_reviewer_id_specialists"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_reviews")),
    )
    op.create_index("ix_recording_reviews_recording_id", "recording_reviews", ["recording_id"])


def downgrade() -> None:
    op.drop_index("ix_recording_reviews_recording_id", table_name="recording_reviews")
    op.drop_table("recording_reviews")
    op.drop_index("ix_recordings_lead_id", table_name="recordings")
    op.drop_index("ix_recordings_specialist_ended", table_name="recordings")
    op.drop_index("ix_recordings_ended_at", table_name="recordings")
    op.drop_table("recordings")
