"""Frames: the filtered list, one frame with its detections, and frame images."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from visionloop.errors import InvalidInputError, NotFoundError, UnsupportedMediaError
from visionloop.server.bodies import read_limited
from visionloop.server.deps import CurrentUser, DeviceDep, SessionDep, StateDep
from visionloop.server.models import Detection, Frame
from visionloop.server.schemas import DetectionOut, FrameDetail, FrameOut, FramePageOut, ImageStored
from visionloop.server.state import ServerState
from visionloop.server.store import frames as frame_store
from visionloop.server.store import labeling as labeling_store
from visionloop.types import FrameStats

router = APIRouter(tags=["frames"])

MAX_PAGE = 500
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def frame_out(frame: Frame) -> FrameOut:
    return FrameOut(
        id=frame.id,
        device_id=frame.device_id,
        captured_at=frame.captured_at,
        received_at=frame.received_at,
        model_version=frame.model_version,
        width=frame.width,
        height=frame.height,
        stats=FrameStats(
            brightness=frame.brightness, contrast=frame.contrast, sharpness=frame.sharpness
        ),
        sample_reason=frame.sample_reason,
        detection_count=frame.detection_count,
        max_confidence=frame.max_confidence,
        has_image=frame.image_sha256 is not None,
    )


def _detection_out(d: Detection) -> DetectionOut:
    return DetectionOut(
        class_id=d.class_id,
        class_name=d.class_name,
        confidence=d.confidence,
        xyxyn=(d.x1, d.y1, d.x2, d.y2),
    )


@router.get("/frames", response_model=FramePageOut, summary="List frames, newest first")
def list_frames(
    session: SessionDep,
    _user: CurrentUser,
    device_id: Annotated[int | None, Query(description="Only this device's frames.")] = None,
    since: Annotated[datetime | None, Query(description="Captured at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Captured before (ISO 8601).")] = None,
    class_name: Annotated[
        str | None, Query(max_length=64, description="Frames with a detection of this class.")
    ] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    sampled: Annotated[bool, Query(description="Only frames sampled for upload.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the last page.")
    ] = None,
) -> FramePageOut:
    """Frames matching every given filter. Class and confidence bounds select frames with at least
    one detection meeting all of them. Pages are keyset-paginated: follow ``next_cursor``."""
    for name, ts in (("since", since), ("until", until)):
        if ts is not None and ts.tzinfo is None:
            raise InvalidInputError(f"{name} needs a time zone, e.g. 2026-11-26T10:00:00Z")
    where = frame_store.FrameFilter(
        device_id=device_id,
        since=since,
        until=until,
        class_name=class_name,
        min_confidence=min_confidence,
        max_confidence=max_confidence,
        sampled=sampled,
    )
    page = frame_store.list_frames(session, where=where, limit=limit, cursor=cursor)
    return FramePageOut(items=[frame_out(f) for f in page.frames], next_cursor=page.next_cursor)


@router.get(
    "/frames/{frame_id}", response_model=FrameDetail, summary="One frame and its detections"
)
def get_frame(frame_id: uuid.UUID, session: SessionDep, _user: CurrentUser) -> FrameDetail:
    frame, detections = frame_store.get_frame(session, frame_id=frame_id)
    return FrameDetail(
        **frame_out(frame).model_dump(),
        detections=[_detection_out(d) for d in detections],
        image_url=f"/api/v1/frames/{frame.id}/image" if frame.image_sha256 else None,
    )


def _sniff(data: bytes) -> str:
    if data.startswith(_JPEG_MAGIC):
        return "image/jpeg"
    if data.startswith(_PNG_MAGIC):
        return "image/png"
    raise UnsupportedMediaError("a frame image must be a JPEG or PNG file")


def _check_decodes(data: bytes) -> None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InvalidInputError("the image could not be decoded (truncated or corrupt)")


def _store_image(
    state: ServerState, frame_id: uuid.UUID, device_id: int, data: bytes
) -> ImageStored:
    content_type = _sniff(data)
    with state.read_sessions() as session:
        frame_store.frame_of_device(session, frame_id=frame_id, device_id=device_id)
    _check_decodes(data)
    key = state.blobs.put(data)
    with state.write_lock(), state.write_sessions() as session, session.begin():
        frame_store.set_frame_image(
            session, frame_id=frame_id, sha256=key, content_type=content_type
        )
        labeling_store.queue_sampled_frame(
            session, frame_id=frame_id, image=data, strategy=state.settings.labeling_strategy
        )
    return ImageStored(
        frame_id=frame_id, sha256=key, size_bytes=len(data), content_type=content_type
    )


@router.put(
    "/frames/{frame_id}/image",
    response_model=ImageStored,
    summary="Upload a sampled frame's image (raw JPEG or PNG body)",
)
async def put_frame_image(
    frame_id: uuid.UUID, request: Request, device: DeviceDep, state: StateDep
) -> ImageStored:
    """The body is the image file itself. It is decoded before it is stored (not an image: 415;
    an image that does not decode: 422) and kept under its content hash. Uploading again is
    harmless. The frame must have been ingested by the same device first (404 otherwise)."""
    data = await read_limited(request, state.settings.max_image_bytes, what="an image")
    return await run_in_threadpool(_store_image, state, frame_id, device.id, data)


@router.get(
    "/frames/{frame_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
    summary="A frame's image",
)
def get_frame_image(
    frame_id: uuid.UUID, session: SessionDep, state: StateDep, _user: CurrentUser
) -> Response:
    frame = frame_store.frame_by_id(session, frame_id=frame_id)
    if frame.image_sha256 is None or frame.image_content_type is None:
        raise NotFoundError(f"frame {frame_id} has no image")
    data = state.blobs.get(frame.image_sha256)
    return Response(
        content=data,
        media_type=frame.image_content_type,
        headers={"ETag": f'"{frame.image_sha256}"', "Cache-Control": "private, max-age=3600"},
    )
