"""The periodic rollout check inside a served app: guardrails are judged (and a look of the
sequential test recorded) every ``Settings.rollout_check_s`` seconds (environment
``DOCTORAI_BACKEND_ROLLOUT_CHECK_S``, default hourly, 0 = off) even when nobody opens a report.
``serve`` runs it with :func:`backend.background.attach`.

Every process may run it: enforcement locks the rollout's row and re-reads its status, so two
processes that see the same breach act once, and extra looks do not hurt an always-valid test.
"""

from __future__ import annotations

import asyncio
import logging

from backend.deps import BackendState
from backend.rollout_monitor import check_rollouts

logger = logging.getLogger("doctorai.backend.rollout")


async def check_periodically(st: BackendState) -> None:
    """Run ``check_rollouts`` every ``rollout_check_s`` seconds (settings; 0 turns it off) off
    the event loop; failures are logged and the next round tries again."""
    period = st.settings.rollout_check_s
    if period <= 0:
        return
    while True:
        await asyncio.sleep(period)
        try:
            actions = await asyncio.to_thread(check_rollouts, st.sessions, st.repo)
        except Exception:  # the loop must survive anything (a database fail-over)
            logger.exception("rollout check failed")
            continue
        acted = {rid: a for rid, a in actions.items() if a}
        if acted:
            logger.warning("rollout check acted: %s", acted)
