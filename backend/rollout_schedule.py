"""The periodic rollout check inside a served app: guardrails are judged (and a look of the
sequential test recorded) every ``every_s`` seconds even when nobody opens a report.

Every process may run it: enforcement locks the rollout's row and re-reads its status, so two
processes that see the same breach act once, and extra looks do not hurt an always-valid test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from backend.rollout_monitor import check_rollouts

logger = logging.getLogger("doctorai.backend.rollout")
ENV_EVERY = "DOCTORAI_BACKEND_ROLLOUT_CHECK_S"
DEFAULT_EVERY_S = 3600.0


def check_every_s() -> float:
    """Seconds between checks from ``DOCTORAI_BACKEND_ROLLOUT_CHECK_S`` (0 turns it off)."""
    raw = os.environ.get(ENV_EVERY, "")
    try:
        return float(raw) if raw else DEFAULT_EVERY_S
    except ValueError:
        logger.warning(
            "%s=%r is not a number; checking every %s s", ENV_EVERY, raw, DEFAULT_EVERY_S
        )
        return DEFAULT_EVERY_S


async def check_periodically(st: Any, every_s: float) -> None:
    """Run ``check_rollouts`` every ``every_s`` seconds off the event loop; failures are
    logged and the next round tries again."""
    if every_s <= 0:
        return
    while True:
        await asyncio.sleep(every_s)
        try:
            actions = await asyncio.to_thread(check_rollouts, st.sessions, st.repo)
        except Exception:  # the loop must survive anything (a database fail-over)
            logger.exception("rollout check failed")
            continue
        acted = {rid: a for rid, a in actions.items() if a}
        if acted:
            logger.warning("rollout check acted: %s", acted)


def attach(app: FastAPI, every_s: float | None = None) -> FastAPI:
    """Run :func:`check_periodically` for as long as ``app`` serves (inside its lifespan)."""
    inner = app.router.lifespan_context
    period = check_every_s() if every_s is None else every_s

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            task = asyncio.create_task(check_periodically(a.state.backend, period))
            try:
                yield state
            finally:
                task.cancel()

    app.router.lifespan_context = lifespan
    return app
