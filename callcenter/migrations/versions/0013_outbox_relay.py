"""outbox relay: delivery state, leases, tries; inbound CRM changes audit

Revision ID: 0013_outbox_relay
Revises: 0001_crm

The relay (crm_sync.relay) delivers `outbox` rows in order per `key`. A row is `pending`
until a sink accepts it (`delivered`, with the sink's name) or refuses it for good
(`parked`, with the receiver's answer). `next_try_at` holds a failing row back (backoff);
`lease_owner`/`lease_until` say which relay process handles the row's key now (only the
oldest pending row of a key is ever claimed, so a lease on it locks the whole key); a lease
that runs out is taken over, so a crashed relay loses nothing. `history` keeps the failed
tries. Rows delivered before this migration are marked `delivered`.

On PostgreSQL a statement trigger NOTIFYs `callcenter_outbox` on insert: delivered at commit,
so the relay wakes as soon as a result is committed, and never for a rolled-back one.

`crm_changes` is the audit of the CRM's inbound changes (crm_sync.changes), unique by the
CRM's own change id so that a change sent twice is applied once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0013_outbox_relay"
down_revision: str | Sequence[str] | None = "0001_crm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = crm_sync.models.UtcDateTime(timezone=True)

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callcenter_outbox', '');
    RETURN NULL;
END $$
"""
NOTIFY_TRIGGER = """
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()
"""


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("state", sa.String(16), server_default="pending", nullable=False)
        )
        batch.add_column(sa.Column("next_try_at", UTC_DT, nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", UTC_DT, nullable=True))
        batch.add_column(sa.Column("sink", sa.String(32), nullable=True))
        batch.add_column(sa.Column("parked_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("history", sa.JSON(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_outbox_state"), "state IN ('pending', 'delivered', 'parked')"
        )
        batch.create_index(
            "ix_outbox_pending_key",
            ["key", "id"],
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )
        batch.create_index("ix_outbox_state_created", ["state", "created_at"])
    op.execute("UPDATE outbox SET state = 'delivered' WHERE delivered_at IS NOT NULL")

    op.create_table(
        "crm_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("changed_at", UTC_DT, nullable=False),
        sa.Column("received_at", UTC_DT, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_changes")),
        sa.UniqueConstraint("change_id", name=op.f("uq_crm_changes_change_id")),
    )
    with op.batch_alter_table("crm_changes") as batch:
        batch.create_index("ix_crm_changes_subject", ["kind", "subject", "changed_at"])

    if op.get_context().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(NOTIFY_TRIGGER)
        # A queue table: its pending share swings from none to a whole outage's backlog.
        # Statistics that still say "nothing pending" make the claim scan every pending row
        # (measured: 106 ms instead of 1.4 ms for 20,000); analyse after 1 % + 1,000 changes.
        op.execute(
            "ALTER TABLE outbox SET (autovacuum_analyze_scale_factor = 0.01, "
            "autovacuum_analyze_threshold = 1000, autovacuum_vacuum_scale_factor = 0.02)"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE outbox RESET (autovacuum_analyze_scale_factor, "
            "autovacuum_analyze_threshold, autovacuum_vacuum_scale_factor)"
        )
        op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
        op.execute("DROP FUNCTION IF EXISTS outbox_notify()")
    with op.batch_alter_table("crm_changes") as batch:
        batch.drop_index("ix_crm_changes_subject")
    op.drop_table("crm_changes")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_state_created")
        batch.drop_index("ix_outbox_pending_key")
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        for column in (
            "history",
            "parked_reason",
            "sink",
            "lease_until",
            "lease_owner",
            "next_try_at",
            "state",
        ):
            batch.drop_column(column)
