"""dialer tables

Revision ID: 0004_dialer
Revises: 0001_crm
Hand-written from dialer/models.py (partial unique indexes keep one attempt in flight per lead and per number).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0004_dialer"
down_revision: str | Sequence[str] | None = "0001_crm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("trunk", sa.String(length=64), nullable=False),
        sa.Column("trunk_max_calls", sa.Integer(), nullable=False),
        sa.Column("trunk_max_cps", sa.Float(), nullable=False),
        sa.Column("caller_id", sa.String(length=100), nullable=True),
        sa.Column("message", sa.String(length=200), nullable=True),
        sa.Column("created_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('renewal', 'lapsed', 'trial', 'callback', 'reminder')",
            name=op.f("ck_campaigns_kind"),
        ),
        sa.CheckConstraint(
            "mode IN ('seat_first', 'customer_first', 'preview', 'automatic')",
            name=op.f("ck_campaigns_mode"),
        ),
        sa.CheckConstraint("concurrency >= 0", name=op.f("ck_campaigns_concurrency")),
        sa.CheckConstraint("trunk_max_calls >= 0", name=op.f("ck_campaigns_trunk_max_calls")),
        sa.CheckConstraint("trunk_max_cps > 0", name=op.f("ck_campaigns_trunk_max_cps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )
    op.create_table(
        "do_not_call",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("added_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_do_not_call")),
    )
    op.create_table(
        "seat_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("seat", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("pause_reason", sa.String(length=200), nullable=True),
        sa.Column("attempt_id", sa.String(length=64), nullable=True),
        sa.Column("since", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('offline', 'ready', 'ringing', 'on_call', 'wrap_up', 'paused')",
            name=op.f("ck_seat_sessions_state"),
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["specialists.id"],
            name=op.f("fk_seat_sessions_specialist_id_specialists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seat_sessions")),
        sa.UniqueConstraint("seat", name=op.f("uq_seat_sessions_seat")),
        sa.UniqueConstraint("specialist_id", name=op.f("uq_seat_sessions_specialist_id")),
    )
    op.create_table(
        "seat_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("seat", sa.String(length=100), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=False),
        sa.Column("to_state", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("attempt_id", sa.String(length=64), nullable=True),
        sa.Column("at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["specialists.id"],
            name=op.f("fk_seat_transitions_specialist_id_specialists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seat_transitions")),
    )
    with op.batch_alter_table("seat_transitions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_seat_transitions_specialist_at", ["specialist_id", "at"], unique=False
        )

    op.create_table(
        "call_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("phone_id", sa.Integer(), nullable=True),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("seat", sa.String(length=100), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("campaign_kind", sa.String(length=20), nullable=False),
        sa.Column("ami_server", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.Column("tech_cause", sa.Integer(), nullable=True),
        sa.Column("dial_status", sa.String(length=20), nullable=True),
        sa.Column("ring_seconds", sa.Float(), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("key_pressed", sa.String(length=8), nullable=True),
        sa.Column("recording_file", sa.String(length=500), nullable=True),
        sa.Column("contact_result", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("unknown", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "(state = 'ended') = (ended_at IS NOT NULL)",
            name=op.f("ck_call_attempts_ended_when_ended"),
        ),
        sa.CheckConstraint(
            "mode IN ('seat_first', 'customer_first', 'preview', 'automatic')",
            name=op.f("ck_call_attempts_mode"),
        ),
        sa.CheckConstraint(
            "state IN ('reserved', 'dialing', 'sent', 'answered', 'ended')",
            name=op.f("ck_call_attempts_state"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_call_attempts_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_call_attempts_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["phone_id"],
            ["phones.id"],
            name=op.f("fk_call_attempts_phone_id_phones"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["specialists.id"],
            name=op.f("fk_call_attempts_specialist_id_specialists"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_attempts")),
        sa.UniqueConstraint("attempt_id", name=op.f("uq_call_attempts_attempt_id")),
    )
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_call_attempts_ended", ["ended_at"], unique=False)
        batch_op.create_index("ix_call_attempts_lead", ["lead_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_call_attempts_server_state", ["ami_server", "state"], unique=False
        )
        batch_op.create_index(
            "uq_call_attempts_lead_in_flight",
            ["lead_id"],
            unique=True,
            postgresql_where=sa.text("ended_at IS NULL"),
            sqlite_where=sa.text("ended_at IS NULL"),
        )
        batch_op.create_index(
            "uq_call_attempts_number_in_flight",
            ["number"],
            unique=True,
            postgresql_where=sa.text("ended_at IS NULL"),
            sqlite_where=sa.text("ended_at IS NULL"),
        )


def downgrade() -> None:

    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_call_attempts_number_in_flight",
            postgresql_where=sa.text("ended_at IS NULL"),
            sqlite_where=sa.text("ended_at IS NULL"),
        )
        batch_op.drop_index(
            "uq_call_attempts_lead_in_flight",
            postgresql_where=sa.text("ended_at IS NULL"),
            sqlite_where=sa.text("ended_at IS NULL"),
        )
        batch_op.drop_index("ix_call_attempts_server_state")
        batch_op.drop_index("ix_call_attempts_lead")
        batch_op.drop_index("ix_call_attempts_ended")

    op.drop_table("call_attempts")
    with op.batch_alter_table("seat_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_seat_transitions_specialist_at")

    op.drop_table("seat_transitions")
    op.drop_table("seat_sessions")
    op.drop_table("do_not_call")
    op.drop_table("campaigns")
