"""What a rollout plan does next, one decision per flag environment and tick.

A new (or changed) plan starts from the flag's percentage: below the first step it is raised to
it, else the plan stands at the highest step reached. Each `interval` (and the flush's grace)
its guards judge the step's window (`guards.judge_step`):

- healthy: the percentage moves to the next step (the last one set, the rollout is done);
- regressed: halted, the percentage back to the step before (0 from the first, or with
  `on_regression: kill`);
- inconclusive: the step holds another interval, its window growing; after `MAX_HOLDS` the plan
  pauses and asks a person to resume it or set the percentage.

A percentage different from the one the plan set is a person's change: the plan pauses. Each
step, hold, halt and pause is a flag annotation by "rollout" saying why, announced through the
outbox; a percentage the plan sets is a flag change (audited, versioned) like a person's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from annotations.control.db import ControlDB
from annotations.control.verdict_text import summary_text
from annotations.flags.model import EnvironmentRules
from annotations.flags.rollout_plan import RolloutDoc
from annotations.flags.store import list_flags
from annotations.rollouts.actions import RolloutActions
from annotations.rollouts.guards import judge_step
from annotations.rollouts.state import (
    DONE,
    HALTED,
    RUNNING,
    Rollout,
    delete_rollout,
    load_rollouts,
    plan_text,
    save_rollout,
)
from storage.base import StoreReader
from storage.records import Tier

MAX_HOLDS = 3


@dataclass(frozen=True, slots=True)
class Stepper:
    """The rollouts of every flag, judged over the metrics `store`; what they do goes through
    `actions`. A step's window is judged `grace_ns` after its end, once a StatsD flush has
    written its last points."""

    actions: RolloutActions
    store: StoreReader
    tiers: Sequence[Tier]
    grace_ns: int = 0

    @property
    def db(self) -> ControlDB:
        return self.actions.db

    def tick(self, now_ns: int) -> None:
        """Each planned flag environment one decision further; states of plans gone, deleted."""
        rollouts = load_rollouts(self.db)
        planned: set[tuple[str, str]] = set()
        for stored in list_flags(self.db):
            for name, env in stored.flag.environments.items():
                if env.rollout is not None:
                    planned.add((stored.flag.key, name))
                    state = rollouts.get((stored.flag.key, name))
                    self._decide(stored.flag.key, name, env, state, now_ns)
        for key, name in rollouts.keys() - planned:
            delete_rollout(self.db, key, name)

    def _decide(
        self, key: str, name: str, env: EnvironmentRules, state: Rollout | None, now_ns: int
    ) -> None:
        assert env.rollout is not None
        plan = env.rollout
        if state is None or state.plan != plan_text(plan):
            why = "rollout started" if state is None else "rollout plan changed, started again"
            self.actions.start(key, name, env, now_ns, why=why)
        elif state.status != RUNNING:
            return
        elif env.percentage != state.percentage:
            by_hand = f"the percentage was set by hand to {env.percentage:g}%"
            self.actions.pause(state, by_hand, now_ns)
        elif state.next_ns is not None and now_ns >= state.next_ns + self.grace_ns:
            window = (state.step_started_ns, state.next_ns)
            evaluation = judge_step(self.store, self.tiers, plan, key, name, window, now_ns)
            state = state.but(evaluation=evaluation, updated_ns=now_ns)
            if evaluation["status"] == "regressed":
                self._halt(state, plan, now_ns)
            elif evaluation["status"] == "healthy":
                self._advance(state, plan, now_ns)
            else:
                self._hold(state, plan, now_ns)

    def _advance(self, state: Rollout, plan: RolloutDoc, now_ns: int) -> None:
        steps, step = plan.steps, state.step + 1
        done = step == len(steps) - 1
        advanced = state.but(
            status=DONE if done else RUNNING,
            step=step,
            percentage=steps[step],
            step_started_ns=now_ns,
            next_ns=None if done else now_ns + plan.interval_ns(),
            holds=0,
            reason="the guards held",
        )
        held = _evaluation_text(state)
        said = f"rollout step {step + 1} of {len(steps)}{', done' if done else ''}: {held}"
        self.actions.set_percentage(advanced, state.percentage, said)

    def _halt(self, state: Rollout, plan: RolloutDoc, now_ns: int) -> None:
        back = (
            0.0 if plan.on_regression == "kill" or state.step == 0 else plan.steps[state.step - 1]
        )
        step = -1 if back == 0 else state.step - 1
        reason = f"{_evaluation_text(state)}; {plan.on_regression}"
        halted = state.but(status=HALTED, step=step, percentage=back, next_ns=None, reason=reason)
        self.actions.set_percentage(halted, state.percentage, f"rollout halted: {reason}")

    def _hold(self, state: Rollout, plan: RolloutDoc, now_ns: int) -> None:
        holds = state.holds + 1
        found = _evaluation_text(state)
        if holds >= MAX_HOLDS:
            ask = f"{found} for {holds} intervals; resume it to go on, or set the percentage"
            self.actions.pause(state.but(holds=holds), ask, now_ns)
            return
        held = state.but(holds=holds, next_ns=now_ns + plan.interval_ns(), reason=found)
        with self.db.transaction():
            save_rollout(self.db, held)
            text = f"rollout holds at {state.percentage:g}% ({holds} of {MAX_HOLDS}): {found}"
            self.actions.note(held, text, now_ns)


def _evaluation_text(state: Rollout) -> str:
    """`healthy: http.errors/http.requests 1% -> 1.1% (+10%)` of the state's evaluation."""
    return "no evaluation" if state.evaluation is None else summary_text(state.evaluation)
