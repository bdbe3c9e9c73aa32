"""`shipboard agent`: samples this host and pushes it to a Shipboard over line protocol."""

from __future__ import annotations

import argparse
import logging
import time

from annotations.http_client import ApiClient, ApiError
from collector.host_agent import HostSampler, to_line_protocol
from shipboard.settings import Settings

log = logging.getLogger("shipboard.agent")


def run_agent(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
    base = args.url or f"http://127.0.0.1:{settings.http_port}"
    api = ApiClient(base, settings.ingest_token, scheme="Token", timeout_s=10.0)
    sampler = HostSampler(args.host_tag)
    print(
        f"shipboard agent: sending {sampler.host} to {base} every {settings.agent_interval_s:g} s"
    )
    # Rates need two samples: prime them, so the first batch sent carries every metric.
    sampler.sample()
    time.sleep(min(settings.agent_interval_s, 1.0) if args.once else settings.agent_interval_s)
    while True:
        body = to_line_protocol(sampler.sample())
        try:
            api.request("POST", "/write", body=body, params={"precision": "ns"})
        except ApiError as error:
            log.warning("could not send to %s: %s (will retry next interval)", base, error)
            if args.once:
                return 1
        if args.once:
            return 0
        time.sleep(settings.agent_interval_s)
