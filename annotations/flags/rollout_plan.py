"""A flag environment's rollout plan: the percentages to ramp through and the guards that hold it.

    "rollout": {"steps": [5, 25, 100], "interval": "10m",
                "guards": [{"metric": "http.errors.count", "ratio_of": "http.requests.count",
                            "max_increase": "20%"},
                           {"metric": "http.latency", "agg": "p99", "max_increase": 50}],
                "min_samples": 100, "on_regression": "rollback"}

Steps rise strictly within (0, 100] in tenths. `max_increase` is relative when written with a
percent sign ("20%" allows the treatment 1.2 times the control) and absolute as a number (the
treatment may exceed the control by that much). `on_regression` is `rollback` (back to the last
step that held) or `kill` (back to 0%).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from storage import timeparse

MAX_STEPS = 100
MAX_GUARDS = 20
MIN_INTERVAL_NS = timeparse.parse_duration_ns("1s")
MAX_INTERVAL_NS = timeparse.parse_duration_ns("30d")
_PERCENT = re.compile(r"^(\d{1,6}(?:\.\d{1,6})?)%$")
_METRIC = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")


@dataclass(frozen=True, slots=True)
class Increase:
    """How far a guarded metric may rise: `relative` (0.2 for "20%") or by an absolute amount."""

    amount: float
    relative: bool

    def text(self) -> str:
        return f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g}"


def _interval(text: str) -> str:
    try:
        ns = timeparse.parse_duration_ns(text)
    except ValueError as error:
        raise ValueError(str(error)) from None
    if not MIN_INTERVAL_NS <= ns <= MAX_INTERVAL_NS:
        raise ValueError("must be between 1s and 30d")
    return text.strip()


def _metric(name: str) -> str:
    if not _METRIC.match(name):
        raise ValueError("a metric name: 1-200 of A-Z a-z 0-9 _ . -")
    return name


def _increase(value: str | float) -> str | float:
    if isinstance(value, str):
        if not _PERCENT.match(value.strip()):
            raise ValueError('a percentage such as "20%" or an absolute number')
        return value.strip()
    if value < 0:
        raise ValueError("must be at least 0")
    return value


def _step(step: float) -> float:
    tenths = round(step * 10)
    if abs(step * 10 - tenths) > 1e-6 or not 0 < tenths <= 1000:
        raise ValueError("must be above 0 and at most 100, in steps of 0.1")
    return tenths / 10


Metric = Annotated[str, StringConstraints(max_length=200), AfterValidator(_metric)]


class _Doc(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class GuardDoc(_Doc):
    """One metric the treatment must not make worse than the control."""

    metric: Metric
    ratio_of: Metric | None = None
    agg: Annotated[str, StringConstraints(pattern=r"^(p\d{1,2}(\.\d{1,3})?|sum|mean)$")] | None = (
        None
    )
    max_increase: Annotated[
        str | Annotated[float, Field(allow_inf_nan=False)], AfterValidator(_increase)
    ] = "20%"

    def increase(self) -> Increase:
        if isinstance(self.max_increase, str):
            return Increase(float(self.max_increase.rstrip("%")) / 100, relative=True)
        return Increase(float(self.max_increase), relative=False)

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric}
        if self.ratio_of is not None:
            out["ratio_of"] = self.ratio_of
        if self.agg is not None:
            out["agg"] = self.agg
        out["max_increase"] = self.max_increase
        return out


class RolloutDoc(_Doc):
    """The plan; `check_steps` (called by the flag model) names the first step out of order."""

    steps: Annotated[
        list[Annotated[float, Field(allow_inf_nan=False), AfterValidator(_step)]],
        Field(min_length=1, max_length=MAX_STEPS),
    ]
    interval: Annotated[str, StringConstraints(max_length=32), AfterValidator(_interval)]
    guards: Annotated[list[GuardDoc], Field(max_length=MAX_GUARDS)] = []
    min_samples: Annotated[int, Field(ge=1, le=10**9)] = 100
    on_regression: Literal["rollback", "kill"] = "rollback"

    def interval_ns(self) -> int:
        return timeparse.parse_duration_ns(self.interval)

    def step_problem(self) -> tuple[int, str] | None:
        """The index of the first step not above the one before it, and why."""
        for i in range(1, len(self.steps)):
            if self.steps[i] <= self.steps[i - 1]:
                return i, f"steps must rise: {self.steps[i]:g} after {self.steps[i - 1]:g}"
        return None

    def doc(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "interval": self.interval,
            "guards": [g.doc() for g in self.guards],
            "min_samples": self.min_samples,
            "on_regression": self.on_regression,
        }

    def summary(self) -> str:
        steps = "/".join(f"{s:g}" for s in self.steps)
        return f"{steps}% every {self.interval}, {len(self.guards)} guards, {self.on_regression}"
