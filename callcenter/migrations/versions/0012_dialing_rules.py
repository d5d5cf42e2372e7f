"""dialing rules: calls per number per day

Revision ID: 0012_dialing_rules
Revises: 0004_dialer

Every claim counts the calls a number got today, across every campaign, against the daily cap
per number (`DialerConfig.daily_calls_per_number`, `dialer.queues`). That count reads the
attempts of one number since the start of the day: an index on (number, created_at), so the
claim stays a look-up however many attempts the table holds.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_dialing_rules"
down_revision: str | Sequence[str] | None = "0004_dialer"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_call_attempts_number_created", "call_attempts", ["number", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_call_attempts_number_created", table_name="call_attempts")
