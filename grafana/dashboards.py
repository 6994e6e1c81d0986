"""`python -m grafana.dashboards`: write the provisioned Grafana dashboards
(grafana/provisioning/dashboards/*.json) from this file, with grafana-foundation-sdk's builders.

Edit the dashboards here, run the command, commit both: tests/grafana/test_dashboards.py fails
when the JSON files differ from what this file generates, runs every panel's SQL as Grafana would
(macros and variables expanded) against PostgreSQL as the read-only role, and checks every
Prometheus metric the "Plateforme" dashboard queries is exported.

SQL conventions (Grafana's PostgreSQL data source): single-value variables are inserted bare, so
they are written in quotes ('$asset'); multi-value or "all" variables arrive quoted and
comma-separated, so they are written in IN ($site). Time series queries return a "time" column,
sorted, an optional "metric" column naming the series, and numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard as dash, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder, variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm, dashboard as model
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent / "provisioning" / "dashboards"
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid="m40-postgres")
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="m40-prometheus")
TAGS = ["maintenance40"]


# --- a SQL query target (the SDK has no PostgreSQL query type: this is Grafana's JSON for one) ---

class SqlQuery(cogvariants.Dataquery):
    def __init__(self, ref_id: str, raw_sql: str, fmt: str):
        self.ref_id, self.raw_sql, self.fmt = ref_id, raw_sql, fmt

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": POSTGRES.to_json(), "editorMode": "code", "format": self.fmt,
                "rawQuery": True, "rawSql": self.raw_sql}


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw SQL target; fmt "time_series" or "table"."""

    def __init__(self, raw_sql: str, *, fmt: str = "time_series", ref_id: str = "A"):
        self._query = SqlQuery(ref_id, " ".join(raw_sql.split()), fmt)

    def build(self) -> SqlQuery:
        return self._query


def prom(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(PROMETHEUS.to_json())


def pos(x: int, y: int, w: int, h: int) -> model.GridPos:
    return model.GridPos(h=h, w=w, x=x, y=y)


def sql_variable(name: str, label: str, query: str, *, multi: bool = False) -> dash.QueryVariable:
    v = (dash.QueryVariable(name).label(label).datasource(POSTGRES).query(" ".join(query.split()))
         .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD).sort(model.VariableSort.ALPHABETICAL_ASC))
    if multi:
        v = v.multi(True).include_all(True).current(model.VariableOption(text=["All"], value=["$__all"]))
    return v


def custom_variable(name: str, label: str, values: str) -> dash.CustomVariable:
    """Multi-value with "all" selected; values "shown : value" pairs, comma-separated."""
    return (dash.CustomVariable(name).label(label).values(values).multi(True).include_all(True)
            .current(model.VariableOption(text=["All"], value=["$__all"])))


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps])


def base(uid: str, title: str, description: str, *, time_from: str = "now-6h", refresh: str = "1m") -> dash.Dashboard:
    return (dash.Dashboard(title).uid(uid).description(description).tags(TAGS).timezone("browser")
            .time(time_from, "now").refresh(refresh).tooltip(model.DashboardCursorSync.CROSSHAIR)
            .link(dash.DashboardLink("Tableaux de bord").type(model.DashboardLinkType.DASHBOARDS).tags(TAGS)
                  .as_dropdown(True).include_vars(False).keep_time(True)))


# --- shared SQL pieces ---------------------------------------------------------------------------

# Raw readings are read through the functions of migration 0006, which see both tiers (the hot
# partitions of `telemetry` and the compacted days of `telemetry_cold`): readings(asset, metric,
# from, to) and latest_readings(asset, metric, at, n).

# the newest reading of each asset: one probe per (asset, metric)
LAST_READING = """
    (SELECT max(x.ts) FROM metrics m CROSS JOIN LATERAL latest_readings(a.id, m.id, now(), 1) x
     WHERE a.type = ANY(m.asset_types))"""


# --- 1. Sites overview ---------------------------------------------------------------------------

