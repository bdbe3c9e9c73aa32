"""The flags SDK: polls the snapshot in a background thread and evaluates flags locally.

    flags = Flags("http://shipboard:8080", token, "prod", statsd="127.0.0.1:8125")
    if flags.is_enabled("new-search", user.id, groups=user.groups): ...
    limit = flags.value("search.max_results", user.id, default=20)
    statsd.increment("checkout.done", tags=flags.tags(user.id, user.groups))
    flags.close()

Evaluation uses `annotations.flags.bucketing`, the server's own rules, so a user gets the same
answer from the SDK as from `/evaluate`. Polls send `If-None-Match`, so an unchanged state costs
a 304. When the server cannot be reached the last good snapshot keeps being served; an unknown
flag (or no snapshot yet) is off.

With `statsd="host:port"`, every evaluation of a known flag counts an exposure, sent as the
StatsD counter `shipboard.flag.exposure` (tags flag, variant, environment) every
`exposure_interval_s` and on close (`annotations.flags.exposures`). `tags(user)` gives the
DogStatsD tags `flag_<key>:<variant>` (or `on`/`off` without variants) of every flag, for the
app's own metrics; it counts no exposure, as it decides nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import orjson

from annotations.flags.bucketing import Evaluation, evaluate
from annotations.flags.exposures import ExposureSender, arm
from annotations.flags.model import Flag, FlagError
from annotations.http_client import ApiClient, ApiError

SNAPSHOT_PATH = "/api/v1/flags/snapshot"

log = logging.getLogger(__name__)


class Flags:
    """A live, locally evaluated view of one environment's flags."""

    def __init__(
        self,
        url: str,
        token: str,
        environment: str,
        *,
        poll_interval_s: float = 10.0,
        timeout_s: float = 5.0,
        initial_wait_s: float = 5.0,
        statsd: str | None = None,
        exposure_interval_s: float = 5.0,
    ) -> None:
        """Start polling; wait up to `initial_wait_s` for the first poll's outcome (0: no wait).
        `statsd` (`host:port`) is where exposures are sent; None counts none."""
        self._exposures = None if statsd is None else ExposureSender(statsd, exposure_interval_s)
        self._api = ApiClient(url, token, timeout_s=timeout_s)
        self._url = self._api.url(SNAPSHOT_PATH)
        self.environment = environment
        self._poll_interval_s = poll_interval_s
        self._timeout_s = timeout_s
        self._flags: Mapping[str, Flag] = {}
        self._etag = ""
        self._failing = False
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once a snapshot has been taken
        self._polled = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="shipboard-flags", daemon=True)
        self._thread.start()
        if initial_wait_s > 0:
            self._polled.wait(initial_wait_s)

    def evaluate(self, key: str, user: str, groups: Iterable[str] = ()) -> Evaluation:
        """The full answer, as `GET /api/v1/flags/{key}/evaluate` gives it."""
        flag = self._flags.get(key)
        if flag is None:
            return Evaluation(key, self.environment, False, None, "default")
        result = evaluate(flag, self.environment, user, groups)
        if self._exposures is not None:
            self._exposures.count(result)
        return result

    def tags(self, user: str, groups: Iterable[str] = ()) -> list[str]:
        """`flag_<key>:<variant>` for every flag (`on`/`off` for one without variants), the
        DogStatsD tags that let a graph `group_by` a flag's arm; counts no exposure."""
        flags, wanted = self._flags, tuple(groups)
        return [
            f"flag_{key}:{arm(evaluate(flags[key], self.environment, user, wanted))}"
            for key in sorted(flags)
        ]

    def is_enabled(self, key: str, user: str, groups: Iterable[str] = ()) -> bool:
        return self.evaluate(key, user, groups).enabled

    def variant(self, key: str, user: str, groups: Iterable[str] = ()) -> str | None:
        return self.evaluate(key, user, groups).variant

    def value(self, key: str, user: str, groups: Iterable[str] = (), default: Any = None) -> Any:
        """The knob's value for this user (their variant's, else the environment's), or `default`
        when the flag or environment is unknown, the flag is killed, or it carries no value."""
        value = self.evaluate(key, user, groups).value
        return default if value is None else value

    @property
    def keys(self) -> list[str]:
        """The flags of the snapshot in use."""
        return sorted(self._flags)

    @property
    def stale(self) -> bool:
        """True while the last poll failed (the previous snapshot is being served)."""
        return self._failing

    def refresh(self) -> bool:
        """Poll now; True if a new snapshot was taken, False if unchanged or unreachable."""
        headers = {"Accept": "application/json"}
        if self._etag:
            headers["If-None-Match"] = self._etag
        params = {"environment": self.environment}
        try:
            response = self._api.request("GET", SNAPSHOT_PATH, params=params, headers=headers)
        except ApiError as error:
            self._fail(str(error))
            return False
        if response.status == 304:
            self._ok()
            return False
        try:
            self._flags = parse_snapshot(response.body)
        except SnapshotError as error:
            self._fail(str(error))
            return False
        self._etag = response.headers.get("ETag", "")
        self._ok()
        return True

    def close(self) -> None:
        """Stop polling (the last snapshot stays readable) and send the exposures left."""
        self._stop.set()
        self._thread.join(self._timeout_s + 1)
        if self._exposures is not None:
            self._exposures.close()

    def __enter__(self) -> Flags:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._poll_interval_s)

    def _ok(self) -> None:
        if self._failing:
            log.info("flags snapshot reachable again at %s", self._url)
        self._failing = False
        self.ready.set()
        self._polled.set()

    def _fail(self, reason: str) -> None:
        # Log the start of an outage once, not every poll of it.
        if not self._failing:
            log.warning("flags snapshot unavailable (%s); serving the last one", reason)
        self._failing = True
        self._polled.set()


class SnapshotError(ValueError):
    """The snapshot body is not what the server sends; the previous one stays in use."""


def parse_snapshot(body: bytes) -> dict[str, Flag]:
    """The flags of a snapshot body, by key; SnapshotError if any part of it is invalid."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise SnapshotError(f"bad snapshot: not JSON: {error}") from None
    items = doc.get("flags") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise SnapshotError("bad snapshot: no list of flags")
    try:
        return {flag.key: flag for flag in map(Flag.from_doc, items)}
    except FlagError as error:
        raise SnapshotError(f"bad snapshot: {error}") from None
