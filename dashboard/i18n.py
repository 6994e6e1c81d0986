"""Every word the dashboard shows, in one place per language (French by default)."""

from __future__ import annotations

import streamlit as st

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


def number(value: float | None, unit: str = "", digits: int = 1) -> str:
    """A number the French way (19,4 °C; 100 000 cycles) or the English way."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        txt = f"{value:,.0f}"
        txt = txt.replace(",", "\u202f") if lang() == "fr" else txt
    else:
        txt = f"{value:.{digits}f}"
        txt = txt.replace(".", ",") if lang() == "fr" else txt
    return f"{txt} {unit}".strip()
