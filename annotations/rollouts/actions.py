"""What a rollout does to its flag and says about it: start, pause and resume, a percentage set
with its state in one transaction, and the flag annotations (by "rollout", announced) of what
changed no percentage. Used by the engine's decisions and by the pause/resume routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annotations.control.db import ControlDB
from annotations.control.errors import ConflictError, NotFoundError
from annotations.control.notes import add_annotation
from annotations.control.outbox import Outbox
from annotations.flags.model import EnvironmentRules
from annotations.flags.store import get_flag, patch_flag
from annotations.rollouts.state import (
    DONE,
    PAUSED,
    RUNNING,
    Rollout,
    load_rollout,
    plan_text,
    save_rollout,
)

WHO = "rollout"


@dataclass(frozen=True, slots=True)
class RolloutActions:
    db: ControlDB
    outbox: Outbox | None

    def start(
        self, key: str, name: str, env: EnvironmentRules, now_ns: int, *, why: str
    ) -> Rollout:
        """The plan (re)started from the environment's percentage: raised to the first step when
        below it, else standing at the highest step reached."""
        assert env.rollout is not None
        plan = env.rollout
        steps = plan.steps
        step = max((i for i, s in enumerate(steps) if s <= env.percentage), default=0)
        percentage = max(env.percentage, steps[0])
        done = step == len(steps) - 1
        state = Rollout(
            flag=key,
            environment=name,
            plan=plan_text(plan),
            status=DONE if done else RUNNING,
            step=step,
            percentage=percentage,
            step_started_ns=now_ns,
            next_ns=None if done else now_ns + plan.interval_ns(),
            holds=0,
            reason=why,
            evaluation=None,
            updated_ns=now_ns,
        )
        said = f"{why}: step {step + 1} of {len(steps)}" + (", done" if done else "")
        if percentage != env.percentage:
            self.set_percentage(state, env.percentage, said)
        else:
            with self.db.transaction():
                save_rollout(self.db, state)
                self.note(state, f"{said} at {percentage:g}%", now_ns)
        return state

    def pause(self, state: Rollout, reason: str, now_ns: int) -> Rollout:
        paused = state.but(status=PAUSED, reason=reason, updated_ns=now_ns)
        with self.db.transaction():
            save_rollout(self.db, paused)
            self.note(paused, f"rollout paused at {state.percentage:g}%: {reason}", now_ns)
        return paused

    def pause_by(self, key: str, name: str, who: str, now_ns: int) -> Rollout:
        """A person's pause; a paused or halted plan stays as it is."""
        with self.db.transaction():
            state = self._current(key, name)
            if state.status == DONE:
                raise ConflictError(f"the rollout of {key} in {name} is done: nothing to pause")
            return (
                self.pause(state, f"paused by {who}", now_ns) if state.status == RUNNING else state
            )

    def resume_by(self, key: str, name: str, who: str, now_ns: int) -> Rollout:
        """A person's resume: the plan goes on from the flag's percentage now, holds counted
        anew; a running plan stays as it is."""
        with self.db.transaction():
            state = self._current(key, name)
            if state.status == DONE:
                raise ConflictError(
                    f"the rollout of {key} in {name} is done; change its plan to start again"
                )
            if state.status == RUNNING:
                return state
            env = get_flag(self.db, key).flag.environments[name]
            return self.start(key, name, env, now_ns, why=f"rollout resumed by {who}")

    def _current(self, key: str, name: str) -> Rollout:
        env = get_flag(self.db, key).flag.environments.get(name)
        state = load_rollout(self.db, key, name)
        if env is None or env.rollout is None or state is None:
            raise NotFoundError(f"flag {key!r} has no rollout plan under way in {name!r}")
        return state

    def set_percentage(self, state: Rollout, expected: float, why: str) -> bool:
        """The flag environment's percentage set to the state's, and the state saved, at once;
        not if a person changed the percentage from `expected` meanwhile (the engine then
        pauses the plan)."""
        with self.db.transaction():
            # Lock the flag's row first, as `patch_flag` does, then read what it holds now.
            self.db.execute("UPDATE flags SET version = version WHERE key = ?", (state.flag,))
            env = get_flag(self.db, state.flag).flag.environments.get(state.environment)
            if env is None or env.percentage != expected:
                return False
            patch = {"environments": {state.environment: {"percentage": state.percentage}}}
            patch_flag(
                self.db,
                state.flag,
                patch,
                who=WHO,
                now_ns=state.updated_ns,
                outbox=self.outbox,
                why=why,
            )
            save_rollout(self.db, state)
        return True

    def note(self, state: Rollout, text: str, now_ns: int) -> None:
        """A flag annotation by "rollout" for what changed no percentage."""
        add_annotation(
            self.db,
            "flag",
            start_ns=now_ns,
            title=f"{state.flag} {state.environment}: {text}",
            who=WHO,
            tags={"flag": state.flag, "environment": state.environment},
            extra={"rollout": _extra(state)},
            outbox=self.outbox,
        )


def _extra(state: Rollout) -> dict[str, Any]:
    return {"status": state.status, "step": state.step + 1, "percentage": state.percentage}
