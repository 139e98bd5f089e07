"""Models: which version is in production, and its ONNX file (device token or signed-in person)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from visionloop.errors import NotFoundError
from visionloop.server.deps import StateDep, bearer_token, current_device, current_user
from visionloop.server.model_catalog import ModelCatalog, model_catalog
from visionloop.types import ProductionModel

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
    responses={404: {"description": "No version has the production alias yet"}},
)
def production_model(catalog: CatalogDep) -> ProductionModel:
    version = catalog.production()
    if version is None:
        raise NotFoundError(
            "no production model yet: promote one with `visionloop models promote VERSION`"
        )
    return ProductionModel(
        version=version.version,
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        download_url=f"/api/v1/models/{version.version}/onnx",
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
