"""CSV exports of the lists (alerts, work orders): one header row, then one row per item;
timestamps ISO 8601 in UTC, empty cells for missing values (RFC 4180, UTF-8)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime


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
