"""crm import: index policies.previous_policy_number (renewed-policy detection)

Revision ID: 0002_crm_import
Revises: 0001_crm
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_crm_import"
down_revision: str | Sequence[str] | None = "0001_crm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_policies_previous_policy_number", ["previous_policy_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_index("ix_policies_previous_policy_number")
