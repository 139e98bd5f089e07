"""Frame images: upload (checked, content-addressed), download, and every refusal."""

from __future__ import annotations

import hashlib
import uuid
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
