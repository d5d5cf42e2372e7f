"""pooled campaigns and predictive pacing

Revision ID: 0018_pooled_pacing
Revises: 0012_dialing_rules

A campaign can be pooled (its answered calls go to any free specialist of its pool) and paced
predictively, under a supervisor's caps: calls in flight per available specialist and the
target abandon rate, and the hard abandon cap (never above the legal maximum, a setting).
`pool_members`: who works a pooled campaign, and when (`after_own_queue`: only once their own
queue has nothing to call in the window; `always`). `pool_abandon_days`: live answers and
abandons per campaign and calling day, the rolling 30-day abandon rate's record.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_pooled_pacing"
down_revision: str | Sequence[str] | None = "0012_dialing_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as b:
        b.add_column(sa.Column("pooled", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(
            sa.Column("pacing", sa.String(length=20), nullable=False, server_default="progressive")
        )
        b.add_column(
            sa.Column("pacing_ratio_cap", sa.Float(), nullable=False, server_default="3.0")
        )
        b.add_column(sa.Column("target_abandon", sa.Float(), nullable=False, server_default="0.02"))
        b.add_column(sa.Column("abandon_cap", sa.Float(), nullable=False, server_default="0.03"))
        b.create_check_constraint(
            op.f("ck_campaigns_pacing"), "pacing IN ('progressive', 'predictive')"
        )
        b.create_check_constraint(op.f("ck_campaigns_pacing_ratio_cap"), "pacing_ratio_cap >= 1")
        b.create_check_constraint(
            op.f("ck_campaigns_abandon_rates"),
            "target_abandon >= 0 AND target_abandon <= abandon_cap AND abandon_cap < 1",
        )
    op.create_table(
        "pool_members",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("share", sa.String(length=20), nullable=False, server_default="after_own_queue"),
        sa.CheckConstraint(
            "share IN ('after_own_queue', 'always')", name=op.f("ck_pool_members_share")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_pool_members_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specialist_id"],
            ["specialists.id"],
            name=op.f("fk_pool_members_specialist_id_specialists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "specialist_id", name=op.f("pk_pool_members")),
    )
    op.create_table(
        "pool_abandon_days",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("abandoned", sa.Integer(), nullable=False, server_default="0"),
        sa.CheckConstraint(
            "abandoned >= 0 AND abandoned <= answered", name=op.f("ck_pool_abandon_days_counts")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_pool_abandon_days_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "day", name=op.f("pk_pool_abandon_days")),
    )


def downgrade() -> None:
    op.drop_table("pool_abandon_days")
    op.drop_table("pool_members")
    with op.batch_alter_table("campaigns") as b:
        for name in ("abandon_rates", "pacing_ratio_cap", "pacing"):
            b.drop_constraint(op.f(f"ck_campaigns_{name}"), type_="check")
        for col in ("abandon_cap", "target_abandon", "pacing_ratio_cap", "pacing", "pooled"):
            b.drop_column(col)
