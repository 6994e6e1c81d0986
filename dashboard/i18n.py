"""Every word the dashboard shows, in one place per language (French by default)."""

from __future__ import annotations

import streamlit as st

from core.numbers import number as core_number

FR = {
    "app_title": "Maintenance 4.0 — Casanearshore",
    "nav_overview": "Vue d'ensemble", "nav_site": "Site", "nav_asset": "Équipement", "nav_alerts": "Alertes",
    "nav_workorders": "Ordres de travail", "nav_simulator": "Contrôle simulateur",
    "site_filter": "Site", "all_sites": "Tous les sites",
    "fresh_ago": "Dernière mesure il y a {ago}", "fresh_none": "Aucune mesure reçue",
    "points_minute": "{n} points reçus la dernière minute", "last_eval": "Règles évaluées il y a {ago} ({ms} ms)",
    "db_down": "Base de données injoignable : les données ne peuvent pas être affichées. Réessayez dans un instant.",
    "status_ok": "OK", "status_watch": "Sous surveillance", "status_alert": "En alerte", "status_no_data": "Sans données",
    "sev_high": "Haute", "sev_medium": "Moyenne", "sev_low": "Basse",
    "alert_open": "Ouverte", "alert_ack": "Acquittée", "alert_closed": "Clôturée",
    "wo_open": "Ouvert", "wo_in_progress": "En cours", "wo_done": "Terminé",
    "overview_title": "Vue d'ensemble des sites",
    "sites_at_risk": "Sites à risque", "assets_by_status": "Équipements par état", "open_wo": "Ordres de travail ouverts",
    "readings_minute": "Mesures (dernière minute)", "ingest_lag": "Retard d'ingestion",
    "all_f": "Toutes", "all_m": "Tous", "period_24h": "24 h", "period_7d": "7 jours", "period_30d": "30 jours",
    "period_all": "Toujours", "site": "Site", "open_site": "Ouvrir {code}", "to_handle": "Alertes à traiter", "handle": "Traiter",
    "nothing_to_handle": "Aucune alerte ouverte.", "wo_short": "OT", "no_work_order": "sans ordre de travail",
    "since_ago": "depuis {d}", "name": "Nom", "high": "Haute", "medium": "Moyenne", "low": "Basse", "at_risk": "À risque",
    "yes": "oui", "no": "non", "assets": "Équipements",
    "site_title": "Site {code} — {name}", "choose_site": "Choisir un site", "asset": "Équipement", "type": "Type",
    "status": "État", "last_seen": "Dernière mesure", "last_values": "Dernières valeurs", "open_alerts": "Alertes ouvertes",
    "open_asset": "Ouvrir {code}", "no_alerts": "Aucune alerte ouverte.",
    "asset_title": "Équipement {code}", "choose_asset": "Choisir un équipement", "range": "Période",
    "range_1h": "1 h", "range_24h": "24 h", "range_7d": "7 jours", "range_custom": "Personnalisée",
    "from": "Du", "to": "Au", "policies": "Règles de maintenance", "policy": "Règle", "value": "Valeur",
    "threshold": "Seuil", "firing": "Déclenchée", "evaluated_at": "Évaluée le", "no_points": "Pas de mesure sur la période.",
    "chart_avg": "moyenne", "chart_band": "min–max", "time": "Heure", "alerts_of_asset": "Alertes de l'équipement",
    "workorders_of_asset": "Ordres de travail de l'équipement", "downsampled": "Agrégé par pas de {s} s (min / moy / max).",
    "alerts_title": "Alertes", "severity": "Criticité", "since": "Depuis", "created": "Créée le", "message": "Message",
    "title": "Titre", "acked_by": "Acquittée par", "closed_by": "Clôturée par", "actor": "Votre nom",
    "comment": "Commentaire", "ack": "Acquitter", "close": "Clôturer", "select_alert": "Alerte à traiter",
    "done_ack": "Alerte {id} acquittée.", "done_close": "Alerte {id} clôturée.", "audit": "Historique (audit)",
    "at": "Quand", "who": "Qui", "action": "Action", "from_to": "De → à", "none": "Aucune.",
    "wo_title": "Ordres de travail", "priority": "Priorité", "assigned_to": "Assigné à", "notes": "Notes",
    "select_wo": "Ordre de travail", "new_status": "Nouveau statut", "save": "Enregistrer", "saved": "Ordre {id} enregistré.",
    "alert_context": "Contexte de l'alerte", "recent_curve": "Courbe récente — {metric}", "assignee_filter": "Assigné à (filtre)",
    "assignee_filter_hint": "ex. Youssef — vide : tous", "unassigned": "non assigné",
    "sim_title": "Contrôle du simulateur", "fault": "Panne", "intensity": "Intensité", "duration_min": "Durée (min)",
    "start_fault": "Démarrer la panne", "fault_started": "Panne {fault} démarrée sur {asset}.", "active_faults": "Pannes actives",
    "stop": "Arrêter", "fault_stopped": "Panne {id} arrêtée.", "evaluate_now": "Évaluer les règles maintenant",
    "fired": "{n} alerte(s) déclenchée(s)", "nothing_fired": "Aucune nouvelle alerte.", "expected_policy": "Règle visée",
    "ends_at": "Fin", "started_at": "Début", "fires_within": "Déclenche en ~{s} s",
    "error": "Action refusée : {msg}", "user_default": "responsable",
}

