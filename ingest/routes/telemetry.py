"""POST /telemetry (one reading, §7.1 of the requirements) and POST /telemetry/batch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Request

from db.settings import get_settings
from ingest.deps import ApiKey
from ingest.schemas import BatchIngestOut, IngestOut, TelemetryBatchIn, TelemetryIn
from ingest.telemetry import to_points

router = APIRouter(tags=["telemetry"], dependencies=[ApiKey])


async def _store(request: Request, readings: list[TelemetryIn], prefix: str) -> tuple[int, int]:
    state = request.app.state
    points = to_points(
        state.catalog,
        readings,
        now=datetime.now(UTC),
        future_tolerance_s=get_settings().future_tolerance_s,
        prefix=prefix,
    )
    inserted = await asyncio.wrap_future(state.writer.submit(points))
    state.metrics.points_ingested(inserted, len(points) - inserted)
    return len(points), inserted


@router.post("/telemetry", response_model=IngestOut, summary="Store one reading of one asset")
async def post_telemetry(reading: TelemetryIn, request: Request) -> IngestOut:
    """The payload of the requirements (§7.1). A re-sent reading is stored once."""
    _, inserted = await _store(request, [reading], prefix="")
    return IngestOut(inserted_points=inserted)


@router.post("/telemetry/batch", response_model=BatchIngestOut, summary="Store many readings at once")
async def post_telemetry_batch(batch: TelemetryBatchIn, request: Request) -> BatchIngestOut:
    """Many readings of many assets (gateways, back-fill). All or nothing: one bad reading
    refuses the request, and the error names it by index (`readings[3].timestamp`)."""
    limit = get_settings().max_batch_readings
    if len(batch.readings) > limit:
        from db.errors import PayloadTooLarge

        raise PayloadTooLarge(f"readings: {len(batch.readings)} readings, at most {limit} per request", field="readings")
    points, inserted = await _store(request, batch.readings, prefix="readings")
    return BatchIngestOut(readings=len(batch.readings), points=points, inserted_points=inserted, duplicates=points - inserted)
