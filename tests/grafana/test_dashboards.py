"""Every panel of the provisioned dashboards runs: its SQL, with Grafana's macros and variables
expanded as Grafana does (tests/grafana/grafana_sql.py), runs as the read-only role
grafana_reader against a database with 30 days of history, alerts and work orders, and returns
rows Grafana can draw. The Prometheus dashboard queries only metrics the services export."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text

from tests.conftest import PROJECT
from tests.grafana.grafana_sql import Variable, grafana_sql, panel_interval, parse_interval
from tests.grafana.test_reader_role import reader_dsn

DASHBOARDS = PROJECT / "grafana" / "provisioning" / "dashboards"
SQL_DASHBOARDS = ["sites.json", "asset.json", "alerts.json", "arrival.json", "database.json"]
SILENT = "CAS-S2-ELEVATOR_1"  # no reading for the last 2 hours


def load(name: str) -> dict:
    return json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))


@pytest.fixture
def history(database_url, pg):
    """30 days of every metric of every seeded asset every 10 minutes, the last 6 hours every
    10 s, one asset silent for 2 hours, the hourly roll-up, alerts in every state, work orders."""
    from db.session import session_scope
    from engine.maintenance import ensure_day_partitions
    from engine.rollup import roll_up

    now = datetime.now(UTC).replace(microsecond=0)
    now -= timedelta(seconds=now.second % 10)
    with session_scope() as session:  # the day partitions the maintenance job would have made
        ensure_day_partitions(session, start=now - timedelta(days=31), end=now)
    insert = """
        INSERT INTO telemetry (asset_id, metric_id, ts, value)
        SELECT a.id, m.id, g.ts,
               CASE WHEN m.kind = 'counter' THEN extract(epoch FROM g.ts - %(start)s) / 3600.0
                    ELSE 20 + 3 * sin(extract(epoch FROM g.ts) / 3600.0 + a.id) END
        FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types)
        CROSS JOIN LATERAL generate_series(%(start)s::timestamptz, %(end)s::timestamptz, %(step)s::interval) g(ts)
        WHERE NOT (a.code = %(silent)s AND g.ts > %(end)s::timestamptz - interval '2 hours')
        ON CONFLICT DO NOTHING"""
    pg.execute(insert, {"start": now - timedelta(days=30), "end": now, "step": "10 minutes", "silent": SILENT})
    pg.execute(insert, {"start": now - timedelta(hours=6), "end": now, "step": "10 seconds", "silent": SILENT})
    with session_scope() as session:
        roll_up(session, now=now, since=now - timedelta(days=31))
    pg.execute("""
        INSERT INTO alerts (asset_id, policy_id, created_at, started_at, severity, status, message, observed_value,
                            acked_by, acked_at, closed_by, closed_at, resolution)
        SELECT a.id, p.id, now() - x.age::interval, now() - x.age::interval, p.severity, x.status,
               p.title || ' (test)', 21.5,
               CASE WHEN x.status <> 'open' THEN 'tech' END,
               CASE WHEN x.status <> 'open' THEN now() - x.age::interval + interval '10 minutes' END,
               CASE WHEN x.status = 'closed' THEN 'tech' END,
               CASE WHEN x.status = 'closed' THEN now() - x.age::interval + interval '2 hours' END,
               CASE WHEN x.status = 'closed' THEN x.resolution END
        FROM (VALUES ('CAS-S1-HVAC_1', 'R1', 'open', '2 hours', NULL),
                     ('CAS-S2-HVAC_1', 'R2', 'open', '30 minutes', NULL),
                     ('CAS-S1-CHILLER_1', 'R3', 'ack', '1 day', NULL),
                     ('CAS-S2-CHILLER_1', 'R4', 'closed', '3 days', 'work_order_done'),
                     ('CAS-S1-ELEVATOR_1', 'R5', 'closed', '5 days', 'dismissed'))
             AS x(asset, policy, status, age, resolution)
        JOIN assets a ON a.code = x.asset JOIN policies p ON p.code = x.policy""")
    pg.execute("""
        INSERT INTO work_orders (alert_id, asset_id, title, created_at, updated_at, closed_at, status, priority,
                                 assigned_to, notes)
        SELECT al.id, al.asset_id, p.title, al.created_at, al.created_at + interval '1 hour',
               CASE WHEN x.status = 'done' THEN al.created_at + interval '2 hours' END, x.status, 2, 'Karim', ''
        FROM (VALUES ('R1', 'open'), ('R3', 'in_progress'), ('R4', 'done')) AS x(policy, status)
        JOIN policies p ON p.code = x.policy JOIN alerts al ON al.policy_id = p.id""")
    return now


@pytest.fixture
def reader(database_url):
    with psycopg.connect(reader_dsn(database_url), autocommit=True) as conn:
        yield conn


class Runner:
    """Runs a dashboard's queries as Grafana would, as grafana_reader."""

    def __init__(self, board: dict, conn: psycopg.Connection, now: datetime):
        self.board, self.conn = board, conn
        self.now = datetime.now(UTC)  # as the browser asks: "now" at query time
        self.variables = {v["name"]: Variable(v["name"], bool(v.get("multi")), bool(v.get("includeAll")))
                          for v in board["templating"]["list"]}
        self.definitions = {v["name"]: v for v in board["templating"]["list"]}

    def range(self, time_from: str | None = None) -> tuple[datetime, datetime]:
        spec = time_from or self.board["time"]["from"]
        return self.now - parse_interval(spec.removeprefix("now-")), self.now

    def sql(self, raw: str, values: dict, start: datetime, end: datetime, *, width: int = 24,
            min_interval: str = "10s") -> str:
        interval = panel_interval(start, end, width=width, min_interval=min_interval)
        return grafana_sql(raw, variables=self.variables, values=values, start=start, end=end, interval=interval)

    def run(self, statement: str) -> tuple[list[str], list[tuple]]:
        cur = self.conn.execute(statement)
        return [d.name for d in cur.description], cur.fetchall()

    def options(self, name: str, values: dict) -> list[str]:
        """A variable's choices: its query's rows, or its custom values ("shown : value" pairs)."""
        var = self.definitions[name]
        if var["type"] == "custom":
            return [item.split(" : ")[-1].strip() for item in var["query"].split(",")]
        start, end = self.range()
        _, rows = self.run(self.sql(var["query"], values, start, end))
        return [r[0] for r in rows]


