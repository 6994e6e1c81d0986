"""grafana_reader: the read-only role Grafana connects as; slow_statements() for its Database dashboard

Revision ID: 0007
Revises: 0006

The role is created without a password: `python -m db upgrade` sets it from GRAFANA_DB_PASSWORD
(db/upgrade.py), so a changed password applies at the next upgrade, and no secret is in a
migration. Roles belong to the whole server; grants belong to this database.
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "grafana_reader"
# What the dashboards read. Explicit, not "every table": tables added later (secrets of
# integrations, for one) stay out of Grafana's reach unless granted here or by their migration.
# Partitions of a partitioned table are read through the parent's grant; raw readings through
# readings() / latest_readings() (0006, executable by everyone), which read telemetry and
# telemetry_cold with the caller's rights.
TABLES = (
    "sites", "assets", "metrics", "telemetry", "telemetry_hourly", "policies", "alerts", "work_orders",
    "policy_evaluations", "rule_runs", "counter_resets", "simulator_faults", "telemetry_arrivals", "telemetry_latest",
    "policy_overrides", "silences", "telemetry_cold",
)


def upgrade() -> None:
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 20;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by the upgrade of another database on the same server
        END $$""")
    # read-only twice over: SELECT grants only, and every transaction read-only by default
    op.execute(f"ALTER ROLE {ROLE} SET default_transaction_read_only = on")
    op.execute(f"ALTER ROLE {ROLE} SET statement_timeout = '30s'")
    op.execute(f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database()); END $$")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    tables = ", ".join(f"'{t}'" for t in TABLES)
    op.execute(f"""
        DO $$
        DECLARE t text;
        BEGIN
            FOREACH t IN ARRAY ARRAY[{tables}] LOOP
                IF to_regclass(t) IS NOT NULL THEN
                    EXECUTE format('GRANT SELECT ON %I TO {ROLE}', t);
                END IF;
            END LOOP;
        END $$""")
    # Sizes and statistics of the Database dashboard (pg_stat_statements of every user); a
    # managed server may refuse it: the dashboard then shows what the role may see.
    op.execute(f"""
        DO $$
        BEGIN
            GRANT pg_read_all_stats TO {ROLE};
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_read_all_stats not granted to {ROLE}: %', SQLERRM;
        END $$""")
    # pg_stat_statements where the server preloads it (docker-compose.yml does); elsewhere the
    # extension may be missing or unloaded, and slow_statements() says so in one row.
    op.execute("""
        DO $$
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pg_stat_statements not installed: %', SQLERRM;
        END $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION slow_statements(n integer DEFAULT 15)
        RETURNS TABLE (query text, calls bigint, mean_ms double precision, total_s double precision,
                       rows_per_call double precision)
        LANGUAGE plpgsql STABLE AS $fn$
        BEGIN
            RETURN QUERY EXECUTE
                'SELECT s.query, s.calls, s.mean_exec_time, s.total_exec_time / 1000, '
                '       s.rows::float8 / greatest(s.calls, 1) '
                'FROM pg_stat_statements s WHERE s.dbid = (SELECT oid FROM pg_database '
                '                                          WHERE datname = current_database()) '
                'ORDER BY s.mean_exec_time DESC LIMIT $1' USING n;
        EXCEPTION WHEN undefined_table OR undefined_column OR object_not_in_prerequisite_state
                       OR insufficient_privilege THEN
            RETURN QUERY SELECT 'pg_stat_statements non disponible : ' || SQLERRM, 0::bigint,
                                NULL::float8, NULL::float8, NULL::float8;
        END
        $fn$""")
    op.execute(f"GRANT EXECUTE ON FUNCTION slow_statements(integer) TO {ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS slow_statements(integer)")
    op.execute(f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                EXECUTE 'DROP OWNED BY {ROLE}';  -- its grants in this database
                BEGIN
                    DROP ROLE {ROLE};
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE '{ROLE} kept: other databases still grant it';
                END;
            END IF;
        END $$""")
