"""Flag evaluation, shared by the server and the SDK so that the two can never disagree.

Rules, in order, for a flag, a user, the user's groups and an environment:

1. `killed`: the flag's top-level `enabled` is false, or the environment's `enabled` is false.
2. `default` (off): the flag has no rules for this environment.
3. `allowlist` (on): the user is in `allow_users` or one of the groups is in `allow_groups`.
4. `rollout` (on): the user's rollout bucket is below `percentage` (see below).
5. `default` (off): everything else.

When the flag is on and the environment has variants, a second, independent bucket picks one,
each with a share of `weight / sum(weights)`; otherwise the variant is None.

The knob `value` is the user's variant's value when it carries one, else the environment's value
unless the flag is killed there (a knob turns for everyone, whatever the percentage), else None.

Buckets (as Unleash does): `mmh3.hash(f"{flag_key}:{user}", seed, signed=False) % 100_000`,
MurmurHash3 x86 32-bit, with seed 0 for the rollout and 86028157 for the variant. A bucket
depends only on the flag key and the user, so it is sticky; the key makes flags independent;
the rollout threshold is `percentage * 1000` (0.1% is 100 buckets), so raising the percentage only
adds users; the other seed makes the variant independent of who is in the rollout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import mmh3

from annotations.flags.model import EnvironmentRules, Flag, Variant

BUCKETS = 100_000
ROLLOUT_SEED = 0
VARIANT_SEED = 86028157

Reason = Literal["killed", "allowlist", "rollout", "default"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The answer for one user, as `GET /api/v1/flags/{key}/evaluate` returns it."""

    key: str
    environment: str
    enabled: bool
    variant: str | None
    reason: Reason
    value: Any = None

    def to_doc(self) -> dict[str, object]:
        return {
            "key": self.key,
            "environment": self.environment,
            "enabled": self.enabled,
            "variant": self.variant,
            "reason": self.reason,
            "value": self.value,
        }


def bucket(flag_key: str, user: str, seed: int = ROLLOUT_SEED) -> int:
    """The user's bucket for this flag, in [0, 100000)."""
    return int(mmh3.hash(f"{flag_key}:{user}", seed, signed=False)) % BUCKETS


def in_rollout(flag_key: str, user: str, percentage: float) -> bool:
    """Whether the percentage rollout (0-100, steps of 0.1) includes this user."""
    return bucket(flag_key, user) < round(percentage * (BUCKETS // 100))


def pick_variant(flag_key: str, user: str, variants: tuple[Variant, ...]) -> str | None:
    """The user's variant's name by weight, from a bucket independent of the rollout."""
    chosen = variant_of(flag_key, user, variants)
    return None if chosen is None else chosen.name


def variant_of(flag_key: str, user: str, variants: tuple[Variant, ...]) -> Variant | None:
    """The user's variant by weight (see `pick_variant`); None if there is none."""
    total = sum(v.weight for v in variants)
    if total <= 0:
        return None
    point = bucket(flag_key, user, VARIANT_SEED) / BUCKETS * total
    cumulative = 0.0
    for variant in variants:
        cumulative += variant.weight
        if point < cumulative:
            return variant
    # Float rounding can leave the last sliver past the sum; it belongs to the last weighted one.
    return next(v for v in reversed(variants) if v.weight > 0)


def evaluate(flag: Flag, environment: str, user: str, groups: Iterable[str] = ()) -> Evaluation:
    """Apply the rules above; `user` may be empty (every anonymous caller shares one bucket)."""
    env = flag.environments.get(environment)
    if not flag.enabled or (env is not None and not env.enabled):
        return Evaluation(flag.key, environment, False, None, "killed")
    if env is None:
        return Evaluation(flag.key, environment, False, None, "default")
    own = None if env.value is None else env.value.get()
    reason = _decide(flag.key, env, user, groups)
    if reason == "default":
        return Evaluation(flag.key, environment, False, None, reason, own)
    chosen = variant_of(flag.key, user, env.variants)
    if chosen is None:
        return Evaluation(flag.key, environment, True, None, reason, own)
    value = own if chosen.value is None else chosen.value.get()
    return Evaluation(flag.key, environment, True, chosen.name, reason, value)


def _decide(key: str, env: EnvironmentRules, user: str, groups: Iterable[str]) -> Reason:
    if user in env.user_set or not env.group_set.isdisjoint(groups):
        return "allowlist"
    if in_rollout(key, user, env.percentage):
        return "rollout"
    return "default"