EN = {
    "app_title": "Maintenance 4.0 — Casanearshore",
    "nav_overview": "Overview", "nav_site": "Site", "nav_asset": "Asset", "nav_alerts": "Alerts",
    "nav_workorders": "Work orders", "nav_simulator": "Simulator control",
    "site_filter": "Site", "all_sites": "All sites",
    "fresh_ago": "Last reading {ago} ago", "fresh_none": "No reading received yet",
    "points_minute": "{n} points received in the last minute", "last_eval": "Rules evaluated {ago} ago ({ms} ms)",
    "db_down": "Database unreachable: data cannot be shown. Try again in a moment.",
    "status_ok": "OK", "status_watch": "Watch", "status_alert": "Alert", "status_no_data": "No data",
    "sev_high": "High", "sev_medium": "Medium", "sev_low": "Low",
    "alert_open": "Open", "alert_ack": "Acknowledged", "alert_closed": "Closed",
    "wo_open": "Open", "wo_in_progress": "In progress", "wo_done": "Done",
    "overview_title": "Sites overview",
    "sites_at_risk": "Sites at risk", "assets_by_status": "Assets by status", "open_wo": "Open work orders",
    "readings_minute": "Readings (last minute)", "ingest_lag": "Ingestion lag",
    "all_f": "All", "all_m": "All", "period_24h": "24 h", "period_7d": "7 days", "period_30d": "30 days",
    "period_all": "Any time", "site": "Site", "open_site": "Open {code}", "to_handle": "Alerts to handle", "handle": "Handle",
    "nothing_to_handle": "No open alert.", "wo_short": "WO", "no_work_order": "no work order",
    "since_ago": "for {d}", "name": "Name", "high": "High", "medium": "Medium", "low": "Low", "at_risk": "At risk",
    "yes": "yes", "no": "no", "assets": "Assets",
    "site_title": "Site {code} — {name}", "choose_site": "Choose a site", "asset": "Asset", "type": "Type",
    "status": "Status", "last_seen": "Last reading", "last_values": "Last values", "open_alerts": "Open alerts",
    "open_asset": "Open {code}", "no_alerts": "No open alert.",
    "asset_title": "Asset {code}", "choose_asset": "Choose an asset", "range": "Range",
    "range_1h": "1 h", "range_24h": "24 h", "range_7d": "7 days", "range_custom": "Custom",
    "from": "From", "to": "To", "policies": "Maintenance policies", "policy": "Policy", "value": "Value",
    "threshold": "Threshold", "firing": "Firing", "evaluated_at": "Evaluated at", "no_points": "No reading in this range.",
    "chart_avg": "average", "chart_band": "min–max", "time": "Time", "alerts_of_asset": "Alerts of this asset",
    "workorders_of_asset": "Work orders of this asset", "downsampled": "Aggregated in {s}-s steps (min / avg / max).",
    "alerts_title": "Alerts", "severity": "Severity", "since": "Since", "created": "Created", "message": "Message",
    "title": "Title", "acked_by": "Acknowledged by", "closed_by": "Closed by", "actor": "Your name",
    "comment": "Comment", "ack": "Acknowledge", "close": "Close", "select_alert": "Alert to handle",
    "done_ack": "Alert {id} acknowledged.", "done_close": "Alert {id} closed.", "audit": "History (audit)",
    "at": "When", "who": "Who", "action": "Action", "from_to": "From → to", "none": "None.",
    "wo_title": "Work orders", "priority": "Priority", "assigned_to": "Assigned to", "notes": "Notes",
    "select_wo": "Work order", "new_status": "New status", "save": "Save", "saved": "Work order {id} saved.",
    "alert_context": "Alert context", "recent_curve": "Recent curve — {metric}", "assignee_filter": "Assigned to (filter)",
    "assignee_filter_hint": "e.g. Youssef — empty: all", "unassigned": "unassigned",
    "sim_title": "Simulator control", "fault": "Fault", "intensity": "Intensity", "duration_min": "Duration (min)",
    "start_fault": "Start the fault", "fault_started": "Fault {fault} started on {asset}.", "active_faults": "Active faults",
    "stop": "Stop", "fault_stopped": "Fault {id} stopped.", "evaluate_now": "Evaluate rules now",
    "fired": "{n} alert(s) raised", "nothing_fired": "No new alert.", "expected_policy": "Target policy",
    "ends_at": "Ends", "started_at": "Started", "fires_within": "Fires in ~{s} s",
    "error": "Action refused: {msg}", "user_default": "manager",
}

