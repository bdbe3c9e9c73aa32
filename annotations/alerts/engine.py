"""The alert engine: on the node holding the alerts lock, every rule is evaluated at its
interval, its instances' states stepped, and each round recorded in one control-DB transaction.

A round saves the instances and rule statuses, records an `alert` annotation for each instance
gone firing (and sets its end when it resolves), queues their announcements in the outbox and
the Alertmanager-style notifications (`dispatch`), all at once or not at once: the in-memory
states advance only when the transaction commits, and they are loaded from the DB whenever this
node takes the lock, so a restart or a takeover neither pages again nor forgets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from aggregator.window import WindowCache
from annotations.alerts.dispatch import dispatch
from annotations.alerts.episodes import abandon_episode, close_episode, open_episode
from annotations.alerts.evaluate import Evaluation, evaluate
from annotations.alerts.instances import (
    drop_rules_except,
    load_instances,
    record_rule_status,
    rule_statuses,
    save_instances,
)
from annotations.alerts.knob_actions import KnobActions
from annotations.alerts.model import STATES, Grouping, Instance, Rule
from annotations.alerts.rules import RuleError, RuleSet
from annotations.alerts.silences import list_silences
from annotations.alerts.states import Transition, step
from annotations.control.db import ControlDB
from annotations.control.outbox import Outbox
from annotations.control.ticker import Lease, Ticker
from storage.base import StoreReader
from storage.records import NS_PER_S, Tier

log = logging.getLogger(__name__)

TICK_S = 1.0
"""How often the engine looks for changed rule files and due rules."""
_EVALUATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

Instances = dict[str, Instance]
"""One rule's instances by fingerprint."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One rule's evaluation in a round, before it is recorded."""

    rule: Rule
    instances: Instances
    transitions: list[Transition]
    duration_s: float
    error: str


def _file_of(source: str) -> str:
    return source.rpartition(":")[0] or source


def _resolves_held(
    previous: Instances, instances: Instances, transitions: list[Transition], now_ns: int
) -> tuple[Instances, list[Transition]]:
    """The step with its resolves undone: the first window after this node took the lease
    may miss the points nobody collected while no node evaluated (a restart), and an alert
    that resolves for that would page again when they are back. It resolves once a whole
    window of points since says so."""
    held = [t for t in transitions if t.kind == "resolved" and t.instance.fingerprint in previous]
    if not held:
        return instances, transitions
    instances = dict(instances)
    for transition in held:
        fp = transition.instance.fingerprint
        instances[fp] = replace(previous[fp], evaluated_ns=now_ns)
    return instances, [t for t in transitions if t not in held]


class AlertEngine:
    """Evaluates the rules of `rule_dirs` over `store` while in `async with` (each second:
    reload changed files, evaluate the due rules), only while this node holds `lease` if one
    is given. Annotations are announced through `outbox`; `groupings` are the Alertmanager-style
    targets that `dispatch` notifies."""

    def __init__(
        self,
        db: ControlDB,
        store: StoreReader,
        tiers: Sequence[Tier],
        rule_dirs: Sequence[Path],
        default_interval_s: float,
        outbox: Outbox,
        *,
        lease: Lease | None = None,
        groupings: Sequence[Grouping] = (),
        public_url: str = "",
        clock: Callable[[], int] = time.time_ns,
        tick_s: float = TICK_S,
    ) -> None:
        self._db = db
        self._store = store
        self._tiers = tuple(tiers)
        self._rule_dirs = tuple(rule_dirs)
        self._default_interval_ns = round(default_interval_s * NS_PER_S)
        self._outbox = outbox
        self._lease = lease
        self._groupings = tuple(groupings)
        self._public_url = public_url
        self._clock = clock
        self._rule_set: RuleSet | None = None
        self._rules: dict[str, Rule] = {}
        self._bad_files: set[str] = set()  # rule files with errors at the last reload
        self._instances: dict[str, Instances] = {}  # by rule name, valid while held
        self._due_ns: dict[str, int] = {}
        self._held = False
        self._taken_ns = 0  # when this node last took the lease
        self._prune = True  # rules may have been removed: forget their rows when next held
        self._knobs = KnobActions(db, outbox)  # the rules' on_firing, set and set back
        self._ticking = asyncio.Lock()
        # Not the lease's holder alone: every node reloads the files (the listing is its own).
        self._ticker = Ticker("alert evaluation", self.tick, tick_s)
        self.evaluation_seconds = Histogram(
            "shipboard_rule_evaluation_seconds",
            "Time of one rule's evaluation (its queries over its window).",
            registry=None,
            buckets=_EVALUATION_BUCKETS,
        )

    async def __aenter__(self) -> Self:
        await self._reload_if_changed()  # errors of the files are logged (and listed) at start
        await self._ticker.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # The round under way finishes first (the ticker waits for it): its thread would go on
        # writing to a control DB that the root closes next.
        await self._ticker.__aexit__(*exc_info)
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this node evaluated the rules at its last tick."""
        return self._held

    def rules_view(self) -> tuple[Mapping[str, Rule], Sequence[RuleError]]:
        """The rules this node runs by name, and the errors of the files it read (the
        `/api/v1/rules` listing)."""
        errors = [] if self._rule_set is None else list(self._rule_set.errors)
        return dict(self._rules), errors

    def instances(self) -> dict[str, Instance]:
        """Every instance by fingerprint, as this node last recorded them (none unless held)."""
        return {fp: i for by_rule in self._instances.values() for fp, i in by_rule.items()}

    def collector(self) -> Collector:
        """`shipboard_alerts{state}` and `shipboard_rule_evaluation_seconds` for `/metrics`."""
        return _EngineCollector(self)

    async def tick(self) -> None:
        """Once: reload the rule files if they changed and, holding the lease, evaluate the
        rules that are due and record the round."""
        async with self._ticking:
            await self._reload_if_changed()
            if not await self._hold():
                return
            now_ns = self._clock()
            if self._prune:
                await asyncio.to_thread(self._forget_removed, now_ns)
            due = [r for r in self._rules.values() if self._due_ns.get(r.name, 0) <= now_ns]
            cache = WindowCache()  # the round's rules read each window once
            outcomes = [await self._evaluate(rule, now_ns, cache) for rule in due]
            for rule in due:
                self._due_ns[rule.name] = now_ns + rule.interval_ns(self._default_interval_ns)
            if outcomes or self._groupings:
                saved = await asyncio.to_thread(self._record, outcomes, now_ns)
                self._instances.update(saved)
            await asyncio.to_thread(self._knobs.step, self._rules, self.instances(), now_ns)

    async def _reload_if_changed(self) -> None:
        current = self._rule_set
        if current is not None and not await asyncio.to_thread(current.changed):
            return
        loaded = await asyncio.to_thread(RuleSet.load, self._rule_dirs)
        for error in loaded.errors:
            log.error("%s:%d: %s", error.file, error.line, error.message)
        bad_files = {str(error.file) for error in loaded.errors}
        rules = dict(loaded.rules)
        for name, rule in self._rules.items():
            if name not in rules and _file_of(rule.source) in bad_files:
                rules[name] = rule  # its file is broken now: the last good version keeps running
        if current is not None:
            log.info("alert rules reloaded: %d rules, %d errors", len(rules), len(loaded.errors))
        self._rule_set, self._rules, self._bad_files = loaded, rules, bad_files
        self._prune = True

    async def _hold(self) -> bool:
        """Whether this node evaluates now; on taking the lease, the states as recorded by
        whoever held it before (this node before a restart, or another node)."""
        held = self._lease is None or await asyncio.to_thread(self._lease.try_acquire)
        if held and not self._held:
            stored = await self._db.run(load_instances, self._db)
            by_rule: dict[str, Instances] = {}
            for instance in stored.values():
                by_rule.setdefault(instance.rule, {})[instance.fingerprint] = instance
            self._instances, self._due_ns, self._prune = by_rule, {}, True
            self._taken_ns = self._clock()
            log.info("this node evaluates the alert rules (%d instances loaded)", len(stored))
        elif not held and self._held:
            log.warning("alerts lock lost: another node evaluates the rules")
            self._instances = {}  # that node's from now on: loaded again if this one takes over
        self._held = held
        return held

    async def _evaluate(self, rule: Rule, now_ns: int, cache: WindowCache) -> _Outcome:
        """One rule's evaluation off the loop and its step; a failure stays this rule's."""
        started = time.perf_counter()
        evaluation: Evaluation = await asyncio.to_thread(
            evaluate, self._store, self._tiers, rule, now_ns, cache=cache
        )
        duration_s = time.perf_counter() - started
        self.evaluation_seconds.observe(duration_s)
        previous = self._instances.get(rule.name, {})
        try:
            instances, transitions = step(rule, previous, evaluation, now_ns)
        except Exception as error:  # a bug in one rule's step must not stop the others
            log.exception(
                "alert rule %s (%s): its states could not be stepped", rule.name, rule.source
            )
            return _Outcome(rule, previous, [], duration_s, f"{type(error).__name__}: {error}")
        if evaluation.error:
            log.warning("alert rule %s (%s): %s", rule.name, rule.source, evaluation.error)
        if now_ns < self._taken_ns + rule.window_ns:
            instances, transitions = _resolves_held(previous, instances, transitions, now_ns)
        return _Outcome(rule, instances, transitions, duration_s, evaluation.error)

    def _record(self, outcomes: Sequence[_Outcome], now_ns: int) -> dict[str, Instances]:
        """The round in one transaction (blocking): instances, statuses, annotations and their
        announcements, the Alertmanager notifications. The instances as saved, by rule."""
        db = self._db
        saved: dict[str, Instances] = {}
        sent = 0
        with db.transaction():
            silences = list_silences(db, now_ns, active_only=True)
            for outcome in outcomes:
                rule, instances = outcome.rule, dict(outcome.instances)
                for transition in outcome.transitions:
                    instance = instances.get(transition.instance.fingerprint, transition.instance)
                    if transition.kind == "firing":
                        opened = open_episode(db, rule, instance, self._outbox, silences)
                        instances[opened.fingerprint] = opened
                        log.info("alert %s %s firing", rule.name, opened.labels)
                    elif transition.kind == "resolved":
                        close_episode(db, rule, instance, self._outbox, silences)
                        log.info("alert %s %s resolved", rule.name, instance.labels)
                save_instances(db, rule.name, instances)
                record_rule_status(
                    db, rule.name, rule.source, now_ns, outcome.duration_s, outcome.error
                )
                saved[rule.name] = instances
            if self._groupings:
                everything = self.instances()
                for instances in saved.values():
                    everything.update(instances)
                sent = dispatch(
                    db,
                    self._groupings,
                    everything,
                    silences,
                    now_ns,
                    self._public_url,
                    rules=self._rules,
                )
        if sent:
            self._outbox.queued()  # committed now: the notifier can read them at once
        return saved

    def _forget_removed(self, now_ns: int) -> None:
        """Rules gone from the files: their open annotations end, their rows go (blocking).
        A rule last read from a file that is broken now is not gone (even if this node never
        read it: it started with the file broken), so that fixing the file pages nobody again."""
        with self._db.transaction():
            keep = set(self._rules) | {
                name
                for name, status in rule_statuses(self._db).items()
                if _file_of(status.source) in self._bad_files
            }
            gone = [name for name in self._instances if name not in keep]
            for name in gone:
                for instance in self._instances[name].values():
                    abandon_episode(self._db, instance, now_ns)
            drop_rules_except(self._db, keep)
        for name in gone:
            del self._instances[name]
            self._due_ns.pop(name, None)
        self._prune = False

    def state_counts(self) -> Counter[str]:
        """Instances by state on this node (none unless it evaluates)."""
        if not self._held:
            return Counter()
        return Counter(i.state for by_rule in self._instances.values() for i in by_rule.values())


class _EngineCollector(Collector):
    """Read at scrape time: the alerts by state and the evaluation times."""

    def __init__(self, engine: AlertEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        counts = self._engine.state_counts()
        alerts = GaugeMetricFamily(
            "shipboard_alerts",
            "Alert instances by state (counted by the node evaluating the rules; 0 elsewhere).",
            labels=["state"],
        )
        for state in STATES:
            alerts.add_metric([state], counts.get(state, 0))
        yield alerts
        yield from self._engine.evaluation_seconds.collect()
