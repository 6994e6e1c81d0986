"""CSV exports of the lists (alerts, work orders): one header row, then one row per item;
timestamps ISO 8601 in UTC, empty cells for missing values (RFC 4180, UTF-8)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime


# The columns of each export: the fields of the API's JSON answer (AlertOut, WorkOrderOut), in
# their order (tests/ingest/test_export.py keeps them equal), so the API's `?format=csv` and the
# dashboard's download button write the same file.
ALERT_COLUMNS = ["id", "asset_id", "asset_code", "site_code", "policy_code", "title", "title_en", "created_at",
                 "severity", "status", "message", "message_fr", "observed_value", "acked_by", "acked_at", "closed_by",
                 "closed_at", "resolution", "started_at", "ended_at", "peak"]
WORKORDER_COLUMNS = ["id", "alert_id", "asset_id", "asset_code", "site_code", "title", "created_at", "updated_at",
                     "closed_at", "status", "priority", "assigned_to", "notes", "external_ref"]
COLUMNS = {"alerts": ALERT_COLUMNS, "workorders": WORKORDER_COLUMNS}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """The rows as CSV text, with these columns in this order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()