def check_frame(panel: dict, target: dict, columns: list[str], rows: list[tuple]) -> list[str]:
    """What Grafana requires of the rows to draw them; returns the problems found."""
    where = f"{panel['title']!r} {target['refId']}"
    problems = []
    if not rows:
        return [f"{where}: no rows"]
    if target["format"] == "time_series":
        if "time" not in columns:
            return [f"{where}: time series without a 'time' column ({columns})"]
        ti = columns.index("time")
        times = [r[ti] for r in rows]
        if times != sorted(times):
            problems.append(f"{where}: rows not sorted by time")
        for i, name in enumerate(columns):
            if i == ti or name == "metric":
                continue
            bad = {type(r[i]).__name__ for r in rows if r[i] is not None and not isinstance(r[i], (int, float, Decimal))}
            if bad:
                problems.append(f"{where}: value column {name!r} is not numeric ({bad})")
    return problems


def sql_targets(board: dict):
    for panel in board["panels"]:
        for target in panel["targets"]:
            if "rawSql" in target:
                yield panel, target


def run_board(runner: Runner, values: dict, time_from: str | None = None, *, skip=()) -> list[str]:
    start, end = runner.range(time_from)
    problems = []
    for panel, target in sql_targets(runner.board):
        if (panel["title"], target["refId"]) in skip:
            continue
        statement = runner.sql(target["rawSql"], values, start, end, width=panel["gridPos"]["w"],
                               min_interval=panel.get("interval", "10s"))
        try:
            columns, rows = runner.run(statement)
        except psycopg.Error as exc:
            problems.append(f"{panel['title']!r} {target['refId']}: {type(exc).__name__}: {exc}\n  {statement}")
            continue
        problems += check_frame(panel, target, columns, rows)
    return problems


def all_values(runner: Runner, values: dict | None = None) -> dict:
    """Every variable on "All" (or its first choice when it has no "All"), in dashboard order."""
    values = dict(values or {})
    for name, var in runner.variables.items():
        if name in values:
            continue
        options = runner.options(name, values)
        assert options, f"variable {name!r} has no choices"
        values[name] = options if var.include_all else options[0]
    return values


def test_the_sites_overview_runs(history, reader):
    runner = Runner(load("sites.json"), reader, history)
    assert run_board(runner, {}) == []
    _, rows = runner.run(runner.sql(next(t["rawSql"] for p, t in sql_targets(runner.board)
                                         if p["title"] == "État par site"), {}, *runner.range()))
    states = {r[0]: r[3] for r in rows}
    assert states == {"CAS-S1": "alerte", "CAS-S2": "alerte"}  # R1 medium on S1, R2 high on S2


