"""The feature-flag document: validation, defaults, JSON merge patch and change summaries.

The document, as the API reads and returns it:

    {"key": "new-search", "description": "", "owner": "", "enabled": true,
     "environments": {"prod": {"enabled": true, "percentage": 10.0,
                               "allow_users": ["u1"], "allow_groups": ["staff"],
                               "variants": [{"name": "blue", "weight": 50}]}}}

Top-level `enabled: false` is the kill switch for every environment; an environment's own
`enabled: false` switches the flag off there alone. Missing fields take the defaults below.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from annotations.control.errors import BadRequestError

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Keys that would collide with the fixed routes under /api/v1/flags/.
RESERVED_KEYS = frozenset({"snapshot"})
MAX_LIST = 10_000
MAX_TEXT = 2_000

_FLAG_FIELDS = frozenset({"key", "description", "owner", "enabled", "environments"})
_ENV_FIELDS = frozenset({"enabled", "percentage", "allow_users", "allow_groups", "variants"})
_VARIANT_FIELDS = frozenset({"name", "weight"})


class FlagError(BadRequestError):
    """A flag document is invalid; `path` names the offending field (`environments.prod...`)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


@dataclass(frozen=True, slots=True)
class Variant:
    """One A/B bucket; its share is `weight` over the sum of the environment's weights."""

    name: str
    weight: float


@dataclass(frozen=True, slots=True)
class EnvironmentRules:
    """How the flag behaves in one environment (prod, staging, ...)."""

    enabled: bool = True
    percentage: float = 0.0
    allow_users: tuple[str, ...] = ()
    allow_groups: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    # Sets for evaluation: allowlists can hold thousands of names.
    user_set: frozenset[str] = field(init=False, repr=False, compare=False)
    group_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_set", frozenset(self.allow_users))
        object.__setattr__(self, "group_set", frozenset(self.allow_groups))


@dataclass(frozen=True, slots=True)
class Flag:
    """A validated flag document."""

    key: str
    description: str = ""
    owner: str = ""
    enabled: bool = True
    environments: Mapping[str, EnvironmentRules] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: object) -> Flag:
        """Validate a decoded JSON document; raises FlagError naming the first bad field."""
        obj = _object(doc, "", _FLAG_FIELDS)
        key = obj.get("key")
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise FlagError("key", "required: 1-100 of A-Z a-z 0-9 _ . -, starting alphanumeric")
        if key in RESERVED_KEYS:
            raise FlagError("key", f"{key!r} is reserved")
        environments = _object(obj.get("environments", {}), "environments", None)
        rules: dict[str, EnvironmentRules] = {}
        for name, env_doc in environments.items():
            if not KEY_PATTERN.match(name):
                raise FlagError(f"environments.{name}", "bad environment name")
            rules[name] = _environment(env_doc, f"environments.{name}")
        return cls(
            key=key,
            description=_text(obj.get("description", ""), "description"),
            owner=_text(obj.get("owner", ""), "owner"),
            enabled=_bool(obj.get("enabled", True), "enabled"),
            environments=dict(sorted(rules.items())),
        )

    def to_doc(self) -> dict[str, Any]:
        """The full document with every default filled in (what the API returns)."""
        return {
            "key": self.key,
            "description": self.description,
            "owner": self.owner,
            "enabled": self.enabled,
            "environments": {name: _env_doc(env) for name, env in self.environments.items()},
        }

    def only(self, environment: str) -> Flag:
        """The same flag keeping one environment's rules (what a snapshot for it carries)."""
        kept = {n: e for n, e in self.environments.items() if n == environment}
        return Flag(self.key, self.description, self.owner, self.enabled, kept)


def _env_doc(env: EnvironmentRules) -> dict[str, Any]:
    return {
        "enabled": env.enabled,
        "percentage": env.percentage,
        "allow_users": list(env.allow_users),
        "allow_groups": list(env.allow_groups),
        "variants": [{"name": v.name, "weight": v.weight} for v in env.variants],
    }


