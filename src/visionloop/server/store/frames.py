"""Reading frames: filtered, keyset-paginated lists (newest first), one frame with its
detections, and frame images."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.orm import Session

from visionloop.errors import InvalidInputError, NotFoundError
from visionloop.server.models import Detection, Frame


@dataclass(frozen=True, slots=True)
class FrameFilter:
    """Filters of a frame list. Class and confidence select frames having at least one detection
    that matches all of them; ``since`` is inclusive, ``until`` exclusive."""

    device_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    class_name: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    sampled: bool = False


@dataclass(frozen=True, slots=True)
class FramePage:
    frames: list[Frame]
    next_cursor: str | None


def encode_cursor(frame: Frame) -> str:
    """An opaque cursor after ``frame`` in newest-first order."""
    raw = f"{frame.captured_at.isoformat()}|{frame.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (captured_at, pk) a cursor points after. Raises InvalidInputError for a bad cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, pk = raw.split("|")
        captured_at = datetime.fromisoformat(ts)
        if captured_at.tzinfo is None:
            raise ValueError("naive time")
        return captured_at, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError("invalid cursor: pass back a next_cursor from this API") from exc


def list_frames(
    session: Session, *, where: FrameFilter, limit: int, cursor: str | None = None
) -> FramePage:
    """One page of frames, newest first (by captured_at, then arrival order)."""
    conditions: list[ColumnElement[bool]] = []
    if where.device_id is not None:
        conditions.append(Frame.device_id == where.device_id)
    if where.since is not None:
        conditions.append(Frame.captured_at >= where.since)
    if where.until is not None:
        conditions.append(Frame.captured_at < where.until)
    if where.sampled:
        conditions.append(Frame.sample_reason.is_not(None))
    det_conditions: list[ColumnElement[bool]] = []
    if where.class_name is not None:
        det_conditions.append(Detection.class_name == where.class_name)
    if where.min_confidence is not None:
        det_conditions.append(Detection.confidence >= where.min_confidence)
    if where.max_confidence is not None:
        det_conditions.append(Detection.confidence <= where.max_confidence)
    if det_conditions:
        conditions.append(exists().where(Detection.frame_pk == Frame.pk, *det_conditions))
    if cursor is not None:
        after_ts, after_pk = decode_cursor(cursor)
        conditions.append(
            or_(
                Frame.captured_at < after_ts,
                and_(Frame.captured_at == after_ts, Frame.pk < after_pk),
            )
        )
    stmt = (
        select(Frame)
        .where(*conditions)
        .order_by(Frame.captured_at.desc(), Frame.pk.desc())
        .limit(limit + 1)
    )
    frames = list(session.scalars(stmt))
    next_cursor = encode_cursor(frames[limit - 1]) if len(frames) > limit else None
    return FramePage(frames=frames[:limit], next_cursor=next_cursor)


def frame_by_id(session: Session, *, frame_id: uuid.UUID) -> Frame:
    """A frame, or NotFoundError."""
    frame = session.scalars(select(Frame).where(Frame.id == frame_id)).first()
    if frame is None:
        raise NotFoundError(f"no frame {frame_id}")
    return frame


def get_frame(session: Session, *, frame_id: uuid.UUID) -> tuple[Frame, list[Detection]]:
    """A frame and its detections (highest confidence first)."""
    frame = frame_by_id(session, frame_id=frame_id)
    detections = list(
        session.scalars(
            select(Detection)
            .where(Detection.frame_pk == frame.pk)
            .order_by(Detection.confidence.desc(), Detection.id)
        )
    )
    return frame, detections


def frame_of_device(session: Session, *, frame_id: uuid.UUID, device_id: int) -> Frame:
    """A frame that ``device_id`` sent; any other frame is 'not found' to that device."""
    frame = session.scalars(select(Frame).where(Frame.id == frame_id)).first()
    if frame is None or frame.device_id != device_id:
        raise NotFoundError(f"no frame {frame_id} from this device")
    return frame


def set_frame_image(
    session: Session, *, frame_id: uuid.UUID, sha256: str, content_type: str
) -> bool:
    """Point a frame at its stored image. False (and nothing changed) when the frame already has
    a different image: decided by the database, so two uploads racing cannot both win."""
    updated = session.execute(
        update(Frame)
        .where(
            Frame.id == frame_id,
            or_(Frame.image_sha256.is_(None), Frame.image_sha256 == sha256),
        )
        .values(image_sha256=sha256, image_content_type=content_type)
        .returning(Frame.pk)
    ).first()
    return updated is not None
