"""FastAPI dependencies: typed access to the loaded runtime."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from classifier_service.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise HTTPException(status_code=503, detail="model and portfolio are not loaded yet")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