def sites_overview() -> dash.Dashboard:
    live = (stat.Panel().title("Alertes en cours par gravité").datasource(POSTGRES).grid_pos(pos(0, 0, 12, 5))
            .with_target(Sql("""
                SELECT count(*) FILTER (WHERE severity = 'high') AS "Haute",
                       count(*) FILTER (WHERE severity = 'medium') AS "Moyenne",
                       count(*) FILTER (WHERE severity = 'low') AS "Basse"
                FROM alerts WHERE status IN ('open', 'ack')""", fmt="table"))
            .thresholds(thresholds((None, "green"), (1, "orange")))
            .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
            .graph_mode(cm.BigValueGraphMode.NONE))
    assets = (stat.Panel().title("Équipements").datasource(POSTGRES).grid_pos(pos(12, 0, 12, 5))
              .with_target(Sql(f"""
                  SELECT count(*) AS "Équipements",
                         count(*) FILTER (WHERE last IS NULL OR last < now() - 3 * cadence) AS "Sans données"
                  FROM (SELECT a.id, {LAST_READING} AS last,
                               make_interval(secs => a.expected_cadence_s) AS cadence FROM assets a) x""", fmt="table"))
              .graph_mode(cm.BigValueGraphMode.NONE))
    per_site = (table.Panel().title("État par site").datasource(POSTGRES).grid_pos(pos(0, 5, 24, 9))
                .description("Sites à risque en premier : alertes hautes, moyennes, basses, puis équipements muets "
                             "(aucun relevé depuis plus de 3 fois leur cadence).")
                .with_target(Sql(f"""
                    WITH a AS (
                        SELECT a.id, a.site_id, {LAST_READING} AS last, make_interval(secs => a.expected_cadence_s) AS cadence
                        FROM assets a),
                    al AS (SELECT asset_id, severity FROM alerts WHERE status IN ('open', 'ack'))
                    SELECT s.code AS "Site", s.name AS "Nom", s.city AS "Ville",
                           CASE WHEN count(al.*) FILTER (WHERE al.severity IN ('high', 'medium')) > 0 THEN 'alerte'
                                WHEN count(al.*) > 0 THEN 'surveillance'
                                WHEN count(*) FILTER (WHERE a.last IS NULL OR a.last < now() - 3 * a.cadence) > 0
                                     THEN 'sans données'
                                ELSE 'ok' END AS "État",
                           count(DISTINCT a.id) AS "Équipements",
                           count(al.*) FILTER (WHERE al.severity = 'high') AS "Alertes hautes",
                           count(al.*) FILTER (WHERE al.severity = 'medium') AS "Alertes moyennes",
                           count(al.*) FILTER (WHERE al.severity = 'low') AS "Alertes basses",
                           count(DISTINCT a.id) FILTER (WHERE a.last IS NULL OR a.last < now() - 3 * a.cadence)
                               AS "Équipements muets",
                           max(a.last) AS "Dernier relevé"
                    FROM sites s JOIN a ON a.site_id = s.id LEFT JOIN al ON al.asset_id = a.id
                    GROUP BY s.id
                    ORDER BY 6 DESC, 7 DESC, 8 DESC, 9 DESC, 1""", fmt="table"))
                .mappings([model.ValueMap(options={
                    "alerte": model.ValueMappingResult(color="red", index=0, text="alerte"),
                    "surveillance": model.ValueMappingResult(color="orange", index=1, text="surveillance"),
                    "sans données": model.ValueMappingResult(color="purple", index=2, text="sans données"),
                    "ok": model.ValueMappingResult(color="green", index=3, text="ok")})]))
    created = (timeseries.Panel().title("Alertes créées par gravité").datasource(POSTGRES).grid_pos(pos(0, 14, 24, 8))
               .interval("1h").draw_style(cm.GraphDrawStyle.BARS).stacking(
                   common.StackingConfig().mode(cm.StackingMode.NORMAL))
               .with_target(Sql("""
                   SELECT $__timeGroupAlias(created_at, $__interval), severity AS metric, count(*) AS value
                   FROM alerts WHERE $__timeFilter(created_at)
                   GROUP BY 1, 2 ORDER BY 1""")))
    return (base("m40-sites", "Vue d'ensemble des sites", "Chaque site : état, alertes en cours par gravité, "
                 "équipements sans données.", time_from="now-7d")
            .with_panel(live).with_panel(assets).with_panel(per_site).with_panel(created))


# --- 2. Asset ------------------------------------------------------------------------------------