@pytest.mark.parametrize("time_from", ["now-6h", "now-30d"], ids=["raw readings", "hourly roll-up"])
def test_the_asset_dashboard_runs_for_every_metric(history, reader, time_from):
    runner = Runner(load("asset.json"), reader, history)
    values = {"site": "CAS-S1", "asset": "CAS-S1-HVAC_1"}
    assert "CAS-S1-HVAC_1" in runner.options("asset", values)
    metrics = runner.options("metric", values)
    assert set(metrics) == {"temp_out_air", "temp_supply_air", "power_kw", "vibration_level", "run_hours"}
    # the curve panel is repeated per metric: each copy gets one value of the multi-value variable
    assert run_board(runner, {**values, "metric": "temp_supply_air"}, time_from) == []
    for metric in metrics:
        assert run_board(runner, {**values, "metric": metric}, time_from, skip={("$metric", "B")}) == [], metric


def test_the_asset_curves_carry_the_policy_thresholds(history, reader):
    runner = Runner(load("asset.json"), reader, history)
    panel = next(p for p in runner.board["panels"] if p["title"] == "$metric")
    lines = next(t["rawSql"] for t in panel["targets"] if t["refId"] == "B")
    _, rows = runner.run(runner.sql(lines, {"site": "CAS-S1", "asset": "CAS-S1-HVAC_1", "metric": "vibration_level"},
                                    *runner.range()))
    assert {(r[1], r[2]) for r in rows} == {("R2 : > 7", 7.0)}


def test_the_asset_curve_reads_the_hourly_roll_up_beyond_two_days_and_the_hour_not_rolled_up(history, reader, pg):
    runner = Runner(load("asset.json"), reader, history)
    panel = next(p for p in runner.board["panels"] if p["title"] == "$metric")
    curve = next(t["rawSql"] for t in panel["targets"] if t["refId"] == "A")
    values = {"site": "CAS-S1", "asset": "CAS-S1-HVAC_1", "metric": "temp_supply_air"}
    last_rolled = pg.execute("SELECT max(hour) FROM telemetry_hourly").fetchone()[0]
    # beyond 2 days, the roll-up answers for the hours it has: change the raw readings there
    # and the curve does not move; the readings after its last hour come from telemetry
    pg.execute("UPDATE telemetry SET value = -50 WHERE ts < %s", (last_rolled + timedelta(hours=1),))
    pg.execute("UPDATE telemetry SET value = 1000 WHERE ts >= %s", (last_rolled + timedelta(hours=1),))
    _, rows = runner.run(runner.sql(curve, values, *runner.range("now-30d")))
    assert len(rows) > 100 and all(15 < r[2] < 25 for r in rows if r[0] < last_rolled.timestamp())
    assert rows[-1][0] >= (last_rolled + timedelta(hours=1)).timestamp() and rows[-1][2] == 1000
    # within 2 days, the raw readings
    _, rows = runner.run(runner.sql(curve, values, *runner.range("now-6h")))
    assert rows and {r[2] for r in rows if r[0] < last_rolled.timestamp()} == {-50}


def test_the_asset_curve_and_latest_values_read_the_cold_tier_too(history, reader, pg):
    """A compacted day (issue 12's cold tier) draws the same curve as when it was hot."""
    from db.session import session_scope
    from engine.maintenance import compact_day, day_start

    runner = Runner(load("asset.json"), reader, history)
    panel = next(p for p in runner.board["panels"] if p["title"] == "$metric")
    curve = next(t["rawSql"] for t in panel["targets"] if t["refId"] == "A")
    last = next(t["rawSql"] for p, t in sql_targets(runner.board) if p["title"] == "Dernières valeurs")
    values = {"site": "CAS-S2", "asset": SILENT, "metric": "motor_temp"}
    start, end = runner.range("now-2d")
    before = runner.run(runner.sql(curve, values, start, end))[1]
    latest_before = runner.run(runner.sql(last, values, start, end))[1]
    yesterday = day_start(history) - timedelta(days=1)
    with session_scope() as session:
        assert compact_day(session, day=yesterday) > 0
    hot = pg.execute("SELECT count(*) FROM telemetry WHERE ts >= %s AND ts < %s",
                     (yesterday, yesterday + timedelta(days=1))).fetchone()[0]
    assert hot == 0  # yesterday is only in telemetry_cold now
    after = runner.run(runner.sql(curve, values, start, end))[1]
    assert len(after) == len(before) and all(
        a[0] == b[0] and a[1] == b[1] and abs(a[2] - b[2]) < 1e-9 for a, b in zip(after, before))
    assert runner.run(runner.sql(last, values, start, end))[1] == latest_before