def _object(value: object, path: str, allowed: frozenset[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise FlagError(path, "must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            prefix = f"{path}." if path else ""
            raise FlagError(
                prefix + unknown[0], f"unknown field (known: {', '.join(sorted(allowed))})"
            )
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise FlagError(path, f"must be a string of at most {MAX_TEXT} characters")
    return value


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise FlagError(path, "must be true or false")
    return value


def _number(value: object, path: str) -> float:
    # bool is an int subclass; `true` is not a percentage.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FlagError(path, "must be a number")
    return float(value)


def _names(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise FlagError(path, f"must be a list of at most {MAX_LIST} strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > MAX_TEXT:
            raise FlagError(f"{path}[{i}]", "must be a non-empty string")
    # Order is kept for display; duplicates carry no meaning.
    return tuple(dict.fromkeys(value))


def _environment(value: object, path: str) -> EnvironmentRules:
    obj = _object(value, path, _ENV_FIELDS)
    percentage = _number(obj.get("percentage", 0.0), f"{path}.percentage")
    tenths = round(percentage * 10)
    if not 0 <= percentage <= 100 or abs(percentage * 10 - tenths) > 1e-6:
        raise FlagError(f"{path}.percentage", "must be between 0 and 100 in steps of 0.1")
    return EnvironmentRules(
        enabled=_bool(obj.get("enabled", True), f"{path}.enabled"),
        percentage=tenths / 10,
        allow_users=_names(obj.get("allow_users", []), f"{path}.allow_users"),
        allow_groups=_names(obj.get("allow_groups", []), f"{path}.allow_groups"),
        variants=_variants(obj.get("variants", []), f"{path}.variants"),
    )


def _variants(value: object, path: str) -> tuple[Variant, ...]:
    if not isinstance(value, list) or len(value) > 100:
        raise FlagError(path, "must be a list of at most 100 {name, weight} objects")
    variants: list[Variant] = []
    for i, item in enumerate(value):
        obj = _object(item, f"{path}[{i}]", _VARIANT_FIELDS)
        name = obj.get("name")
        if not isinstance(name, str) or not KEY_PATTERN.match(name):
            raise FlagError(f"{path}[{i}].name", "required: 1-100 of A-Z a-z 0-9 _ . -")
        if any(v.name == name for v in variants):
            raise FlagError(f"{path}[{i}].name", f"duplicate variant {name!r}")
        weight = _number(obj.get("weight"), f"{path}[{i}].weight")
        if weight < 0:
            raise FlagError(f"{path}[{i}].weight", "must not be negative")
        variants.append(Variant(name, weight))
    if variants and sum(v.weight for v in variants) <= 0:
        raise FlagError(path, "the weights must add up to more than 0")
    return tuple(variants)


def merge_patch(target: object, patch: object) -> Any:
    """Apply an RFC 7396 JSON merge patch: objects merge, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def make_merge_patch(before: object, after: object) -> Any:
    """The smallest merge patch turning `before` into `after` (both JSON values without nulls)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return after
    patch: dict[str, Any] = {name: None for name in before if name not in after}
    for name, value in after.items():
        if name not in before:
            patch[name] = value
        elif before[name] != value:
            patch[name] = make_merge_patch(before[name], value)
    return patch


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One line of a flag's history: `environment` is None when it concerns every environment."""

    environment: str | None
    summary: str


def describe_change(before: Flag | None, after: Flag | None) -> list[FlagChange]:
    """What changed, one entry per environment touched: `new-search prod: 10% -> 25%`."""
    if before is None and after is None:
        return []
    if before is None:
        assert after is not None
        envs = ", ".join(f"{n} {_state(e)}" for n, e in after.environments.items())
        killed = "" if after.enabled else " (killed)"
        return [FlagChange(None, f"{after.key} created{killed}: {envs or 'no environments'}")]
    if after is None:
        return [FlagChange(None, f"{before.key} deleted")]
    key = after.key
    changes: list[FlagChange] = []
    if before.enabled != after.enabled:
        word = "killed (off in every environment)" if not after.enabled else "revived"
        changes.append(FlagChange(None, f"{key} {word}"))
    for name in ("description", "owner"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes.append(FlagChange(None, f"{key}: {name} {old!r} -> {new!r}"))
    for env in sorted(set(before.environments) | set(after.environments)):
        old_env, new_env = before.environments.get(env), after.environments.get(env)
        if old_env == new_env:
            continue
        if old_env is None:
            assert new_env is not None
            text = f"added ({_state(new_env)})"
        elif new_env is None:
            text = "removed"
        else:
            text = "; ".join(_env_differences(old_env, new_env))
        changes.append(FlagChange(env, f"{key} {env}: {text}"))
    return changes


def _state(env: EnvironmentRules) -> str:
    return f"{_pct(env.percentage)}" if env.enabled else f"disabled, {_pct(env.percentage)}"


def _pct(percentage: float) -> str:
    return f"{percentage:g}%"


def _env_differences(old: EnvironmentRules, new: EnvironmentRules) -> list[str]:
    parts: list[str] = []
    if old.enabled != new.enabled:
        parts.append("enabled" if new.enabled else "disabled")
    if old.percentage != new.percentage:
        parts.append(f"{_pct(old.percentage)} -> {_pct(new.percentage)}")
    for name in ("allow_users", "allow_groups"):
        old_set, new_set = set(getattr(old, name)), set(getattr(new, name))
        added, removed = sorted(new_set - old_set), sorted(old_set - new_set)
        if added:
            parts.append(f"{name} +{','.join(_short(added))}")
        if removed:
            parts.append(f"{name} -{','.join(_short(removed))}")
    if old.variants != new.variants:
        parts.append(f"variants {_variants_text(old.variants)} -> {_variants_text(new.variants)}")
    return parts


def _short(names: list[str], limit: int = 5) -> list[str]:
    return names if len(names) <= limit else [*names[:limit], f"... ({len(names)} in all)"]


def _variants_text(variants: tuple[Variant, ...]) -> str:
    return "[" + " ".join(f"{v.name}:{v.weight:g}" for v in variants) + "]"