# Up to 2 days of range, the raw readings; beyond, the hourly roll-up (a 30-day curve reads ~720
# rows a metric) plus the raw readings after its last complete hour. The outer GROUP BY merges a
# bucket that both parts touch (weighted by the number of readings).
LONG_RANGE = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '2 days'"
CURVE = f"""
    WITH s AS (
        SELECT a.id AS asset_id, m.id AS metric_id, m.name || ' (' || m.unit || ')' AS metric,
               CASE WHEN {LONG_RANGE}
                    THEN coalesce((SELECT max(h.hour) + interval '1 hour' FROM telemetry_hourly h
                                   WHERE h.asset_id = a.id AND h.metric_id = m.id), '-infinity')
                    ELSE '-infinity' END AS raw_from
        FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types)
        WHERE a.code = '$asset' AND m.name IN ($metric))
    SELECT "time", metric, sum(total) / sum(n) AS value FROM (
        SELECT $__timeGroupAlias(t.ts, $__interval), s.metric, sum(t.value) AS total, count(*) AS n
        FROM s CROSS JOIN LATERAL readings(s.asset_id, s.metric_id,
                                           greatest($__timeFrom()::timestamptz, s.raw_from), $__timeTo()) t
        GROUP BY 1, 2
        UNION ALL
        SELECT $__timeGroupAlias(h.hour, $__interval), s.metric, sum(h.total), sum(h.n)
        FROM s JOIN telemetry_hourly h ON h.asset_id = s.asset_id AND h.metric_id = s.metric_id
        WHERE $__timeFilter(h.hour) AND {LONG_RANGE}
        GROUP BY 1, 2) x
    GROUP BY 1, 2
    ORDER BY 1"""

# The thresholds of the enabled threshold/consecutive policies on this metric (per-asset overrides
# applied), as flat lines across the range.
POLICY_LINES = """
    SELECT g.time, p.code || ' : ' || p.condition || ' ' || coalesce(o.threshold, p.threshold) AS metric,
           coalesce(o.threshold, p.threshold) AS value
    FROM policies p JOIN metrics m ON m.id = p.metric_id JOIN assets a ON a.type = p.asset_type
    LEFT JOIN policy_overrides o ON o.asset_id = a.id AND o.policy_id = p.id
    CROSS JOIN (VALUES ($__timeFrom()::timestamptz), ($__timeTo()::timestamptz)) AS g(time)
    WHERE a.code = '$asset' AND m.name IN ($metric) AND coalesce(o.enabled, p.enabled)
      AND p.rule_type IN ('threshold', 'consecutive')
    ORDER BY 1"""