def test_the_alerts_dashboard_runs_and_filters(history, reader):
    runner = Runner(load("alerts.json"), reader, history)
    assert run_board(runner, all_values(runner)) == []
    alerts = next(t["rawSql"] for p, t in sql_targets(runner.board) if p["title"] == "Alertes")
    narrowed = all_values(runner, {"site": ["CAS-S1"], "severity": ["medium"], "status": ["open"]})
    _, rows = runner.run(runner.sql(alerts, narrowed, *runner.range()))
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [("CAS-S1", "CAS-S1-HVAC_1", "medium", "open")]
    closed = all_values(runner, {"status": ["closed"]})
    _, rows = runner.run(runner.sql(alerts, closed, *runner.range("now-1d")))
    assert rows == []  # closed alerts older than the range are not shown


def test_the_data_arrival_dashboard_runs_and_finds_the_silent_asset(history, reader):
    runner = Runner(load("arrival.json"), reader, history)
    assert run_board(runner, {}) == []
    silent = next(t["rawSql"] for p, t in sql_targets(runner.board) if p["title"] == "Équipements muets")
    assert runner.run(runner.sql(silent, {}, *runner.range()))[1] == [(1,)]
    last = next(t["rawSql"] for p, t in sql_targets(runner.board) if p["title"] == "Dernier relevé par équipement")
    columns, rows = runner.run(runner.sql(last, {}, *runner.range()))
    assert rows[0][1] == SILENT and rows[0][columns.index("État")] == "muet"
    per_minute = next(t["rawSql"] for p, t in sql_targets(runner.board) if p["title"].startswith("Relevés par minute"))
    _, rows = runner.run(runner.sql(per_minute, {}, *runner.range("now-1h"), min_interval="1m"))
    # CAS-S1: 3 assets, a reading every 10 s = 18 per minute (the buckets at the range's edges are partial)
    assert 18 in {round(float(r[2])) for r in rows if r[1] == "CAS-S1"}


def test_the_database_dashboard_runs(history, reader):
    runner = Runner(load("database.json"), reader, history)
    assert run_board(runner, {}) == []
    sizes = next(t["rawSql"] for p, t in sql_targets(runner.board) if p["title"] == "Taille des tables")
    _, rows = runner.run(runner.sql(sizes, {}, *runner.range()))
    by_table = {r[0]: r[1] for r in rows}
    assert by_table["telemetry"] > 1_000_000  # bytes: the reader sees the sizes


def test_every_variable_query_runs_as_the_reader(history, reader):
    for name in SQL_DASHBOARDS:
        runner = Runner(load(name), reader, history)
        values = {"site": "CAS-S1"}
        for var in runner.board["templating"]["list"]:
            options = runner.options(var["name"], values)
            assert options, (name, var["name"])
            values.setdefault(var["name"], options[0] if not var.get("includeAll") else options)


# --- Prometheus: every metric the "Plateforme" dashboard queries is exported ----------------------

PROMQL_FUNCTIONS = {"sum", "rate", "histogram_quantile", "max", "by", "time", "le", "route", "reason"}


def promql_metrics(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels))
    return {n for n in names if n.startswith("m40_")}


def exported_samples(text_: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    return {s.name for fam in text_string_to_metric_families(text_) for s in fam.samples}


def test_every_metric_of_the_platform_dashboard_is_exported(live_api, api, tmp_path):
    """The API's /metrics (after some traffic) and the MQTT bridge's registry."""
    from ingest.mqtt import BridgeMetrics
    from prometheus_client import generate_latest

    api.post("/telemetry", json={"site_code": "CAS-S1", "asset_code": "CAS-S1-HVAC_1",
                                 "timestamp": "2026-01-05T08:00:00Z", "metrics": {"power_kw": 1.0}})
    api.post("/telemetry", json={"site_code": "NOPE", "asset_code": "X", "timestamp": "2026-01-05T08:00:00Z",
                                 "metrics": {"power_kw": 1.0}})
    api.post("/rules/evaluate")
    import httpx

    exported = exported_samples(httpx.get(live_api.url + "/metrics").text)
    bridge = BridgeMetrics()
    bridge.rejected.labels("InvalidInput").inc()
    exported |= exported_samples(generate_latest(bridge.registry).decode())
    board = load("platform.json")
    queried = set()
    for panel in board["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "m40-prometheus"
            queried |= promql_metrics(target["expr"])
    assert queried >= {"m40_http_request_duration_seconds_count", "m40_http_request_duration_seconds_bucket",
                       "m40_ingest_points_total", "m40_ingest_rejected_requests_total",
                       "m40_rules_last_evaluation_seconds", "m40_mqtt_points_total"}
    assert queried - exported == set()
