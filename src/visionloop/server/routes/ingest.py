"""``POST /api/v1/ingest``: a device's batch of frame records, validated whole, stored once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from visionloop.errors import InvalidInputError, PayloadTooLargeError
from visionloop.server.deps import DeviceDep, StateDep
from visionloop.server.http_errors import validation_error
from visionloop.server.state import ServerState
from visionloop.server.store import ingest as ingest_store
from visionloop.types import FrameRecord, IngestBatch, IngestResult

router = APIRouter(tags=["ingest"])


def parse_batch(body: bytes, *, max_frames: int) -> IngestBatch:
    """Validate a whole batch from raw JSON (strict types: ``"640"`` is not an int).

    Raises InvalidInputError (422) naming every bad field and listing the bad frames as
    ``bad_frames: [{"index": i, "id": "<uuid or null>"}]``, BadRequestError (400) for malformed
    JSON, PayloadTooLargeError (413) for more than ``max_frames`` frames.
    """
    try:
        batch = IngestBatch.model_validate_json(body, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        error = validation_error(errors)
        if isinstance(error, InvalidInputError):
            error.extra["bad_frames"] = _bad_frames(body, errors)
        raise error from None
    if len(batch.frames) > max_frames:
        raise PayloadTooLargeError(
            f"a batch may carry at most {max_frames} frames, this one has {len(batch.frames)}"
        )
    return batch


def _bad_frames(body: bytes, errors: list[Any]) -> list[dict[str, Any]]:
    """Index and (where readable) id of each frame that failed validation, so a client can set
    those records aside and resend the rest."""
    indexes = sorted(
        {
            e["loc"][1]
            for e in errors
            if len(e["loc"]) >= 2 and e["loc"][0] == "frames" and isinstance(e["loc"][1], int)
        }
    )
    if not indexes:
        return []
    try:
        frames = json.loads(body)["frames"]
    except (ValueError, KeyError, TypeError):
        frames = []
    out = []
    for i in indexes:
        frame_id = None
        if isinstance(frames, list) and i < len(frames) and isinstance(frames[i], dict):
            raw = frames[i].get("id")
            frame_id = raw if isinstance(raw, str) else None
        out.append({"index": i, "id": frame_id})
    return out


def _store(state: ServerState, device_id: int, frames: list[FrameRecord]) -> IngestResult:
    # One connection and one transaction per batch; BEGIN IMMEDIATE on SQLite (write_engine).
    with state.write_lock(), state.write_engine.begin() as connection:
        counts = ingest_store.insert_frames(
            connection, device_id=device_id, frames=frames, received_at=datetime.now(UTC)
        )
    metrics = state.metrics
    metrics.frames_ingested.inc(counts.accepted)
    metrics.frames_duplicate.inc(counts.duplicates)
    metrics.detections_ingested.inc(counts.detections)
    return IngestResult(accepted=counts.accepted, duplicates=counts.duplicates)


@router.post(
    "/ingest",
    response_model=IngestResult,
    summary="Store a batch of frame records (body: visionloop.types.IngestBatch as JSON)",
    # The body is read raw (see below); this documents it. IngestBatch joins the components in
    # visionloop.server.app.install_openapi.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/IngestBatch"}}
            },
        }
    },
    responses={
        400: {"description": "Malformed JSON"},
        413: {"description": "More frames than max_batch_frames, or a body over max_batch_bytes"},
        422: {"description": "A bad field: the batch is refused whole; bad_frames names frames"},
    },
)
async def ingest(request: Request, device: DeviceDep, state: StateDep) -> IngestResult:
    """Validate the whole batch, then store its new frames; repeated frame ids are duplicates.

    The body is read raw (size-limited before this runs, server/bodies.py) and validated by
    pydantic-core directly from bytes, which is several times faster than FastAPI's body
    parameter path. Validation and the insert run together in one worker thread: splitting them
    between the event loop and a worker made the two threads trade the GIL for every batch (40%
    slower, measured).
    """
    body = await request.body()
    return await run_in_threadpool(_parse_and_store, state, device.id, body)


def _parse_and_store(state: ServerState, device_id: int, body: bytes) -> IngestResult:
    with state.ingest_gate:
        batch = parse_batch(body, max_frames=state.settings.max_batch_frames)
        return _store(state, device_id, batch.frames)