def asset() -> dash.Dashboard:
    curve = (timeseries.Panel().title("$metric").datasource(POSTGRES).grid_pos(pos(0, 4, 24, 8))
             .repeat("metric").repeat_direction("v").interval("10s")
             .with_target(Sql(CURVE, ref_id="A")).with_target(Sql(POLICY_LINES, ref_id="B"))
             .override_by_regexp(r"^[A-Z][A-Z0-9_-]* : ", [  # the policy lines of POLICY_LINES
                 model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
                 model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"})]))
    last = (table.Panel().title("Dernières valeurs").datasource(POSTGRES).grid_pos(pos(0, 0, 24, 4))
            .with_target(Sql("""
                SELECT m.label_fr AS "Mesure", x.value AS "Valeur", m.unit AS "Unité", x.ts AS "Relevé à"
                FROM assets a JOIN metrics m ON a.type = ANY(m.asset_types)
                CROSS JOIN LATERAL latest_readings(a.id, m.id, now(), 1) x
                WHERE a.code = '$asset' ORDER BY m.name""", fmt="table")))
    alerts = (table.Panel().title("Alertes de l'équipement").datasource(POSTGRES).grid_pos(pos(0, 12, 12, 8))
              .with_target(Sql("""
                  SELECT al.created_at AS "Créée", al.severity AS "Gravité", al.status AS "Statut",
                         p.code AS "Règle", al.message AS "Message"
                  FROM alerts al JOIN assets a ON a.id = al.asset_id JOIN policies p ON p.id = al.policy_id
                  WHERE a.code = '$asset' AND ($__timeFilter(al.created_at) OR al.status <> 'closed')
                  ORDER BY al.created_at DESC LIMIT 200""", fmt="table")))
    orders = (table.Panel().title("Ordres de travail de l'équipement").datasource(POSTGRES).grid_pos(pos(12, 12, 12, 8))
              .with_target(Sql("""
                  SELECT w.created_at AS "Créé", w.status AS "Statut", w.priority AS "Priorité",
                         w.title AS "Titre", w.assigned_to AS "Assigné à", w.closed_at AS "Clos"
                  FROM work_orders w JOIN assets a ON a.id = w.asset_id
                  WHERE a.code = '$asset' AND ($__timeFilter(w.created_at) OR w.status IN ('open', 'in_progress'))
                  ORDER BY w.created_at DESC LIMIT 200""", fmt="table")))
    return (base("m40-asset", "Équipement", "Courbes d'un équipement avec les seuils de ses règles, ses alertes et "
                 "ses ordres de travail ; au-delà de 2 jours, les courbes lisent l'agrégat horaire (et les "
                 "relevés des heures pas encore agrégées).")
            .with_variable(sql_variable("site", "Site", "SELECT code FROM sites ORDER BY code"))
            .with_variable(sql_variable("asset", "Équipement", """
                SELECT a.code FROM assets a JOIN sites s ON s.id = a.site_id WHERE s.code = '$site' ORDER BY 1"""))
            .with_variable(sql_variable("metric", "Mesure", """
                SELECT m.name FROM metrics m JOIN assets a ON a.type = ANY(m.asset_types)
                WHERE a.code = '$asset' ORDER BY 1""", multi=True))
            .with_panel(last).with_panel(curve).with_panel(alerts).with_panel(orders))


# --- 3. Alerts and work orders -------------------------------------------------------------------

def alerts_and_orders() -> dash.Dashboard:
    alerts = (table.Panel().title("Alertes").datasource(POSTGRES).grid_pos(pos(0, 0, 24, 10))
              .description("Alertes créées dans la période, et toutes celles encore ouvertes ou acquittées.")
              .with_target(Sql("""
                  SELECT al.id AS "N°", al.created_at AS "Créée", s.code AS "Site", a.code AS "Équipement",
                         al.severity AS "Gravité", al.status AS "Statut", p.code AS "Règle", p.title AS "Titre",
                         al.message AS "Message", al.acked_by AS "Acquittée par", al.closed_at AS "Close",
                         al.resolution AS "Résolution"
                  FROM alerts al JOIN assets a ON a.id = al.asset_id JOIN sites s ON s.id = a.site_id
                  JOIN policies p ON p.id = al.policy_id
                  WHERE s.code IN ($site) AND al.severity IN ($severity) AND al.status IN ($status)
                    AND ($__timeFilter(al.created_at) OR al.status <> 'closed')
                  ORDER BY al.created_at DESC LIMIT 500""", fmt="table")))
    orders = (table.Panel().title("Ordres de travail").datasource(POSTGRES).grid_pos(pos(0, 10, 24, 10))
              .with_target(Sql("""
                  SELECT w.id AS "N°", w.created_at AS "Créé", s.code AS "Site", a.code AS "Équipement",
                         w.status AS "Statut", w.priority AS "Priorité", w.title AS "Titre",
                         w.assigned_to AS "Assigné à", w.updated_at AS "Mis à jour", w.closed_at AS "Clos"
                  FROM work_orders w JOIN assets a ON a.id = w.asset_id JOIN sites s ON s.id = a.site_id
                  WHERE s.code IN ($site) AND w.status IN ($wo_status)
                    AND ($__timeFilter(w.created_at) OR w.status IN ('open', 'in_progress'))
                  ORDER BY w.created_at DESC LIMIT 500""", fmt="table")))
    per_day = (timeseries.Panel().title("Alertes créées par jour").datasource(POSTGRES).grid_pos(pos(0, 20, 12, 8))
               .draw_style(cm.GraphDrawStyle.BARS)
               .stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
               .with_target(Sql("""
                   SELECT $__timeGroupAlias(al.created_at, '1d'), al.severity AS metric, count(*) AS value
                   FROM alerts al JOIN assets a ON a.id = al.asset_id JOIN sites s ON s.id = a.site_id
                   WHERE $__timeFilter(al.created_at) AND s.code IN ($site) AND al.severity IN ($severity)
                   GROUP BY 1, 2 ORDER BY 1""")))
    delays = (stat.Panel().title("Délais moyens").datasource(POSTGRES).grid_pos(pos(12, 20, 12, 8)).unit("s")
              .graph_mode(cm.BigValueGraphMode.NONE)
              .with_target(Sql("""
                  SELECT avg(extract(epoch FROM al.acked_at - al.created_at)) AS "Acquittement",
                         avg(extract(epoch FROM w.closed_at - w.created_at)) FILTER (WHERE w.status = 'done')
                             AS "Réparation (ordre clos)"
                  FROM alerts al JOIN assets a ON a.id = al.asset_id JOIN sites s ON s.id = a.site_id
                  LEFT JOIN work_orders w ON w.alert_id = al.id
                  WHERE $__timeFilter(al.created_at) AND s.code IN ($site) AND al.severity IN ($severity)""",
                               fmt="table")))
    return (base("m40-alerts", "Alertes et ordres de travail", "Les alertes et les ordres de travail, filtrés par "
                 "site, gravité et statut.", time_from="now-7d")
            .with_variable(sql_variable("site", "Site", "SELECT code FROM sites ORDER BY code", multi=True))
            .with_variable(custom_variable("severity", "Gravité", "haute : high, moyenne : medium, basse : low"))
            .with_variable(custom_variable("status", "Statut de l'alerte",
                                           "ouverte : open, acquittée : ack, close : closed"))
            .with_variable(custom_variable("wo_status", "Statut de l'ordre",
                                           "ouvert : open, en cours : in_progress, terminé : done, annulé : cancelled"))
            .with_panel(alerts).with_panel(orders).with_panel(per_day).with_panel(delays))


# --- 4. Data arrival -----------------------------------------------------------------------------

def data_arrival() -> dash.Dashboard:
    per_minute = (timeseries.Panel().title("Relevés par minute, par site").datasource(POSTGRES)
                  .grid_pos(pos(0, 0, 12, 8)).interval("1m").unit("short")
                  .description("Un relevé = un équipement à un instant (toutes ses mesures), par heure de mesure ; "
                               "lit les partitions chaudes (les jours récents).")
                  .with_target(Sql("""
                      SELECT $__timeGroupAlias(t.ts, $__interval), s.code AS metric,
                             count(DISTINCT (t.asset_id, t.ts)) * 60000.0 / $__interval_ms AS value
                      FROM telemetry t JOIN assets a ON a.id = t.asset_id JOIN sites s ON s.id = a.site_id
                      WHERE $__timeFilter(t.ts)
                      GROUP BY 1, 2 ORDER BY 1""")))
    lag = (timeseries.Panel().title("Délai d'ingestion").datasource(POSTGRES).grid_pos(pos(12, 0, 12, 8)).unit("s")
           .description("Entre l'heure de mesure et l'écriture en base (table telemetry_arrivals, tant qu'elle les "
                        "garde) : un rattrapage après une coupure se voit ici.")
           .with_target(Sql("""
               SELECT $__timeGroupAlias(arrived_at, $__interval),
                      max(extract(epoch FROM arrived_at - max_ts)) AS "max",
                      sum(extract(epoch FROM arrived_at - max_ts) * n) / sum(n) AS "moyen"
               FROM telemetry_arrivals WHERE $__timeFilter(arrived_at)
               GROUP BY 1 ORDER BY 1""")))
    last = (table.Panel().title("Dernier relevé par équipement").datasource(POSTGRES).grid_pos(pos(0, 8, 16, 12))
            .with_target(Sql(f"""
                SELECT s.code AS "Site", a.code AS "Équipement", a.type AS "Type", x.last AS "Dernier relevé",
                       extract(epoch FROM now() - x.last) AS "Âge (s)", a.expected_cadence_s AS "Cadence (s)",
                       CASE WHEN x.last IS NULL OR x.last < now() - 3 * make_interval(secs => a.expected_cadence_s)
                            THEN 'muet' ELSE 'ok' END AS "État"
                FROM assets a JOIN sites s ON s.id = a.site_id CROSS JOIN LATERAL (SELECT {LAST_READING} AS last) x
                ORDER BY x.last NULLS FIRST, a.code""", fmt="table")))
    silent = (stat.Panel().title("Équipements muets").datasource(POSTGRES).grid_pos(pos(16, 8, 8, 12))
              .description("Aucun relevé depuis plus de 3 fois la cadence attendue.")
              .thresholds(thresholds((None, "green"), (1, "red")))
              .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
              .graph_mode(cm.BigValueGraphMode.NONE)
              .with_target(Sql(f"""
                  SELECT count(*) AS "Équipements muets" FROM assets a
                  WHERE coalesce({LAST_READING}, '-infinity') < now() - 3 * make_interval(secs => a.expected_cadence_s)""",
                               fmt="table")))
    return (base("m40-arrival", "Arrivée des données", "Les données arrivent-elles ? Relevés par minute et par site, "
                 "délai d'ingestion, dernier relevé de chaque équipement, équipements muets.", refresh="30s")
            .with_panel(per_minute).with_panel(lag).with_panel(last).with_panel(silent))


# --- 5. Database ---------------------------------------------------------------------------------

# a partitioned table's size is the sum of its partitions'; pg_partition_tree lists them (and
# nothing for a plain table, hence the UNION with the table itself)
def _tree(oid: str) -> str:
    return f"(SELECT {oid} AS relid UNION SELECT relid FROM pg_partition_tree({oid}))"


TABLE_SIZES = f"""
    SELECT c.relname AS "Table",
           (SELECT sum(pg_total_relation_size(p.relid)) FROM {_tree('c.oid')} p) AS "Taille totale",
           (SELECT sum(pg_relation_size(p.relid)) FROM {_tree('c.oid')} p) AS "Données",
           (SELECT sum(pg_indexes_size(p.relid)) FROM {_tree('c.oid')} p) AS "Index",
           (SELECT sum(greatest(k.reltuples, 0)) FROM {_tree('c.oid')} p JOIN pg_class k ON k.oid = p.relid)::bigint
               AS "Lignes (estimation)"
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    ORDER BY 2 DESC"""


def database() -> dash.Dashboard:
    size = (stat.Panel().title("Taille de la base").datasource(POSTGRES).grid_pos(pos(0, 0, 6, 6)).unit("bytes")
            .graph_mode(cm.BigValueGraphMode.NONE)
            .with_target(Sql("SELECT pg_database_size(current_database()) AS \"Taille\"", fmt="table")))
    tables = (table.Panel().title("Taille des tables").datasource(POSTGRES).grid_pos(pos(6, 0, 18, 10))
              .unit("bytes").override_by_name("Lignes (estimation)", [model.DynamicConfigValue(id_val="unit",
                                                                                                value="short")])
              .with_target(Sql(TABLE_SIZES, fmt="table")))
    per_day = (timeseries.Panel().title("Relevés stockés par jour").datasource(POSTGRES).grid_pos(pos(0, 10, 12, 8))
               .draw_style(cm.GraphDrawStyle.BARS).unit("short")
               .description("Points par jour de mesure, d'après l'agrégat horaire (telemetry_hourly).")
               .with_target(Sql("""
                   SELECT $__timeGroupAlias(hour, '1d'), sum(n) AS "points"
                   FROM telemetry_hourly WHERE $__timeFilter(hour)
                   GROUP BY 1 ORDER BY 1""")))
    growth = (timeseries.Panel().title("Croissance estimée de telemetry").datasource(POSTGRES)
              .grid_pos(pos(12, 10, 12, 8)).draw_style(cm.GraphDrawStyle.BARS).unit("bytes")
              .description("Points par jour × taille moyenne d'un point en base (tiers chaud et froid, "
                           "tables et index).")
              .with_target(Sql(f"""
                  WITH per_point AS (
                      SELECT ((SELECT sum(pg_total_relation_size(relid)) FROM {_tree("'telemetry'::regclass")} p)
                              + (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)
                                 FROM {_tree("'telemetry_cold'::regclass")} p))
                             / greatest((SELECT sum(n) FROM telemetry_hourly), 1) AS bytes)
                  SELECT $__timeGroupAlias(hour, '1d'), sum(n) * (SELECT bytes FROM per_point) AS "octets par jour"
                  FROM telemetry_hourly WHERE $__timeFilter(hour)
                  GROUP BY 1 ORDER BY 1""")))
    slow = (table.Panel().title("Requêtes les plus lentes (pg_stat_statements)").datasource(POSTGRES)
            .grid_pos(pos(0, 18, 24, 10))
            .description("Temps moyen par exécution, depuis la dernière remise à zéro des statistiques. Sans "
                         "l'extension pg_stat_statements chargée par le serveur, une ligne dit pourquoi.")
            .with_target(Sql("""
                SELECT query AS "Requête", calls AS "Appels", mean_ms AS "Moyenne (ms)", total_s AS "Total (s)",
                       rows_per_call AS "Lignes par appel"
                FROM slow_statements(15)""", fmt="table")))
    return (base("m40-database", "Base de données", "Volume des données : taille des tables, relevés par jour, "
                 "croissance ; requêtes les plus lentes.", time_from="now-30d", refresh="5m")
            .with_panel(size).with_panel(tables).with_panel(per_day).with_panel(growth).with_panel(slow))


# --- 6. Platform (Prometheus) --------------------------------------------------------------------

def platform() -> dash.Dashboard:
    rate = (timeseries.Panel().title("Requêtes HTTP par seconde").datasource(PROMETHEUS).grid_pos(pos(0, 0, 12, 8))
            .unit("reqps")
            .with_target(prom("sum by (route) (rate(m40_http_request_duration_seconds_count[$__rate_interval]))",
                              "{{route}}")))
    p99 = (timeseries.Panel().title("Latence p99").datasource(PROMETHEUS).grid_pos(pos(12, 0, 12, 8)).unit("s")
           .with_target(prom("histogram_quantile(0.99, sum by (le, route) "
                             "(rate(m40_http_request_duration_seconds_bucket[$__rate_interval])))", "{{route}}"))
           .with_target(prom("histogram_quantile(0.99, sum by (le) (rate(m40_mqtt_commit_seconds_bucket"
                             "[$__rate_interval])))", "MQTT (arrivée → acquittement)", ref_id="B")))
    readings = (timeseries.Panel().title("Points stockés par seconde").datasource(PROMETHEUS)
                .grid_pos(pos(0, 8, 12, 8)).unit("short")
                .with_target(prom("sum(rate(m40_ingest_points_total[$__rate_interval]))", "HTTP"))
                .with_target(prom("sum(rate(m40_mqtt_points_total[$__rate_interval]))", "MQTT", ref_id="B")))
    rejected = (timeseries.Panel().title("Refus par seconde").datasource(PROMETHEUS).grid_pos(pos(12, 8, 12, 8))
                .unit("short")
                .with_target(prom("sum by (reason) (rate(m40_ingest_rejected_requests_total[$__rate_interval]))",
                                  "HTTP {{reason}}"))
                .with_target(prom("sum by (reason) (rate(m40_mqtt_rejected_messages_total[$__rate_interval]))",
                                  "MQTT {{reason}}", ref_id="B")))
    evaluation = (timeseries.Panel().title("Durée de l'évaluation des règles").datasource(PROMETHEUS)
                  .grid_pos(pos(0, 16, 12, 8)).unit("s")
                  .with_target(prom("max(m40_rules_last_evaluation_seconds)", "dernière évaluation"))
                  .with_target(prom("time() - max(m40_rules_last_evaluation_timestamp_seconds)",
                                    "depuis la dernière évaluation", ref_id="B")))
    mqtt = (timeseries.Panel().title("Pont MQTT").datasource(PROMETHEUS).grid_pos(pos(12, 16, 12, 8)).unit("short")
            .with_target(prom("sum(m40_mqtt_unacked_messages)", "messages non acquittés"))
            .with_target(prom("sum(m40_mqtt_connected)", "connecté", ref_id="B"))
            .with_target(prom("sum(rate(m40_mqtt_write_retries_total[$__rate_interval]))", "écritures réessayées/s",
                              ref_id="C")))
    return (base("m40-platform", "Plateforme", "Santé des services (Prometheus) : requêtes, latence p99, points "
                 "stockés, refus, évaluation des règles, pont MQTT.", time_from="now-3h", refresh="30s")
            .with_panel(rate).with_panel(p99).with_panel(readings).with_panel(rejected).with_panel(evaluation)
            .with_panel(mqtt))


DASHBOARDS = {
    "sites.json": sites_overview,
    "asset.json": asset,
    "alerts.json": alerts_and_orders,
    "arrival.json": data_arrival,
    "database.json": database,
    "platform.json": platform,
}


def render(build) -> str:
    """The dashboard's JSON as written to disk (stable: sorted keys, 2-space indent)."""
    data = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    for key in ("templating", "annotations"):  # the lists Grafana expects, even empty
        data.setdefault(key, {}).setdefault("list", [])
    for i, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = i
        if panel.get("options") is None:
            panel.pop("options", None)  # the builder's null: Grafana fills the panel type's defaults
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m grafana.dashboards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the files are up to date (exit 1 if not)")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run python -m grafana.dashboards)", file=sys.stderr)
        return 1
    print(("written: " + ", ".join(stale)) if stale and not args.check else "dashboards up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
