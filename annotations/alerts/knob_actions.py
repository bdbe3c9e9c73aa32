"""Alert rules' knob actions: while a rule with `on_firing` fires, the flag environment's `value`
it names is set, and set back once the rule has stayed resolved for `revert_after`.

Each of the engine's ticks compares the stored actions (the `knob_actions` table, one per flag
environment: at most one action holds a knob) with the rules firing now, so a restart or another
node taking the alerts lock goes on from what is stored. A knob set and its action recorded, or
set back and its action removed, commit together. The flag changes go through the flags store
as a person's do: a new version, an annotation by `alert <rule>` saying why, an announcement.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from annotations.alerts.knobs import COLUMNS, Knob, KnobAction, list_knob_actions
from annotations.alerts.model import Instance, OnFiring, Rule
from annotations.control.db import ControlDB
from annotations.control.errors import BadRequestError, ConflictError, NotFoundError
from annotations.control.notes import add_annotation, get_annotation, update_annotation
from annotations.control.outbox import Outbox
from annotations.flags.model import make_merge_patch
from annotations.flags.store import get_flag, patch_flag

log = logging.getLogger(__name__)

_UNITS = (("d", 86_400 * 10**9), ("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9))


def _text(value: Any) -> str:
    return "(none)" if value is None else orjson.dumps(value).decode()


def _same(a: Any, b: Any) -> bool:
    """Whether two knob values are one, as flags keep them: exactly (1 is not 1.0 nor true)."""
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


def _duration_text(ns: int) -> str:
    """`10m` for 600 s: the largest unit that divides it; else seconds (`1.5s`, `0s`)."""
    exact = (f"{ns // size}{unit}" for unit, size in _UNITS if ns and ns % size == 0)
    return next(exact, f"{ns / 10**9:g}s")


class KnobActions:
    """The knob actions of the rules the engine runs, stepped by `step` at each of its ticks
    (blocking: call it off the event loop)."""

    def __init__(self, db: ControlDB, outbox: Outbox) -> None:
        self._db = db
        self._outbox = outbox
        # What was last said (logged, and put in the alerts' annotations) about a firing rule's
        # knob or a knob that does not set back, so that a state lasting many ticks is told once.
        self._said: dict[str, str] = {}

    def step(
        self, rules: Mapping[str, Rule], instances: Mapping[str, Instance], now_ns: int
    ) -> None:
        """Set the knobs of the rules firing now, and set back those whose rule has stayed
        resolved for its `revert_after` (`instances`: every alert, by fingerprint)."""
        firing: dict[str, list[Instance]] = {}
        for instance in instances.values():
            if instance.state == "firing":
                firing.setdefault(instance.rule, []).append(instance)
        actions = {action.knob: action for action in list_knob_actions(self._db)}
        for action in actions.values():
            rule = rules.get(action.rule)
            # A rule removed from the files, or now naming another knob, holds this one no more.
            wanted = None if rule is None or rule.on_firing is None else _knob(rule.on_firing)
            self._follow(action, action.rule in firing and wanted == action.knob, now_ns)
        for name, rule in rules.items():
            if rule.on_firing is None or name not in firing:
                continue
            holder = actions.get(_knob(rule.on_firing))
            if holder is None:
                self._set(rule, rule.on_firing, firing[name], now_ns)
            elif holder.rule != name:
                knob = f"{holder.flag} {holder.environment}"
                self._say(rule, firing[name], f"not set: {knob} is held by alert {holder.rule}")
        kept = {f"rule {name}" for name in firing} | {f"knob {f} {e}" for f, e in actions}
        self._said = {key: text for key, text in self._said.items() if key in kept}

    def _follow(self, action: KnobAction, holding: bool, now_ns: int) -> None:
        """An action whose rule fires again stays; one whose rule stopped firing counts its
        time resolved, and is set back when that reaches `revert_after`."""
        if holding:
            if action.resolved_ns is not None:
                self._resolved_since(action, None)
        elif action.resolved_ns is None:
            self._resolved_since(action, now_ns)
        elif now_ns >= action.resolved_ns + action.revert_after_ns:
            self._revert(action, now_ns)

    def _resolved_since(self, action: KnobAction, resolved_ns: int | None) -> None:
        self._db.execute(
            "UPDATE knob_actions SET resolved_ns = ? WHERE flag = ? AND environment = ?"
            " AND started_ns = ?",
            (resolved_ns, action.flag, action.environment, action.started_ns),
        )

    def _lock_and_read(self, flag: str, environment: str) -> tuple[bool, Any]:
        """Lock the flag's row, as `patch_flag` does, then read it: whether the environment
        exists, and its value (None: none)."""
        self._db.execute("UPDATE flags SET version = version WHERE key = ?", (flag,))
        envs = get_flag(self._db, flag).flag.to_doc()["environments"]
        return environment in envs, envs.get(environment, {}).get("value")

    def _patch(
        self, flag: str, environment: str, before: Any, after: Any, who: str, now_ns: int, why: str
    ) -> None:
        """The environment's value from `before` to `after` (None: no value), by `who` (`alert
        <rule>`) because the rule is `why`. An object is patched key by key (a merge patch
        merges objects), so keys it no longer has go too."""
        value = None if after is None else make_merge_patch(before, after)
        patch = {"environments": {environment: {"value": value}}}
        why = f"{who} {why}"
        patch_flag(self._db, flag, patch, who=who, now_ns=now_ns, outbox=self._outbox, why=why)

    def _set(self, rule: Rule, knob: OnFiring, firing: list[Instance], now_ns: int) -> None:
        who = f"alert {rule.name}"
        try:
            with self._db.transaction():
                exists, previous = self._lock_and_read(knob.flag, knob.environment)
                if not exists:
                    missing = f"flag {knob.flag!r} has no environment {knob.environment!r}"
                    raise NotFoundError(missing)
                inserted = self._db.execute(
                    f"INSERT INTO knob_actions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
                    " ON CONFLICT (flag, environment) DO NOTHING",
                    (
                        knob.flag,
                        knob.environment,
                        rule.name,
                        orjson.dumps(knob.set_).decode(),
                        None if previous is None else orjson.dumps(previous).decode(),
                        knob.revert_after_ns,
                        now_ns,
                    ),
                )
                if not inserted:
                    return  # another node's action, recorded since this tick read them
                self._patch(knob.flag, knob.environment, previous, knob.set_, who, now_ns, "firing")
        except (BadRequestError, NotFoundError, ConflictError) as error:
            self._say(rule, firing, f"not set: {error}", failed=True)
            return
        self._say(rule, firing, f"set {_text(previous)} -> {_text(knob.set_)}")

    def _revert(self, action: KnobAction, now_ns: int) -> None:
        who = f"alert {action.rule}"
        knob = f"{action.flag} {action.environment}"
        try:
            with self._db.transaction():
                try:
                    _, current = self._lock_and_read(action.flag, action.environment)
                except NotFoundError:
                    current = None  # the flag was deleted: nothing to set back
                removed = self._db.execute(
                    "DELETE FROM knob_actions WHERE flag = ? AND environment = ?"
                    " AND started_ns = ?",
                    (action.flag, action.environment, action.started_ns),
                )
                if not removed:
                    return
                if not _same(current, action.set_value):
                    self._left(action, current, now_ns)
                    return
                why = f"resolved for {_duration_text(action.revert_after_ns)}"
                self._patch(
                    action.flag, action.environment, current, action.previous, who, now_ns, why
                )
        except (BadRequestError, ConflictError) as error:
            self._once(f"knob {knob}", f"{who}: {knob} not set back: {error}", logging.WARNING)
            return
        log.info("%s: %s set back to %s", who, knob, _text(action.previous))

    def _left(self, action: KnobAction, current: Any, now_ns: int) -> None:
        """The action closed without setting back: someone changed the value meanwhile."""
        who = f"alert {action.rule}"
        text = (
            f"{action.flag} {action.environment}: left at {_text(current)}, changed since {who}"
            f" set it to {_text(action.set_value)} (not set back to {_text(action.previous)})"
        )
        add_annotation(
            self._db,
            "flag",
            start_ns=now_ns,
            title=text,
            who=who,
            tags={"flag": action.flag, "environment": action.environment},
            outbox=self._outbox,
        )
        log.info("%s", text)

    def _once(self, key: str, message: str, level: int) -> bool:
        if self._said.get(key) == message:
            return False
        self._said[key] = message
        log.log(level, "%s", message)
        return True

    def _say(self, rule: Rule, firing: list[Instance], status: str, failed: bool = False) -> None:
        """Tell once what the rule's knob did: in the log and in its firing alerts' annotations
        (`extra.on_firing`)."""
        assert rule.on_firing is not None
        knob = rule.on_firing
        level = logging.WARNING if failed else logging.INFO
        message = f"alert {rule.name}: {knob.flag} {knob.environment} {status}"
        if not self._once(f"rule {rule.name}", message, level):
            return
        said = {"flag": knob.flag, "environment": knob.environment, "set": knob.set_}
        with self._db.transaction():
            for instance in firing:
                if instance.annotation_id is None:
                    continue
                try:
                    annotation = get_annotation(self._db, instance.annotation_id)
                except NotFoundError:
                    continue
                extra = {**annotation.extra, "on_firing": {**said, "status": status}}
                update_annotation(self._db, annotation.id, end_ns=annotation.end_ns, extra=extra)


def _knob(on_firing: OnFiring) -> Knob:
    return on_firing.flag, on_firing.environment
