"""Ingest counters shared by every listener, exported on `/metrics`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class IngestStats:
    """Points received per protocol and lines dropped per (protocol, reason).

    Plain counters mutated from the event loop only, so no lock is needed."""

    received: Counter[str] = field(default_factory=Counter)
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add_received(self, protocol: str, count: int) -> None:
        self.received[protocol] += count

    def add_dropped(self, protocol: str, reason: str, count: int = 1) -> None:
        self.dropped[protocol, reason] += count
