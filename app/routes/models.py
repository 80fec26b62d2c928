"""`GET /v1/models` and `GET /v1/models/{id}` in OpenAI list format."""

from __future__ import annotations

from fastapi import APIRouter

from app.errors import NotFound
from app.routes.deps import PipelineDep
from app.schemas import model_dict

router = APIRouter()


@router.get("/v1/models")
async def list_models(pipeline: PipelineDep):
    models = await pipeline.router.list_models()
    return {"object": "list", "data": [model_dict(name, owner) for name, owner in models]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, pipeline: PipelineDep):
    for name, owner in await pipeline.router.list_models():
        if name == model_id:
            return model_dict(name, owner)
    raise NotFound(f"The model `{model_id}` does not exist or you do not have access to it.",
                   code="model_not_found", param="model")
