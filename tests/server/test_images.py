"""Frame images: upload (checked on the header, then decoded; content-addressed; never
replaced), download, and every refusal."""

from __future__ import annotations

import hashlib
import struct
import time
import uuid
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import add_device, app_state, frame_record


def _image(ext: str) -> bytes:
    rng = np.random.default_rng(0)
    ok, buf = cv2.imencode(ext, rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _blob_files(app: FastAPI) -> list[Path]:
    root = app_state(app).settings.blobs_path
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def frame_id(device_client: TestClient) -> str:
    record = frame_record(sample_reason="uncertain", width=160, height=120)  # _image()'s size
    assert device_client.post("/api/v1/ingest", json={"frames": [record]}).status_code == 200
    return str(record["id"])


@pytest.mark.parametrize(("ext", "mime"), [(".jpg", "image/jpeg"), (".png", "image/png")])
def test_upload_then_download(
    app: FastAPI,
    device_client: TestClient,
    viewer_client: TestClient,
    frame_id: str,
    ext: str,
    mime: str,
) -> None:
    data = _image(ext)
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=data)
    assert r.status_code == 200, r.text
    sha = hashlib.sha256(data).hexdigest()
    assert r.json() == {
        "frame_id": frame_id,
        "sha256": sha,
        "size_bytes": len(data),
        "content_type": mime,
    }
    assert [p.name for p in _blob_files(app)] == [sha]
    got = viewer_client.get(f"/api/v1/frames/{frame_id}/image")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == mime
    detail = viewer_client.get(f"/api/v1/frames/{frame_id}").json()
    assert detail["has_image"] is True
    assert detail["image_url"] == f"/api/v1/frames/{frame_id}/image"
    # Uploading again is harmless and stores nothing new.
    assert device_client.put(f"/api/v1/frames/{frame_id}/image", content=data).status_code == 200
    assert len(_blob_files(app)) == 1


def _assert_no_image(app: FastAPI, viewer_client: TestClient, frame_id: str) -> None:
    assert _blob_files(app) == []
    assert viewer_client.get(f"/api/v1/frames/{frame_id}").json()["has_image"] is False
    assert viewer_client.get(f"/api/v1/frames/{frame_id}/image").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"hello, not an image", 415),
        (b"GIF89a" + b"\x00" * 100, 415),
        (b"", 415),
        (_image(".jpg")[:200], 422),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 422),
    ],
    ids=["text", "gif", "empty", "truncated-jpeg", "broken-png"],
)
def test_not_an_image_is_refused(
    app: FastAPI,
    device_client: TestClient,
    viewer_client: TestClient,
    frame_id: str,
    body: bytes,
    status: int,
) -> None:
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    _assert_no_image(app, viewer_client, frame_id)


def test_image_over_the_limit_is_413(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient, frame_id: str
) -> None:
    body = b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024)
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=body)
    assert r.status_code == 413, r.text
    _assert_no_image(app, viewer_client, frame_id)


def test_image_for_an_unknown_frame_is_404(app: FastAPI, device_client: TestClient) -> None:
    r = device_client.put(f"/api/v1/frames/{uuid.uuid4()}/image", content=_image(".jpg"))
    assert r.status_code == 404
    assert _blob_files(app) == []


def test_image_for_another_devices_frame_is_404(
    app: FastAPI, viewer_client: TestClient, frame_id: str
) -> None:
    other = add_device(app, "cam2")
    with TestClient(app, headers=other.headers) as c:
        r = c.put(f"/api/v1/frames/{frame_id}/image", content=_image(".jpg"))
    assert r.status_code == 404
    _assert_no_image(app, viewer_client, frame_id)


def test_image_needs_a_device_token(
    app: FastAPI, client: TestClient, viewer_client: TestClient, frame_id: str
) -> None:
    assert client.put(f"/api/v1/frames/{frame_id}/image", content=_image(".jpg")).status_code == 401
    _assert_no_image(app, viewer_client, frame_id)


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG (under 100 bytes) whose header declares ``width`` x ``height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _sampled_frame(device_client: TestClient, width: int, height: int) -> str:
    record = frame_record(sample_reason="audit", width=width, height=height)
    assert device_client.post("/api/v1/ingest", json={"frames": [record]}).status_code == 200
    return str(record["id"])


