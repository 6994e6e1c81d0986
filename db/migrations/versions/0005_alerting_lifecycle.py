"""alerting that misses nothing and knows when to stop (issue 10)

- telemetry_arrivals: what each insert statement on telemetry brought, per (asset, metric),
  written by a statement-level trigger (COPY included); the rule engine consumes it, so a run
  evaluates exactly the readings that arrived since the previous one (late ones included).
- telemetry_latest: the newest reading time per (asset, metric), kept by the rule engine from the
  arrivals, so "silent for 10 minutes" is a scan of a small table, not of telemetry.
- alerts: resolution of a closed alert, the event times of its episode (started_at, ended_at)
  and its peak value.
- work orders: status 'cancelled' (the order of a dismissed alert).
- policies: clear condition (hysteresis), pending period, no_data / flat_line rule types that
  apply to any asset type or several metrics, English title and description.
- policy_evaluations: the event time of the last evaluated reading and the start of the current
  firing streak (pending periods span runs).
- silences (maintenance windows) and per-asset policy overrides; rule_runs counts what was
  silenced and which policies failed.

Revision ID: 0005
Revises: 0004
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "telemetry_arrivals",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("metric_id", sa.SmallInteger(), nullable=False),
        sa.Column("min_ts", TZ, nullable=False),
        sa.Column("max_ts", TZ, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("arrived_at", TZ, nullable=False, server_default=sa.text("now()")),
    )
    # One row per (asset, metric) per statement: a COPY of 20,000 readings of one gateway adds a
    # handful of rows. Only rows really inserted are in new_rows (ON CONFLICT DO NOTHING skips
    # re-sent readings), so a re-send is not evaluated twice.
    op.execute(
        """
        CREATE FUNCTION telemetry_record_arrivals() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO telemetry_arrivals (asset_id, metric_id, min_ts, max_ts, n)
            SELECT asset_id, metric_id, min(ts), max(ts), count(*) FROM new_rows GROUP BY asset_id, metric_id;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER telemetry_arrivals AFTER INSERT ON telemetry REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION telemetry_record_arrivals()"
    )

    op.create_table(
        "telemetry_latest",
        sa.Column("asset_id", sa.Integer(), primary_key=True),
        sa.Column("metric_id", sa.SmallInteger(), primary_key=True),
        sa.Column("last_ts", TZ, nullable=False),
    )
    op.execute(
        "INSERT INTO telemetry_latest (asset_id, metric_id, last_ts) "
        "SELECT a.id, m.id, x.ts FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types) "
        "CROSS JOIN LATERAL (SELECT t.ts FROM telemetry t WHERE t.asset_id = a.id AND t.metric_id = m.id "
        "                    ORDER BY t.ts DESC LIMIT 1) x"
    )

    op.add_column("alerts", sa.Column("resolution", sa.String(24)))
    op.add_column("alerts", sa.Column("started_at", TZ))
    op.add_column("alerts", sa.Column("ended_at", TZ))
    op.add_column("alerts", sa.Column("peak", sa.Float()))
    op.execute(
        "UPDATE alerts a SET resolution = CASE WHEN EXISTS (SELECT 1 FROM work_orders w WHERE w.alert_id = a.id "
        "AND w.status = 'done') THEN 'work_order_done' ELSE 'dismissed' END WHERE status = 'closed'"
    )
    op.execute("UPDATE alerts SET started_at = created_at, peak = observed_value, ended_at = closed_at")
    op.alter_column("alerts", "started_at", nullable=False)
    op.create_check_constraint(
        "alerts_resolution_check", "alerts",
        "resolution IN ('work_order_done', 'condition_cleared', 'dismissed') AND status = 'closed' "
        "OR resolution IS NULL AND status <> 'closed'",
    )
    op.create_index("ix_alerts_asset_policy_started", "alerts", ["asset_id", "policy_id", "started_at"])

    op.drop_constraint("work_orders_status_check", "work_orders")
    op.create_check_constraint(
        "work_orders_status_check", "work_orders", "status IN ('open', 'in_progress', 'done', 'cancelled')"
    )

    op.alter_column("policies", "asset_type", nullable=True)
    op.alter_column("policies", "metric_id", nullable=True)
    op.add_column("policies", sa.Column("metric_ids", ARRAY(sa.SmallInteger())))
    op.add_column("policies", sa.Column("clear_condition", sa.String(2)))
    op.add_column("policies", sa.Column("clear_threshold", sa.Float()))
    op.add_column("policies", sa.Column("for_minutes", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("policies", sa.Column("min_points", sa.Integer()))
    op.add_column("policies", sa.Column("title_en", sa.String(200), nullable=False, server_default=""))
    op.add_column("policies", sa.Column("description_en", sa.Text(), nullable=False, server_default=""))
    op.drop_constraint("policies_rule_type_check", "policies")
    op.create_check_constraint(
        "policies_rule_type_check", "policies",
        "rule_type IN ('threshold', 'consecutive', 'runtime', 'rate_of_change', 'no_data', 'flat_line')",
    )
    op.create_check_constraint(
        "policies_clear_condition_check", "policies",
        "clear_condition IS NULL OR clear_condition IN ('>', '<', '>=', '<=')",
    )
    op.create_check_constraint(
        "policies_metric_check", "policies",
        "metric_id IS NOT NULL OR rule_type IN ('no_data', 'flat_line')",
    )

    op.add_column("policy_evaluations", sa.Column("last_ts", TZ))
    op.add_column("policy_evaluations", sa.Column("firing_since", TZ))

    op.add_column("rule_runs", sa.Column("readings", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("rule_runs", sa.Column("cleared", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("rule_runs", sa.Column("silenced", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("rule_runs", sa.Column("failed", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("rule_runs", sa.Column("errors", JSONB()))

    op.create_table(
        "silences",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("site_id", sa.Integer(), sa.ForeignKey("sites.id")),
        sa.Column("asset_id", sa.Integer(), sa.ForeignKey("assets.id")),
        sa.Column("policy_id", sa.Integer(), sa.ForeignKey("policies.id")),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("ended_by", sa.String(100)),
        sa.CheckConstraint("site_id IS NOT NULL OR asset_id IS NOT NULL OR policy_id IS NOT NULL",
                           name="silences_scope_check"),
        sa.CheckConstraint("ends_at > starts_at", name="silences_period_check"),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])

    op.create_table(
        "policy_overrides",
        sa.Column("asset_id", sa.Integer(), sa.ForeignKey("assets.id"), primary_key=True),
        sa.Column("policy_id", sa.Integer(), sa.ForeignKey("policies.id"), primary_key=True),
        sa.Column("threshold", sa.Float()),
        sa.Column("clear_threshold", sa.Float()),
        sa.Column("enabled", sa.Boolean()),
        sa.Column("source", sa.String(8), nullable=False, server_default="api"),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint("source IN ('api', 'file')", name="policy_overrides_source_check"),
    )

    op.drop_constraint("audit_entity_check", "audit_trail")
    op.create_check_constraint(
        "audit_entity_check", "audit_trail", "entity IN ('alert', 'work_order', 'counter', 'silence', 'policy')"
    )


def downgrade() -> None:
    op.drop_constraint("audit_entity_check", "audit_trail")
    op.create_check_constraint("audit_entity_check", "audit_trail", "entity IN ('alert', 'work_order', 'counter')")
    op.drop_table("policy_overrides")
    op.drop_table("silences")
    for c in ("errors", "failed", "silenced", "cleared", "readings"):
        op.drop_column("rule_runs", c)
    for c in ("firing_since", "last_ts"):
        op.drop_column("policy_evaluations", c)
    op.drop_constraint("policies_metric_check", "policies")
    op.drop_constraint("policies_clear_condition_check", "policies")
    op.drop_constraint("policies_rule_type_check", "policies")
    op.create_check_constraint(
        "policies_rule_type_check", "policies", "rule_type IN ('threshold', 'consecutive', 'runtime', 'rate_of_change')"
    )
    for c in ("description_en", "title_en", "min_points", "for_minutes", "clear_threshold", "clear_condition", "metric_ids"):
        op.drop_column("policies", c)
    op.drop_constraint("work_orders_status_check", "work_orders")
    op.execute("UPDATE work_orders SET status = 'done' WHERE status = 'cancelled'")
    op.create_check_constraint("work_orders_status_check", "work_orders", "status IN ('open', 'in_progress', 'done')")
    op.drop_index("ix_alerts_asset_policy_started", "alerts")
    op.drop_constraint("alerts_resolution_check", "alerts")
    for c in ("peak", "ended_at", "started_at", "resolution"):
        op.drop_column("alerts", c)
    op.drop_table("telemetry_latest")
    op.execute("DROP TRIGGER telemetry_arrivals ON telemetry")
    op.execute("DROP FUNCTION telemetry_record_arrivals()")
    op.drop_table("telemetry_arrivals")
