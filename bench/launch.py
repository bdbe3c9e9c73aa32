"""How the local servers and the browser are started, shared by the benchmarks and the tests:
influxd's config (loopback only, no reporting, WAL fsync on every write) and headless Chromium's
flags (no network of its own, which this machine refuses anyway)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def influxd_config(home: Path, host: str, http_port: int, rpc_port: int) -> str:
    """An influxd 1.x config keeping its files under `home`, listening on `host` only."""
    return f"""reporting-enabled = false
bind-address = "{host}:{rpc_port}"
[meta]
  dir = "{home}/meta"
  logging-enabled = false
[data]
  dir = "{home}/data"
  wal-dir = "{home}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  max-values-per-tag = 0
  max-series-per-database = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "{host}:{http_port}"
  auth-enabled = false
  log-enabled = false
[continuous_queries]
  enabled = false
"""
