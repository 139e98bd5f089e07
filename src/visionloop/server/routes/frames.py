"""Frames: the filtered list, one frame with its detections, and frame images."""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Query, Request, Response
from PIL import JpegImagePlugin, PngImagePlugin
from starlette.concurrency import run_in_threadpool

from visionloop.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaError,
)
from visionloop.server.deps import INT32_MAX, CurrentUser, DeviceDep, SessionDep, StateDep
from visionloop.server.models import Detection, Frame
from visionloop.server.schemas import DetectionOut, FrameDetail, FrameOut, FramePageOut, ImageStored
from visionloop.server.state import ServerState
from visionloop.server.store import frames as frame_store
from visionloop.server.store import labeling as labeling_store
from visionloop.types import CAPTURED_AT_MAX, CAPTURED_AT_MIN, FrameStats, IsoDatetime

router = APIRouter(tags=["frames"])

MAX_PAGE = 500
MAX_IMAGE_PIXELS = 40_000_000
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_HEADER_READERS = {
    "image/jpeg": JpegImagePlugin.JpegImageFile,
    "image/png": PngImagePlugin.PngImageFile,
}


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
        source_index=frame.source_index,
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
    device_id: Annotated[
        int | None, Query(ge=1, le=INT32_MAX, description="Only this device's frames.")
    ] = None,
    since: Annotated[
        IsoDatetime | None, Query(description="Captured at or after (ISO 8601).")
    ] = None,
    until: Annotated[IsoDatetime | None, Query(description="Captured before (ISO 8601).")] = None,
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
        if ts is None:
            continue
        if ts.tzinfo is None:
            raise InvalidInputError(f"{name} needs a time zone, e.g. 2026-11-26T10:00:00Z")
        if not CAPTURED_AT_MIN <= ts <= CAPTURED_AT_MAX:
            raise InvalidInputError(f"{name} must lie between 1970-01-01 and 2100-01-01 (UTC)")
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


def _declared_size(data: bytes, content_type: str) -> tuple[int, int]:
    """(width, height) from the image's header; nothing is decoded. The format's own Pillow class
    reads it, not ``Image.open``, which other libraries patch in-process (Ultralytics does)."""
    try:
        with _HEADER_READERS[content_type](io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as exc:  # what Pillow raises for a broken header
        raise InvalidInputError(
            "the image header could not be read (truncated or corrupt)"
        ) from exc
    return width, height


def _check_decodes(data: bytes) -> None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InvalidInputError("the image could not be decoded (truncated or corrupt)")


def _check_fits(frame: Frame, size_wh: tuple[int, int]) -> None:
    """The image must be the frame the record describes: same width and height, at most
    MAX_IMAGE_PIXELS. Checked on the header, before a pixel is decoded."""
    width, height = size_wh
    if frame.sample_reason is None:
        raise InvalidInputError(
            f"frame {frame.id} was not sampled (no sample_reason): it takes no image"
        )
    if (width, height) != (frame.width, frame.height):
        raise InvalidInputError(
            f"the image is {width}x{height} but frame {frame.id} is "
            f"{frame.width}x{frame.height}: send the frame's own image"
        )
    if width * height > MAX_IMAGE_PIXELS:
        raise PayloadTooLargeError(
            f"the image has {width * height:,} pixels, over the limit of {MAX_IMAGE_PIXELS:,}"
        )


def _store_image(
    state: ServerState, frame_id: uuid.UUID, device_id: int, data: bytes
) -> ImageStored:
    content_type = _sniff(data)
    with state.read_sessions() as session:
        frame = frame_store.frame_of_device(session, frame_id=frame_id, device_id=device_id)
    _check_fits(frame, _declared_size(data, content_type))
    sha256 = hashlib.sha256(data).hexdigest()
    stored = ImageStored(
        frame_id=frame_id, sha256=sha256, size_bytes=len(data), content_type=content_type
    )
    if frame.image_sha256 == sha256:
        return stored  # the same image again: nothing to do
    if frame.image_sha256 is not None:
        raise _image_conflict(frame_id)
    _check_decodes(data)
    state.blobs.put(data)
    with state.write_lock(), state.write_sessions() as session, session.begin():
        if not frame_store.set_frame_image(
            session, frame_id=frame_id, sha256=sha256, content_type=content_type
        ):
            raise _image_conflict(frame_id)
        labeling_store.queue_sampled_frame(
            session,
            frame_id=frame_id,
            image=data,
            strategy=state.settings.labeling_strategy,
            hygiene=labeling_store.QueueHygiene.from_settings(state.settings),
        )
    return stored


def _image_conflict(frame_id: uuid.UUID) -> ConflictError:
    return ConflictError(
        f"frame {frame_id} already has a different image; images are never replaced"
    )


@router.put(
    "/frames/{frame_id}/image",
    response_model=ImageStored,
    summary="Upload a sampled frame's image (raw JPEG or PNG body)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("image/jpeg", "image/png")
            },
        }
    },
    responses={
        404: {"description": "No such frame from this device"},
        409: {"description": "The frame already has a different image"},
        413: {"description": "Over max_image_bytes, or over 40 MP"},
        415: {"description": "Not a JPEG or PNG file"},
        422: {"description": "Not the frame's size, the frame was not sampled, or corrupt"},
    },
)
async def put_frame_image(
    frame_id: uuid.UUID, request: Request, device: DeviceDep, state: StateDep
) -> ImageStored:
    """The body is the image file itself (at most ``max_image_bytes``), a JPEG or PNG (415
    otherwise). The frame must have been ingested by the same device first (404 otherwise) with
    a ``sample_reason`` (422 otherwise). The image's header is read before anything is decoded:
    its width and height must be the frame's (422), at most 40 MP (413). Then it is decoded (422
    if it does not) and kept under its content hash. The same image again is a 200; a different
    one for a frame that has an image is a 409: a stored image is never replaced."""
    data = await request.body()
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
