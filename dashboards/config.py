"""What the dashboards take from Shipboard's settings, as plain values the root hands down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.records import Tier


@dataclass(frozen=True, slots=True)
class DashboardsConfig:
    """Where the dashboards serve and what they read (built by `shipboard`'s root)."""

    data_dir: Path  # the sign-in key and the team's own dashboard files
    control_db: str  # "" for SQLite in the data dir, or a postgresql:// URL
    tiers: tuple[Tier, ...]
    max_points: int
    host: str
    port: int
    anonymous_read: bool = False
    public_url: str = ""

    @property
    def url(self) -> str:
        """Where the dashboards are: the public URL if set, else this host's port."""
        return self.public_url or f"http://{self.host}:{self.port}"
