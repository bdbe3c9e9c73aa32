"""Exposure counts of the flags SDK, sent to StatsD as counters from a background thread.

Each evaluation of a known flag counts one exposure of its (flag, variant, environment), the
variant being the variant's name, or `on`/`off` for a flag without variants (and `off` for a
user the flag is off for). Every `interval_s` the counts since the last send go out over UDP as
`shipboard.flag.exposure:<n>|c|#flag:<key>,variant:<variant>,environment:<env>`, several lines
to a datagram; `close()` sends what is left. A send that fails is logged and its counts dropped
(StatsD over UDP is lossy by nature; an app must not stall or grow for it).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter

from annotations.flags.bucketing import Evaluation

EXPOSURE_METRIC = "shipboard.flag.exposure"
MAX_DATAGRAM = 1432  # fits one Ethernet frame's UDP payload, as DogStatsD clients keep to

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # flag, variant, environment


def arm(evaluation: Evaluation) -> str:
    """The variant tag of an evaluation: the variant's name, else `on` or `off`."""
    if evaluation.variant is not None:
        return evaluation.variant
    return "on" if evaluation.enabled else "off"


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` (`[::1]:8125` for IPv6) as (host, port); ValueError if it is not one."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"statsd address {address!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


def lines(counts: Counter[Key]) -> list[bytes]:
    """One StatsD counter line per (flag, variant, environment)."""
    return [
        f"{EXPOSURE_METRIC}:{n}|c|#flag:{flag},variant:{variant},environment:{env}".encode()
        for (flag, variant, env), n in sorted(counts.items())
    ]


def datagrams(packed: list[bytes]) -> list[bytes]:
    """The lines joined by newlines into datagrams of at most MAX_DATAGRAM bytes."""
    out: list[bytes] = []
    current = b""
    for line in packed:
        if current and len(current) + 1 + len(line) > MAX_DATAGRAM:
            out.append(current)
            current = b""
        current = line if not current else current + b"\n" + line
    return [*out, current] if current else out


class ExposureSender:
    """Counts exposures and sends them to the StatsD at `address` every `interval_s`."""

    def __init__(self, address: str, interval_s: float = 5.0) -> None:
        host, port = parse_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._target = (host, port)
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._interval_s = interval_s
        self._counts: Counter[Key] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="shipboard-flag-exposures", daemon=True
        )
        self._thread.start()

    def count(self, evaluation: Evaluation) -> None:
        key = (evaluation.key, arm(evaluation), evaluation.environment)
        with self._lock:
            self._counts[key] += 1

    def flush(self) -> int:
        """Send the counts since the last flush now; the number of datagrams sent."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        sent = 0
        for datagram in datagrams(lines(counts)):
            try:
                self._socket.sendto(datagram, self._target)
                sent += 1
            except OSError as error:
                log.warning("flag exposures not sent to %s:%d: %s", *self._target, error)
        return sent

    def close(self) -> None:
        """Stop the thread and send what is left."""
        self._stop.set()
        self._thread.join(self._interval_s + 1)
        self.flush()
        self._socket.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()
