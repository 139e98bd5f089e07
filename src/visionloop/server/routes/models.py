"""Models: which version is in production and its ONNX file (device token or signed-in person);
every version with its gate report (viewer); promote and roll back (admin, with a reason)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from visionloop.errors import NotFoundError
from visionloop.monitoring.profile import reference_words
from visionloop.server.deps import (
    AdminUser,
    CurrentUser,
    StateDep,
    bearer_token,
    current_device,
    current_user,
)
from visionloop.server.model_catalog import ModelCatalog, model_catalog
from visionloop.server.schemas import ModelVersionOut, PromoteRequest, RollbackRequest
from visionloop.types import Int8Artifact, ProductionModel

if TYPE_CHECKING:
    from visionloop.training.registry import ModelVersion

router = APIRouter(tags=["models"])

CatalogDep = Annotated[ModelCatalog, Depends(model_catalog)]


def device_or_person(request: Request, state: StateDep) -> None:
    """Admit an enabled device (bearer token) or any signed-in person (viewer and up)."""
    if bearer_token(request) is not None:
        current_device(request, state)
    else:
        current_user(request, state)


Reader = Depends(device_or_person)


@router.get(
    "/models/production",
    response_model=ProductionModel,
    dependencies=[Reader],
    summary="The production model: version, sha256, size and where to download it",
    responses={
        404: {"description": "No version has the production alias yet"},
        503: {"description": "The model registry is starting or unreachable; retry later"},
    },
)
def production_model(catalog: CatalogDep) -> ProductionModel:
    # Edge agents poll this and retry a 503: none waits while the server opens the registry.
    version = catalog.production(wait=False)
    if version is None:
        raise NotFoundError(
            "no production model yet: promote one with `visionloop models promote VERSION`"
        )
    return ProductionModel(
        version=version.version,
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        download_url=f"/api/v1/models/{version.version}/onnx",
        int8=_int8(version),
    )


def _int8(version: ModelVersion) -> Int8Artifact | None:
    """The version's INT8 artifact as its tags describe it (``visionloop models quantize``)."""
    tags = version.tags
    if not tags.get("int8_sha256"):
        return None

    def number(key: str) -> float | None:
        try:
            return float(tags[key])
        except (KeyError, ValueError):
            return None

    return Int8Artifact(
        sha256=tags["int8_sha256"],
        size_bytes=int(number("int8_size_bytes") or 0),
        download_url=f"/api/v1/models/{version.version}/int8",
        accepted=tags.get("int8_accepted") == "true",
        map50_fp32=number("int8_map50_fp32"),
        map50_int8=number("int8_map50_int8"),
    )


@router.get(
    "/models/{version}/onnx",
    dependencies=[Reader],
    response_class=FileResponse,
    summary="The ONNX file of a registered version (ETag: its sha256)",
    responses={404: {"description": "No such version"}},
)
def model_onnx(version: str, catalog: CatalogDep) -> FileResponse:
    found, path = catalog.version_file(version)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"visionloop-detector-v{found.version}.onnx",
        headers={"ETag": f'"{found.sha256}"', "X-Model-Sha256": found.sha256},
    )


@router.get(
    "/models/{version}/int8",
    dependencies=[Reader],
    response_class=FileResponse,
    summary="The INT8 OpenVINO model of a version (a tar of model.xml, model.bin, int8.json)",
    responses={404: {"description": "No such version, or it was never quantized"}},
)
def model_int8(version: str, catalog: CatalogDep) -> FileResponse:
    found, path = catalog.int8_file(version)
    sha = found.tags.get("int8_sha256", "")
    return FileResponse(
        path,
        media_type="application/x-tar",
        filename=f"visionloop-detector-v{found.version}-int8.tar",
        headers={"ETag": f'"{sha}"', "X-Model-Sha256": sha},
    )


def version_out(version: ModelVersion, versions: list[ModelVersion]) -> ModelVersionOut:
    """A registry version as the API shows it (the gate report parsed from its tag; its drift
    reference in words, from every version's profile and promotions)."""
    gate = None
    raw = version.tags.get("gate")
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        gate = parsed if isinstance(parsed, dict) else None
    passed = version.tags.get("gate_passed")
    job = version.tags.get("train_job_id", "")
    return ModelVersionOut(
        version=version.version,
        aliases=version.aliases,
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        metrics=version.metrics,
        gate=gate,
        gate_passed=None if passed is None else passed == "true",
        created_at=version.created_at,
        description=version.description,
        train_job_id=int(job) if job.isdigit() else None,
        drift_reference=reference_words(version, versions),
        tags={k: v for k, v in version.tags.items() if k != "gate"},
    )


@router.get(
    "/models",
    response_model=list[ModelVersionOut],
    summary="Every registered version, newest first, with aliases, metrics and gate verdict",
)
def list_models(catalog: CatalogDep, _user: CurrentUser) -> list[ModelVersionOut]:
    versions = catalog.versions()
    return [version_out(v, versions) for v in reversed(versions)]


@router.post(
    "/models/{version}/promote",
    response_model=ModelVersionOut,
    summary="Point an alias (production) at a version (admin; a failed gate needs force)",
    responses={404: {"description": "No such version"}, 409: {"description": "Gate failed"}},
)
def promote_model(
    version: str, body: PromoteRequest, catalog: CatalogDep, admin: AdminUser
) -> ModelVersionOut:
    """Records who (the signed-in admin) and why on the version; ``force`` promotes a version
    whose promotion gate failed, and that is recorded too (``<alias>.forced``)."""
    promoted = catalog.promote(
        version, alias=body.alias, by=admin.name, reason=body.reason, force=body.force
    )
    return version_out(promoted, catalog.versions())


@router.post(
    "/models/rollback",
    response_model=ModelVersionOut,
    summary="Move an alias (production) back to the version it held before (admin)",
    responses={409: {"description": "Nothing earlier to roll back to"}},
)
def rollback_model(body: RollbackRequest, catalog: CatalogDep, admin: AdminUser) -> ModelVersionOut:
    back = catalog.rollback(alias=body.alias, by=admin.name, reason=body.reason)
    return version_out(back, catalog.versions())