def test_a_png_declaring_30000x30000_is_refused_before_decoding(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient, frame_id: str
) -> None:
    bomb = _png_declaring(30000, 30000)
    assert len(bomb) < 100
    started = time.perf_counter()
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=bomb)
    assert time.perf_counter() - started < 2.0  # decoding 2.7 GB of pixels would take far longer
    assert r.status_code in (413, 422), r.text
    assert "pixels" in r.json()["detail"] or "30000x30000" in r.json()["detail"]
    _assert_no_image(app, viewer_client, frame_id)


def test_an_image_over_40_mp_is_413_even_at_the_frames_size(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient
) -> None:
    frame_id = _sampled_frame(device_client, 16384, 16384)
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=_png_declaring(16384, 16384))
    assert r.status_code == 413, r.text
    assert "40,000,000" in r.json()["detail"]
    _assert_no_image(app, viewer_client, frame_id)


@pytest.mark.parametrize(("width", "height"), [(320, 240), (160, 121), (120, 160)])
def test_image_must_be_the_frames_size(
    app: FastAPI,
    device_client: TestClient,
    viewer_client: TestClient,
    frame_id: str,
    width: int,
    height: int,
) -> None:
    ok, buf = cv2.imencode(".png", np.zeros((height, width, 3), np.uint8))
    assert ok
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=buf.tobytes())
    assert r.status_code == 422, r.text
    assert f"{width}x{height}" in r.json()["detail"] and "160x120" in r.json()["detail"]
    _assert_no_image(app, viewer_client, frame_id)


def test_a_frame_that_was_not_sampled_takes_no_image(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient
) -> None:
    record = frame_record(sample_reason=None, width=160, height=120)
    assert device_client.post("/api/v1/ingest", json={"frames": [record]}).status_code == 200
    r = device_client.put(f"/api/v1/frames/{record['id']}/image", content=_image(".jpg"))
    assert r.status_code == 422, r.text
    assert "not sampled" in r.json()["detail"]
    _assert_no_image(app, viewer_client, str(record["id"]))


def test_a_stored_image_is_never_replaced(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient, frame_id: str
) -> None:
    first = _image(".jpg")
    assert device_client.put(f"/api/v1/frames/{frame_id}/image", content=first).status_code == 200
    again = device_client.put(f"/api/v1/frames/{frame_id}/image", content=first)
    assert again.status_code == 200
    assert again.json()["sha256"] == hashlib.sha256(first).hexdigest()
    other = _image(".png")
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=other)
    assert r.status_code == 409, r.text
    assert "already has a different image" in r.json()["detail"]
    assert viewer_client.get(f"/api/v1/frames/{frame_id}/image").content == first
    assert len(_blob_files(app)) == 1


def test_the_database_decides_a_race_between_two_images(app: FastAPI, frame_id: str) -> None:
    # Two uploads that both passed the read check: only the first write wins.
    from visionloop.server.store import frames as frame_store

    state = app_state(app)
    fid = uuid.UUID(frame_id)
    with state.write_sessions() as s, s.begin():
        assert frame_store.set_frame_image(
            s, frame_id=fid, sha256="a" * 64, content_type="image/png"
        )
    with state.write_sessions() as s, s.begin():
        assert frame_store.set_frame_image(
            s, frame_id=fid, sha256="a" * 64, content_type="image/png"
        )
        assert not frame_store.set_frame_image(
            s, frame_id=fid, sha256="b" * 64, content_type="image/png"
        )


def test_a_broken_png_is_422_with_ultralytics_loaded(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient, frame_id: str
) -> None:
    """Ultralytics replaces PIL.Image.open in-process (it retries unknown files through a HEIF
    plugin it would download): the header check must not depend on it."""
    pytest.importorskip("ultralytics.utils.patches")
    body = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=body)
    assert r.status_code == 422, r.text
    _assert_no_image(app, viewer_client, frame_id)
