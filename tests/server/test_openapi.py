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


def test_each_operation_documents_the_errors_it_can_answer(client: TestClient) -> None:
    """Issue 20, finding 9: 401/403 where credentials are needed, 404 where a path names a
    thing, 400/403/409/413 where a body is sent; each with the ``{"detail"}`` error body."""
    doc = client.get("/openapi.json").json()
    open_routes = {
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    }
    checked = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if (method, path) not in open_routes and path != "/metrics":
                assert {"401", "403"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if method in ("post", "put", "patch", "delete"):
                assert {"400", "403", "409", "413"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith("4") and status != "422":
                    schema = response["content"]["application/json"]["schema"]
                    assert "detail" in _resolve(doc, schema)["properties"], (method, path)
            checked += 1
    assert checked >= 40
