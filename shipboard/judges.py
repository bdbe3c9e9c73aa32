"""The duties that judge changes by their metrics, each on the node holding its lock: deploy
verdicts and guarded rollouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from annotations.control.db import ControlDB
from annotations.control.outbox import Outbox
from annotations.control.ticker import Ticker
from annotations.rollouts.actions import RolloutActions
from annotations.rollouts.stepping import Stepper
from annotations.verdicts.engine import VerdictEngine
from shipboard.node_lock import NodeLock
from shipboard.settings import Settings
from storage.base import StoreReader
from storage.records import NS_PER_S, Tier

ROLLOUT_TICK_S = 1.0


@contextlib.asynccontextmanager
async def judging(
    settings: Settings, db: ControlDB, store: StoreReader, tiers: Sequence[Tier], outbox: Outbox
) -> AsyncIterator[None]:
    """Deploys judged and rollouts stepped for the life of the block, on this node while it
    holds the verdicts and the rollouts locks (a verdict, a step is announced once)."""
    # A window is judged once the StatsD flush after its end has written its last points.
    grace_ns = round(2 * settings.flush_interval_s * NS_PER_S)
    async with contextlib.AsyncExitStack() as stack:
        verdicts_lease = NodeLock("verdicts", settings.control_db, settings.data_dir)
        stack.push_async_callback(asyncio.to_thread, verdicts_lease.release)
        rollouts_lease = NodeLock("rollouts", settings.control_db, settings.data_dir)
        stack.push_async_callback(asyncio.to_thread, rollouts_lease.release)
        verify_after_ns = round(settings.verify_after_s * NS_PER_S)
        await stack.enter_async_context(
            VerdictEngine(
                db, store, tiers, outbox, verify_after_ns, lease=verdicts_lease, grace_ns=grace_ns
            )
        )
        stepper = Stepper(RolloutActions(db, outbox), store, tiers, grace_ns)

        async def step_rollouts() -> None:
            await asyncio.to_thread(stepper.tick, time.time_ns())

        await stack.enter_async_context(
            Ticker("guarded rollouts", step_rollouts, ROLLOUT_TICK_S, rollouts_lease)
        )
        yield
