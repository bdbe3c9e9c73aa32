"""Exposures and variant tags of the flags SDK: the datagrams it packs, and, on a real
`shipboard run`, the exposure counters it sends over UDP read back per variant through the
query API, equal to what the app evaluated."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.flags.client import Flags
from annotations.flags.exposures import MAX_DATAGRAM, datagrams, parse_address
from tests.launcher import wait_for
from tests.running import RunningShipboard

EXPERIMENT = {
    "key": "checkout",
    "environments": {
        "prod": {
            "percentage": 100,
            "variants": [{"name": "one-page", "weight": 70}, {"name": "classic", "weight": 30}],
        }
    },
}
SWITCH = {"key": "new-search", "environments": {"prod": {"percentage": 40}}}


@given(st.lists(st.binary(min_size=1, max_size=400).filter(lambda b: b"\n" not in b)))
def test_datagrams_keep_every_line_in_order_within_the_size(packed: list[bytes]) -> None:
    sent = datagrams(packed)
    assert all(len(d) <= MAX_DATAGRAM for d in sent)
    assert [line for d in sent for line in d.split(b"\n")] == packed


def test_addresses() -> None:
    assert parse_address("127.0.0.1:8125") == ("127.0.0.1", 8125)
    assert parse_address("[::1]:8125") == ("::1", 8125)
    for bad in ("8125", "host:", "host:0", "host:x", ":8125"):
        with pytest.raises(ValueError, match="not host:port"):
            parse_address(bad)


@pytest.fixture
def shipboard(tmp_path: Path) -> Iterator[RunningShipboard]:
    running = RunningShipboard(
        tmp_path / "data", ["--no-agent", "--flush-interval", "1", "--idle-flushes", "0"]
    ).start()
    try:
        for flag in (EXPERIMENT, SWITCH):
            status, body = running.post("/api/v1/flags", json.dumps(flag).encode())
            assert status == 201, body
        yield running
    finally:
        running.stop()


def _per_variant(shipboard: RunningShipboard, key: str) -> dict[str, float]:
    result = shipboard.query(
        metric="shipboard.flag.exposure.count",
        tags=f"flag:{key},environment:prod",
        agg="sum",
        group_by="variant",
        **{"from": "-10m", "step": "1h"},
    )
    return {s["tags"]["variant"]: sum(v for _, v in s["points"]) for s in result["series"]}


@pytest.mark.slow
def test_exposures_reach_shipboard_per_variant_and_tags_name_each_arm(
    shipboard: RunningShipboard,
) -> None:
    flags = Flags(
        shipboard.url,
        shipboard.token,
        "prod",
        statsd=f"127.0.0.1:{shipboard.statsd_port}",
        exposure_interval_s=0.3,
    )
    expected: dict[str, Counter[str]] = {"checkout": Counter(), "new-search": Counter()}
    try:
        assert flags.ready.is_set()
        for i in range(300):
            user = f"user-{i}"
            variant = flags.variant("checkout", user)
            assert variant is not None
            expected["checkout"][variant] += 1
            on = flags.is_enabled("new-search", user)
            expected["new-search"]["on" if on else "off"] += 1
            assert flags.tags(user) == [
                f"flag_checkout:{variant}",
                f"flag_new-search:{'on' if on else 'off'}",
            ]
        flags.is_enabled("no-such-flag", "user-1")  # unknown: no exposure, no series
    finally:
        flags.close()  # sends what the last interval had not
    assert set(expected["checkout"]) == {"one-page", "classic"}
    assert set(expected["new-search"]) == {"on", "off"}
    for key, counts in expected.items():
        want = {name: float(n) for name, n in counts.items()}
        wait_for(lambda key=key, want=want: _per_variant(shipboard, key) == want, timeout_s=20)
    assert _per_variant(shipboard, "no-such-flag") == {}
