"""Typed dependencies, so route signatures read as prose: `async def chat(pipeline: PipelineDep)`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.config import Settings
from app.pipeline import Pipeline


def _state(request: Request) -> Any:
    return request.app.state


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
StateDep = Annotated[Any, Depends(_state)]
