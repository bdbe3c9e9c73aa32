"""The verdict engine: on the node holding the verdicts lock, every second, each finished
deploy whose verdict is pending gets its due time, and once due its verdict, stored in the
deploy's `extra["verdict"]` and announced through the outbox (event `verdict`) in the same
transaction, so a restart or a takeover neither judges twice nor forgets one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Self

from annotations.control.db import ControlDB
from annotations.control.deploys import PENDING, pending_verdict
from annotations.control.errors import UnavailableError
from annotations.control.notes import (
    Annotation,
    get_annotation,
    list_annotations,
    update_annotation,
)
from annotations.control.outbox import Outbox
from annotations.control.ticker import Lease, Ticker
from annotations.verdicts.judge import judge
from storage.base import StoreReader
from storage.records import NS_PER_S, Tier

log = logging.getLogger(__name__)

TICK_S = 1.0
LOOKBACK_NS = 30 * 86_400 * NS_PER_S
"""How far back pending verdicts are looked for (a deploy's start)."""
RETRY_NS = 60 * NS_PER_S
"""How long a deploy whose judging failed waits for the next try."""


class VerdictEngine:
    """Judges deploys over `store` while in `async with`, only while this node holds `lease`
    if one is given; `verify_after_ns` is the wait of a deploy that names none. A verdict is
    reached `grace_ns` after it is due, once the points of its window's end have landed (a
    StatsD flush writes its interval's counts after it)."""

    def __init__(
        self,
        db: ControlDB,
        store: StoreReader,
        tiers: Sequence[Tier],
        outbox: Outbox,
        verify_after_ns: int,
        *,
        lease: Lease | None = None,
        grace_ns: int = 0,
        clock: Callable[[], int] = time.time_ns,
        tick_s: float = TICK_S,
    ) -> None:
        self._db = db
        self._store = store
        self._tiers = tuple(tiers)
        self._outbox = outbox
        self._verify_after_ns = verify_after_ns
        self._grace_ns = grace_ns
        self._retry_ns: dict[int, int] = {}  # deploys whose judging failed: when to try again
        self._clock = clock
        self._ticker = Ticker("deploy verdicts", self.tick, tick_s, lease)

    async def __aenter__(self) -> Self:
        await self._ticker.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._ticker.__aexit__(*exc_info)

    async def tick(self) -> None:
        """Once: due times for newly finished deploys, verdicts for due ones."""
        now_ns = self._clock()
        pending = await self._db.run(self._pending, now_ns)
        for deploy in pending:
            assert deploy.end_ns is not None
            due_ns = deploy.end_ns + self.verify_after_ns(deploy)
            if due_ns + self._grace_ns > now_ns:
                if deploy.extra["verdict"].get("due_ns") != due_ns:
                    await self._db.run(self._store_verdict, deploy.id, pending_verdict(due_ns))
                continue
            if self._retry_ns.get(deploy.id, 0) > now_ns:
                continue
            try:
                verdict = await asyncio.to_thread(
                    judge,
                    self._db,
                    self._store,
                    self._tiers,
                    deploy,
                    self.verify_after_ns(deploy),
                    now_ns,
                )
            except (UnavailableError, OSError):
                raise  # the DB or the store is away: every deploy waits for it
            except Exception:  # one deploy's failure must not hold back the others
                log.exception("deploy %d: no verdict; trying again in a minute", deploy.id)
                self._retry_ns[deploy.id] = now_ns + RETRY_NS
                continue
            await self._db.run(self._store_verdict, deploy.id, verdict)
            status = "none" if verdict is None else verdict["status"]
            log.info("deploy %d (%s): verdict %s", deploy.id, deploy.title, status)

    def verify_after_ns(self, deploy: Annotation) -> int:
        given = deploy.extra.get("verify_after_ns")
        return given if isinstance(given, int) else self._verify_after_ns

    def _pending(self, now_ns: int) -> list[Annotation]:
        found = list_annotations(
            self._db, now_ns - LOOKBACK_NS, now_ns, kinds=("deploy",), newest_first=True
        )
        return [
            d
            for d in found
            if d.end_ns is not None
            and isinstance(d.extra.get("verdict"), dict)
            and d.extra["verdict"].get("status") == PENDING
        ]

    def _store_verdict(self, deploy_id: int, verdict: dict[str, Any] | None) -> None:
        """The verdict in the deploy's extra; a final one announced in the same transaction."""
        db = self._db
        with db.transaction():
            deploy = get_annotation(db, deploy_id)
            extra = dict(deploy.extra) | {"verdict": verdict}
            update_annotation(db, deploy_id, end_ns=deploy.end_ns, extra=extra, outbox=None)
            if verdict is not None and verdict["status"] != PENDING:
                self._outbox.append(db, get_annotation(db, deploy_id), "verdict")
