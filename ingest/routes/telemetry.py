"""POST /telemetry (one reading, §7.1 of the requirements) and POST /telemetry/batch.

Bodies are parsed straight from bytes by pydantic (`TypeAdapter.validate_json`, into dicts): the hot path skips
FastAPI's JSON decoding and response re-validation. The OpenAPI schema still documents them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter, ValidationError

from db.errors import InvalidInput, PayloadTooLarge
from core.settings import get_settings
from ingest.deps import IngestKey, TelemetryDep, TelemetryPath
from ingest.schemas import TELEMETRY_BATCH_IN, TELEMETRY_IN, BatchIngestOut, IngestOut, TelemetryIn, inline_schema
from ingest.telemetry import to_points

router = APIRouter(tags=["telemetry"], dependencies=[IngestKey])


def _body_doc(adapter: TypeAdapter) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(adapter)}}}}


def _parse(body: bytes, adapter: TypeAdapter):
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc.errors(), prefix_fields=()) from None


async def _store(path: TelemetryPath, readings: list[TelemetryIn], prefix: str) -> tuple[int, int]:
    await path.catalog.ensure(readings)
    points = to_points(path.catalog, readings, now=datetime.now(UTC),
                       future_tolerance_s=get_settings().future_tolerance_s, prefix=prefix)
    inserted = await path.writer.submit(points)
    path.metrics.points_ingested(inserted, len(points) - inserted)
    return len(points), inserted


@router.post(
    "/telemetry", response_model=IngestOut, summary="Store one reading of one asset", openapi_extra=_body_doc(TELEMETRY_IN)
)
async def post_telemetry(request: Request, path: TelemetryDep) -> Response:
    """The payload of the requirements (§7.1). A re-sent reading is stored once."""
    return await store_reading(path, await request.body())


async def store_reading(path: TelemetryPath, body: bytes) -> Response:
    """POST /telemetry from the body's bytes to the answer; raises DomainError (or a database
    error) for the one error handler. The route above and the ASGI fast path that serves this
    endpoint before FastAPI's routing (`ingest.main.TelemetryFastPath`) both call it."""
    reading = _parse(body, TELEMETRY_IN)
    _, inserted = await _store(path, [reading], prefix="")
    return Response(orjson.dumps({"status": "ok", "inserted_points": inserted}), media_type="application/json")


@router.post(
    "/telemetry/batch",
    response_model=BatchIngestOut,
    summary="Store many readings at once",
    openapi_extra=_body_doc(TELEMETRY_BATCH_IN),
)
async def post_telemetry_batch(request: Request, path: TelemetryDep) -> Response:
    """Many readings of many assets (gateways, back-fill). All or nothing: one bad reading
    refuses the request, and the error names it by index (`readings[3].timestamp`)."""
    readings = _parse(await request.body(), TELEMETRY_BATCH_IN)["readings"]
    limit = get_settings().max_batch_readings
    if len(readings) > limit:
        raise PayloadTooLarge(f"readings: {len(readings)} readings, at most {limit} per request", field="readings")
    points, inserted = await _store(path, readings, prefix="readings")
    body = {"status": "ok", "inserted_points": inserted, "readings": len(readings), "points": points,
            "duplicates": points - inserted}
    return Response(orjson.dumps(body), media_type="application/json")
