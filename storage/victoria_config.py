"""Where VictoriaMetrics is: one single-node URL, or a cluster's vminsert and vmselect URLs and
a tenant, and the path of each API Shipboard calls on either.

A single node serves everything under its root (`http://vm:8428/api/v1/import`). A cluster
splits writes and reads and names the tenant in the path (`accountID` or `accountID:projectID`):

    vminsert  <insert>/insert/<tenant>/prometheus/api/v1/import
    vmselect  <select>/select/<tenant>/prometheus/api/v1/{export,query_range,series,labels,...}

A cluster has no `/internal/force_flush` on vminsert (its vmstorage nodes hold the buffers), so
`flush_url` is None there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TENANT = re.compile(r"^[0-9]{1,10}(:[0-9]{1,10})?$")


@dataclass(frozen=True, slots=True)
class VictoriaConfig:
    """A single node (`url`) or a cluster (`insert_url`, `select_url`, `tenant`)."""

    url: str = ""
    insert_url: str = ""
    select_url: str = ""
    tenant: str = "0"
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.url and (self.insert_url or self.select_url):
            raise ValueError("give --vm-url (single node) or --vm-insert-url and --vm-select-url")
        if not self.url and not (self.insert_url and self.select_url):
            raise ValueError(
                "VictoriaMetrics needs --vm-url (single node) or both --vm-insert-url and"
                " --vm-select-url (a cluster)"
            )
        if not _TENANT.match(self.tenant):
            raise ValueError(
                f"--vm-tenant must be accountID or accountID:projectID, not {self.tenant!r}"
            )
        for name in ("url", "insert_url", "select_url"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                raise ValueError(f"the VictoriaMetrics {name} must be http(s)://..., not {value!r}")

    @property
    def cluster(self) -> bool:
        return not self.url

    @property
    def import_url(self) -> str:
        """Where JSON-lines imports go."""
        if self.cluster:
            return f"{_root(self.insert_url)}/insert/{self.tenant}/prometheus/api/v1/import"
        return f"{_root(self.url)}/api/v1/import"

    def read_url(self, api: str) -> str:
        """The URL of a Prometheus-style read API: `export`, `query_range`, `series`, ..."""
        if self.cluster:
            return f"{_root(self.select_url)}/select/{self.tenant}/prometheus/api/v1/{api}"
        return f"{_root(self.url)}/api/v1/{api}"

    @property
    def flush_url(self) -> str | None:
        """Makes buffered writes searchable at once (single node only)."""
        return None if self.cluster else f"{_root(self.url)}/internal/force_flush"


def _root(url: str) -> str:
    return url.rstrip("/")