LANGUAGES = {"fr": ("Français", FR), "en": ("English", EN)}


def lang() -> str:
    return st.session_state.get("lang", "fr")


def localized(french: str | None, english: str) -> str:
    """The French text when French is chosen and there is one, else the English (data that comes
    in both languages: metric labels, alert messages, the engine's audit comments)."""
    return french if french and lang() == "fr" else english


def t(key: str, **kw) -> str:
    """The text for `key` in the chosen language (French by default)."""
    words = LANGUAGES[lang()][1]
    text = words.get(key) or FR.get(key) or key
    return text.format(**kw) if kw else text


def ago(seconds: float) -> str:
    """'8 s', '3 min', '2 h', '4 j' — short durations as people say them."""
    s = int(max(0, seconds))
    day = "j" if lang() == "fr" else "d"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} {day}"


def number(value: float | None, unit: str = "", digits: int | None = 1) -> str:
    """A number in the chosen language (19,4 °C; 100 000 cycles), by the one formatter."""
    return core_number(value, unit, lang=lang(), digits=digits)


# --- KPIs, GMAO integration, CSV downloads (issue 15) -----------------------------------------
FR.update({
    "wo_cancelled": "Annulé",  # migration 0005's status (a dismissed alert's order); missing until now
    "nav_kpis": "Indicateurs", "kpi_title": "Indicateurs de maintenance", "download_csv": "Télécharger (CSV)",
    "kpi_period": "Période", "period_90d": "90 jours", "period_12m": "12 mois", "period_custom": "Personnalisée",
    "asset_type": "Type d'équipement", "all_types": "Tous les types", "all_assets": "Tous les équipements",
    "kpi_mttr": "MTTR", "kpi_mtta": "MTTA", "kpi_mtbf": "MTBF", "kpi_availability": "Disponibilité",
    "kpi_conversion": "Alertes → OT", "kpi_false_alarms": "Fausses alertes", "kpi_preventive": "Préventif",
    "kpi_backlog": "OT en attente", "kpi_failures": "Pannes", "kpi_downtime": "Arrêt (h)",
    "help_mttr": "Temps moyen de réparation : de la création d'un ordre de travail correctif à « Terminé », sur "
                 "les ordres terminés dans la période : {n}. Les ordres préventifs (R4, R6) sont exclus.",
    "help_mtta": "Temps moyen de prise en charge : de l'ouverture d'une alerte à son premier acquittement ou au "
                 "passage « En cours » de son ordre de travail, le premier des deux. Alertes prises en charge : {n}.",
    "help_mtbf": "Temps moyen entre pannes : heures de fonctionnement (période moins arrêts) divisées par le nombre "
                 "de pannes. Panne = alerte haute ou moyenne qui n'était pas une fausse alerte. Pannes : {n}.",
    "help_availability": "(période − arrêts) / période. Un équipement est à l'arrêt de l'ouverture d'une panne à "
                         "la fin de son ordre de travail ; les arrêts qui se chevauchent comptent une fois, et "
                         "seule la partie dans la période compte.",
    "help_conversion": "Alertes ouvertes dans la période qui ont un ordre de travail non annulé : {a} sur {b}.",
    "help_false_alarms": "Alertes clôturées dans la période qui étaient de fausses alertes : écartées, ou "
                         "revenues à la normale sans travail : {a} sur {b}.",
    "help_preventive": "Part des ordres de travail créés dans la période qui sont préventifs (règles de compteur "
                       "R4, R6) ; le reste est correctif : {a} sur {b}.",
    "help_backlog": "Ordres de travail encore ouverts (ouverts ou en cours) à la fin de la période.",
    "kpi_per": "Évolution", "per_week": "Par semaine", "per_month": "Par mois", "kpi_hours": "heures",
    "kpi_count": "nombre", "kpi_pct": "%", "kpi_week_of": "Semaine du", "kpi_month_of": "Mois",
    "kpi_chart_times": "MTTR et MTTA (h)", "kpi_chart_availability": "Disponibilité (%)",
    "kpi_chart_failures": "Pannes et heures d'arrêt", "kpi_chart_mix": "Ordres préventifs et correctifs",
    "preventive": "Préventif", "corrective": "Correctif", "kpi_series": "Indicateur",
    "backlog_title": "Ordres de travail en attente, par priorité et ancienneté",
    "age_lt_1d": "< 1 jour", "age_1_7d": "1–7 jours", "age_7_30d": "7–30 jours", "age_gt_30d": "> 30 jours",
    "per_asset": "Par équipement", "top_assets": "Équipements les plus touchés",
    "availability": "Disponibilité", "failures": "Pannes", "downtime_h": "Arrêt (h)", "mtbf_h": "MTBF (h)",
    "operating_h": "Fonctionnement (h)", "kpi_no_data": "Aucune donnée sur la période.",
    "tab_kpis": "Indicateurs", "tab_gmao": "Intégration GMAO",
    "gmao_title": "Envois vers la GMAO (webhooks)", "gmao_endpoints": "Destinations : {urls}",
    "gmao_no_endpoint": "Aucune destination configurée (WEBHOOK_URL) : les événements attendent dans la file.",
    "gmao_counts": "{pending} en attente · {delivered} livrés · {failed} en échec · {waiting} pas encore distribués",
    "delivery_status": "État de l'envoi", "del_pending": "En attente", "del_delivered": "Livré", "del_failed": "En échec",
    "event": "Événement", "endpoint": "Destination", "attempts": "Tentatives", "last_status": "Dernière réponse",
    "next_attempt": "Prochaine tentative", "resend": "Renvoyer", "select_delivery": "Envoi en échec",
    "resent": "Envoi {id} remis en file.", "no_failed": "Aucun envoi en échec.",
})
EN.update({
    "wo_cancelled": "Cancelled",
    "nav_kpis": "KPIs", "kpi_title": "Maintenance KPIs", "download_csv": "Download (CSV)",
    "kpi_period": "Period", "period_90d": "90 days", "period_12m": "12 months", "period_custom": "Custom",
    "asset_type": "Asset type", "all_types": "All types", "all_assets": "All assets",
    "kpi_mttr": "MTTR", "kpi_mtta": "MTTA", "kpi_mtbf": "MTBF", "kpi_availability": "Availability",
    "kpi_conversion": "Alerts → WO", "kpi_false_alarms": "False alarms", "kpi_preventive": "Preventive",
    "kpi_backlog": "Backlog", "kpi_failures": "Failures", "kpi_downtime": "Downtime (h)",
    "help_mttr": "Mean time to repair: from a corrective work order's creation to done, over the orders done in "
                 "the period ({n} orders). Preventive orders (R4, R6) are left out.",
    "help_mtta": "Mean time to acknowledge: from an alert's opening to its first acknowledgement or its work "
                 "order in progress, whichever comes first ({n} alerts taken in hand).",
    "help_mtbf": "Mean time between failures: operating hours (period minus downtime) divided by the number of "
                 "failures. Failure = a high or medium alert that was not a false alarm ({n} failures).",
    "help_availability": "(period − downtime) / period. An asset is down from a failure's opening until its work "
                         "order is done; overlapping windows count once, and only the part inside the period.",
    "help_conversion": "Alerts opened in the period with a work order that was not cancelled ({a} of {b}).",
    "help_false_alarms": "Alerts closed in the period that were false alarms: dismissed, or cleared by "
                         "themselves with no work done ({a} of {b}).",
    "help_preventive": "Share of the work orders created in the period that are preventive (counter rules R4, "
                       "R6); the rest are corrective ({a} of {b}).",
    "help_backlog": "Work orders still open (open or in progress) at the end of the period.",
    "kpi_per": "Trend", "per_week": "Per week", "per_month": "Per month", "kpi_hours": "hours",
    "kpi_count": "count", "kpi_pct": "%", "kpi_week_of": "Week of", "kpi_month_of": "Month",
    "kpi_chart_times": "MTTR and MTTA (h)", "kpi_chart_availability": "Availability (%)",
    "kpi_chart_failures": "Failures and downtime hours", "kpi_chart_mix": "Preventive and corrective orders",
    "preventive": "Preventive", "corrective": "Corrective", "kpi_series": "KPI",
    "backlog_title": "Work orders waiting, by priority and age",
    "age_lt_1d": "< 1 day", "age_1_7d": "1–7 days", "age_7_30d": "7–30 days", "age_gt_30d": "> 30 days",
    "per_asset": "Per asset", "top_assets": "Most affected assets",
    "availability": "Availability", "failures": "Failures", "downtime_h": "Downtime (h)", "mtbf_h": "MTBF (h)",
    "operating_h": "Operating (h)", "kpi_no_data": "No data in this period.",
    "tab_kpis": "KPIs", "tab_gmao": "GMAO integration",
    "gmao_title": "Events sent to the GMAO (webhooks)", "gmao_endpoints": "Endpoints: {urls}",
    "gmao_no_endpoint": "No endpoint configured (WEBHOOK_URL): events wait in the outbox.",
    "gmao_counts": "{pending} pending · {delivered} delivered · {failed} failed · {waiting} not handed out yet",
    "delivery_status": "Delivery status", "del_pending": "Pending", "del_delivered": "Delivered", "del_failed": "Failed",
    "event": "Event", "endpoint": "Endpoint", "attempts": "Attempts", "last_status": "Last answer",
    "next_attempt": "Next attempt", "resend": "Resend", "select_delivery": "Failed delivery",
    "resent": "Delivery {id} queued again.", "no_failed": "No failed delivery.",
})
