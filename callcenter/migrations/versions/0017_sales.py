"""sales after the renewal (node 7): who recorded and confirmed a sale, its audit, the points
rules as data, licence dates and membership card on customer and policy, and the reports'
rollup tables

Revision ID: 0017_sales
Revises: 0001_crm
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_sync.models

revision: str = "0017_sales"
down_revision: str | Sequence[str] | None = "0001_crm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_daily",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("grain", sa.String(length=12), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("lead_kind", sa.String(length=20), nullable=False),
        sa.Column("handed_out", sa.Integer(), nullable=False),
        sa.Column("called", sa.Integer(), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("talk_seconds", sa.Float(), nullable=False),
        sa.Column("renewals", sa.Integer(), nullable=False),
        sa.Column("premium", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("renewal_attempts", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        sa.Column("first_called", sa.Integer(), nullable=False),
        sa.Column("first_call_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_daily")),
    )
    with op.batch_alter_table("report_daily", schema=None) as batch_op:
        batch_op.create_index("ix_report_daily_grain_day", ["grain", "day"], unique=False)
        batch_op.create_index(
            "ix_report_daily_specialist_day", ["specialist_id", "day"], unique=False
        )

    op.create_table(
        "report_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("refreshed_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_report_days")),
    )
    op.create_table(
        "report_hourly",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("campaign_kind", sa.String(length=20), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("talk_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_hourly")),
    )
    with op.batch_alter_table("report_hourly", schema=None) as batch_op:
        batch_op.create_index("ix_report_hourly_day", ["day"], unique=False)

    op.create_table(
        "report_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("specialist_id", sa.Integer(), nullable=True),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("lead_kind", sa.String(length=20), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_results")),
    )
    with op.batch_alter_table("report_results", schema=None) as batch_op:
        batch_op.create_index("ix_report_results_day", ["day"], unique=False)

    op.create_table(
        "points_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("lead_kind", sa.String(length=20), nullable=False),
        sa.Column("bands", sa.JSON(), nullable=False),
        sa.Column("red_star_bonus", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "lead_kind IN ('renewal', 'lapsed', 'trial', 'callback')",
            name=op.f("ck_points_rules_lead_kind"),
        ),
        sa.CheckConstraint("red_star_bonus >= 0", name=op.f("ck_points_rules_red_star_bonus")),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["specialists.id"],
            name=op.f("fk_points_rules_created_by_specialists"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_rules")),
        sa.UniqueConstraint("lead_kind", "effective_from", name="uq_points_rules_kind_from"),
    )
    op.create_table(
        "sales_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("at", crm_sync.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"],
            ["specialists.id"],
            name=op.f("fk_sales_audit_by_id_specialists"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["sale_id"],
            ["sales_records.id"],
            name=op.f("fk_sales_audit_sale_id_sales_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_audit")),
    )
    with op.batch_alter_table("sales_audit", schema=None) as batch_op:
        batch_op.create_index("ix_sales_audit_sale", ["sale_id", "at"], unique=False)

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("membership_card", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("driving_licence_expiry", sa.Date(), nullable=True))

    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vehicle_licence_expiry", sa.Date(), nullable=True))
        batch_op.create_index("ix_policies_policyholder", ["policyholder_id"], unique=False)
    with op.batch_alter_table("phones", schema=None) as batch_op:
        batch_op.create_index(
            "ix_phones_inaccurate_at",
            ["accuracy_set_at"],
            unique=False,
            postgresql_where=sa.text("accuracy = 'inaccurate'"),
            sqlite_where=sa.text("accuracy = 'inaccurate'"),
        )

    with op.batch_alter_table("sales_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sold_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="recorded", nullable=False)
        )
        batch_op.add_column(
            sa.Column("red_star", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("recorded_by", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("recorded_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("confirmed_by", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("confirmed_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("rules_from", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("updated_at", crm_sync.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_sales_records_sold_on"), ["sold_on"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_sales_records_recorded_by_specialists"),
            "specialists",
            ["recorded_by"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_sales_records_confirmed_by_specialists"),
            "specialists",
            ["confirmed_by"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint(
            op.f("ck_sales_records_status"), "status IN ('recorded', 'confirmed')"
        )
    # Sales written before: their day is their UTC day (the desk's zone was not kept).
    day = "date(sold_at)" if op.get_bind().dialect.name == "sqlite" else "CAST(sold_at AS DATE)"
    op.execute(
        f"UPDATE sales_records SET sold_on = {day}, recorded_at = sold_at, updated_at = sold_at"
    )


def downgrade() -> None:
    with op.batch_alter_table("sales_records", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_sales_records_status"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_sales_records_confirmed_by_specialists"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_sales_records_recorded_by_specialists"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_sales_records_sold_on"))
        batch_op.drop_column("updated_at")
        batch_op.drop_column("rules_from")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("confirmed_by")
        batch_op.drop_column("recorded_at")
        batch_op.drop_column("recorded_by")
        batch_op.drop_column("attempts")
        batch_op.drop_column("red_star")
        batch_op.drop_column("status")
        batch_op.drop_column("sold_on")

    with op.batch_alter_table("phones", schema=None) as batch_op:
        batch_op.drop_index("ix_phones_inaccurate_at")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_index("ix_policies_policyholder")
        batch_op.drop_column("vehicle_licence_expiry")

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("driving_licence_expiry")
        batch_op.drop_column("membership_card")

    with op.batch_alter_table("sales_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_audit_sale")

    op.drop_table("sales_audit")
    op.drop_table("points_rules")
    with op.batch_alter_table("report_results", schema=None) as batch_op:
        batch_op.drop_index("ix_report_results_day")

    op.drop_table("report_results")
    with op.batch_alter_table("report_hourly", schema=None) as batch_op:
        batch_op.drop_index("ix_report_hourly_day")

    op.drop_table("report_hourly")
    op.drop_table("report_days")
    with op.batch_alter_table("report_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_report_daily_specialist_day")
        batch_op.drop_index("ix_report_daily_grain_day")

    op.drop_table("report_daily")
