"""The OpenAPI document: raw-body routes (ingest, images) still document their request bodies."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from visionloop.types import IngestBatch


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """``node`` with every ``$ref`` into this document replaced by its target (recursively)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            target: Any = doc
            for part in ref[2:].split("/"):
                target = target[part]
            return _resolve(doc, target)
        return {k: _resolve(doc, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(doc, v) for v in node]
    return node


def test_ingest_documents_its_request_body(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/api/v1/ingest"]["post"]["requestBody"]
    assert body["required"] is True
    schema = _resolve(doc, body["content"]["application/json"]["schema"])
    assert schema["required"] == ["frames"]
    frame = schema["properties"]["frames"]["items"]
    assert set(frame["required"]) >= {"id", "captured_at", "width", "height", "stats", "detections"}
    assert frame["properties"]["captured_at"]["format"] == "date-time"
    assert frame["additionalProperties"] is False
    detection = frame["properties"]["detections"]["items"]
    assert detection["properties"]["xyxyn"]["maxItems"] == 4
    # The same schema pydantic validates ingest with, and no other model took one of its names.
    own = IngestBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in own.pop("$defs").items():
        assert doc["components"]["schemas"][name] == definition, name
    assert doc["components"]["schemas"]["IngestBatch"] == own


def test_image_upload_documents_its_media_types(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/api/v1/frames/{frame_id}/image"]["put"]["requestBody"]
    assert set(body["content"]) == {"image/jpeg", "image/png"}
    for media in body["content"].values():
        assert media["schema"] == {"type": "string", "format": "binary"}


def test_every_ref_in_the_document_resolves(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    _resolve(doc, doc["paths"])  # a dangling $ref raises KeyError
