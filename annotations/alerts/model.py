"""The records of alerting: a rule as its YAML says it, an instance (one alert: a rule and one
group), and how an Alertmanager-style target groups its notifications."""

from __future__ import annotations

import hashlib
import math
import operator
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from storage.timeparse import parse_duration_ns

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
NoData = Literal["ok", "alerting", "nodata", "keep_last"]
STATES = ("inactive", "pending", "firing", "resolved", "nodata", "error")
ALERTNAME = "alertname"
ALL_LABELS = "..."  # a grouping by every label: one group per alert, as in Alertmanager
AGGS = ("mean", "sum", "min", "max", "count", "last")


class Selector(BaseModel):
    """Which series a rule reads and how they are aggregated over its window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = Field(min_length=1)
    tags: dict[str, str] = {}
    agg: Literal["mean", "sum", "min", "max", "count", "last", "increase", "rate"] = "mean"
    group_by: tuple[str, ...] = ()


def _duration(value: str) -> str:
    parse_duration_ns(value)  # ValueError: "… is not a duration (write e.g. 30s, 5m …)"
    return value


FLAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # a flag key or environment name
MAX_INT = 2**63 - 1  # what JSON readers and the control DB's JSON hold without loss


def _json_problem(value: object, where: str = "") -> str | None:
    """Why `value` (decoded YAML) is not a knob's value, naming the part at fault; None if it
    is one: JSON without nulls, which a flag's merge patch reads as removals."""
    at = f" (at {where})" if where else ""
    if value is None:
        return f"null{at}: a knob's value holds no nulls (leave the key out)"
    if isinstance(value, (bool, str)):
        return None
    if isinstance(value, int):
        return None if -MAX_INT - 1 <= value <= MAX_INT else f"an integer out of 64 bits{at}"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"not a finite number{at}"
    if isinstance(value, list):
        return next(
            (p for i, v in enumerate(value) if (p := _json_problem(v, f"{where}[{i}]"))), None
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"a mapping key that is not a string: {key!r}{at}"
            if problem := _json_problem(item, f"{where}.{key}" if where else key):
                return problem
        return None
    return f"not a JSON value: {value!r}{at} (quote it to make it a string)"


def _flag_name(name: str) -> str:
    if not FLAG_NAME.match(name):
        raise ValueError(f"{name!r}: write 1-100 of A-Z a-z 0-9 _ . -, starting alphanumeric")
    return name


def _json_value(value: Any) -> Any:
    if value is None:
        raise ValueError("a value is required (null would remove the knob's value)")
    problem = _json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class OnFiring(BaseModel):
    """What a rule does while it fires: set a flag environment's `value` (a knob), set back once
    the rule has stayed resolved for `revert_after` (README, "Alerts")."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    flag: Annotated[str, AfterValidator(_flag_name)]
    environment: Annotated[str, AfterValidator(_flag_name)]
    set_: Annotated[Any, AfterValidator(_json_value)] = Field(alias="set")
    revert_after: str = "10m"

    _durations = field_validator("revert_after")(lambda value: _duration(value))

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, data: Any) -> Any:
        if not isinstance(data, dict | OnFiring):
            raise ValueError(
                "a mapping: {flag: KEY, environment: ENV, set: VALUE, revert_after: 10m}"
            )
        return data

    @property
    def revert_after_ns(self) -> int:
        return parse_duration_ns(self.revert_after)


class Rule(BaseModel):
    """One alerting rule; its field names are the rule files' contract (README, "Alerts")."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_:.-]*$")
    query: Selector
    ratio_of: Selector | None = None
    window: str = "5m"
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float
    for_: str = Field("0s", alias="for")
    keep_firing_for: str = "0s"
    no_data: NoData = "ok"
    interval: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    notify: tuple[str, ...] | None = None
    on_firing: OnFiring | None = None
    source: str = Field("", exclude=True)  # `file:line`, set by the loader

    _durations = field_validator("window", "for_", "keep_firing_for", "interval")(
        lambda value: value if value is None else _duration(value)
    )

    @property
    def window_ns(self) -> int:
        return parse_duration_ns(self.window)

    @property
    def for_ns(self) -> int:
        return parse_duration_ns(self.for_)

    @property
    def keep_firing_for_ns(self) -> int:
        return parse_duration_ns(self.keep_firing_for)

    def interval_ns(self, default_ns: int) -> int:
        """How often the rule is evaluated: its own `interval`, else `default_ns`."""
        return default_ns if self.interval is None else parse_duration_ns(self.interval)

    def holds(self, value: float) -> bool:
        return OPS[self.op](value, self.threshold)


Labels = dict[str, str]


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable name of a label set (16 hex digits), the same on every node and restart."""
    data = orjson.dumps(dict(sorted(labels.items())))
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class _Values(dict[str, Any]):
    """Template values: a label missing from the alert reads as empty, not as an error."""

    def __missing__(self, key: str) -> str:
        return ""


def render_template(text: str, labels: Mapping[str, str], value: float | None) -> str:
    """`{service} errors at {value:.1%}`: labels and the value put into a rule's annotation;
    a template that does not format (a bad spec, no value) is left as written."""
    values = _Values(labels)
    values["value"] = value
    try:
        return string.Formatter().vformat(text, (), values)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return text


@dataclass(frozen=True, slots=True)
class Instance:
    """One alert: a rule and one value of its `group_by`, in one state (see `states`)."""

    rule: str
    labels: Labels  # alertname, the rule's labels and the group's labels
    fingerprint: str
    state: str
    value: float | None
    evaluated_ns: int
    active_ns: int | None = None  # since when the condition holds (pending since)
    fired_ns: int | None = None  # when it went firing
    last_held_ns: int | None = None  # the last evaluation at which it held
    resolved_ns: int | None = None
    error: str = ""
    annotation_id: int | None = None  # its `alert` annotation, from firing to resolved
    annotations: dict[str, str] = field(default_factory=dict)  # the rule's, rendered


@dataclass(frozen=True, slots=True)
class Grouping:
    """How an Alertmanager-style target groups alerts (Alertmanager's route settings)."""

    target: str
    group_by: tuple[str, ...] = (ALERTNAME,)
    group_wait_ns: int = 30 * 10**9
    group_interval_ns: int = 5 * 60 * 10**9
    repeat_interval_ns: int = 4 * 3600 * 10**9
