"""`?format=csv` on the list endpoints: the same rows, with the same filters, as a CSV download
whose columns are the fields of the JSON answer (db/export.py: the columns and the text)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from fastapi.responses import Response

from db.export import COLUMNS, csv_text

ListFormat = Annotated[Literal["json", "csv"], Query(description="json (default) or csv (a download)")]
CSV_RESPONSE = {200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                      "description": "with format=csv: one header row, then one row per item"}}


def csv_response(rows: list[dict], name: str) -> Response:
    """The rows as an attachment `<name>.csv` ("alerts" or "workorders": db.export.COLUMNS)."""
    return Response(csv_text(rows, COLUMNS[name]), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
