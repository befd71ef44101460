"""Periodic work that runs for as long as a served app does, attached from outside the app
factory: ``serve`` (backend.cli) wraps every worker's app with retention and the rollout check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import FastAPI

from backend.deps import BackendState

#: a background job: given the app's state, runs until cancelled
Job = Callable[[BackendState], Coroutine[Any, Any, None]]


def attach(app: FastAPI, job: Job) -> FastAPI:
    """Run ``job(app.state.backend)`` as a task inside ``app``'s lifespan (started once the
    app's own start-up is done, cancelled before its shut-down); returns ``app``."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            task = asyncio.create_task(job(a.state.backend))
            try:
                yield state
            finally:
                task.cancel()

    app.router.lifespan_context = lifespan
    return app
