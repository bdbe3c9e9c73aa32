"""The feature-flag document: validation, defaults, JSON merge patch and change summaries.

The document, as the API reads and returns it:

    {"key": "new-search", "description": "", "owner": "", "enabled": true,
     "environments": {"prod": {"enabled": true, "percentage": 10.0,
                               "allow_users": ["u1"], "allow_groups": ["staff"],
                               "variants": [{"name": "blue", "weight": 50}]}}}

Top-level `enabled: false` is the kill switch for every environment; an environment's own
`enabled: false` switches the flag off there alone. Missing fields take the defaults below.
An environment may carry a `rollout` plan (annotations/flags/rollout_plan.py), and it and each
variant a typed knob `value` checked against the environment's `schema`
(annotations/flags/knobs.py); without them the keys are absent.
`FlagDoc` (pydantic, strict, unknown fields refused) checks a document; `Flag.from_doc` turns it
into the frozen records that evaluation reads, or raises FlagError naming the bad field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from annotations.control.errors import BadRequestError, first_problem
from annotations.flags.knobs import Knob, KnobError, Schema, environment_knobs, text_of
from annotations.flags.rollout_plan import RolloutDoc

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Keys that would collide with the fixed routes under /api/v1/flags/.
RESERVED_KEYS = frozenset({"snapshot"})
MAX_LIST = 10_000
MAX_TEXT = 2_000


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
    value: Knob | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentRules:
    """How the flag behaves in one environment (prod, staging, ...)."""

    enabled: bool = True
    percentage: float = 0.0
    allow_users: tuple[str, ...] = ()
    allow_groups: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    rollout: RolloutDoc | None = None
    value: Knob | None = None
    schema: Schema | None = None
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
        if not isinstance(doc, dict):
            raise FlagError("", "must be a JSON object")
        try:
            valid = FlagDoc.model_validate(doc)
        except ValidationError as error:
            raise FlagError(*first_problem(error)) from None
        rules = {
            name: _rules(env, f"environments.{name}") for name, env in valid.environments.items()
        }
        return cls(
            key=valid.key,
            description=valid.description,
            owner=valid.owner,
            enabled=valid.enabled,
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
    doc = {
        "enabled": env.enabled,
        "percentage": env.percentage,
        "allow_users": list(env.allow_users),
        "allow_groups": list(env.allow_groups),
        "variants": [_variant_doc(v) for v in env.variants],
    }
    # No plan or knob, no key: the full document stays free of nulls (a null in a merge patch
    # deletes).
    if env.rollout is not None:
        doc["rollout"] = env.rollout.doc()
    if env.value is not None:
        doc["value"] = env.value.get()
    if env.schema is not None:
        doc["schema"] = env.schema.knob.get()
    return doc


def _variant_doc(variant: Variant) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": variant.name, "weight": variant.weight}
    return doc if variant.value is None else {**doc, "value": variant.value.get()}


def _key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise ValueError("required: 1-100 of A-Z a-z 0-9 _ . -, starting alphanumeric")
    if key in RESERVED_KEYS:
        raise ValueError(f"{key!r} is reserved")
    return key


def _name(name: str) -> str:
    if not KEY_PATTERN.match(name):
        raise ValueError("1-100 of A-Z a-z 0-9 _ . -, starting alphanumeric")
    return name


def _tenths(percentage: float) -> float:
    tenths = round(percentage * 10)
    if abs(percentage * 10 - tenths) > 1e-6:
        raise ValueError("must be between 0 and 100 in steps of 0.1")
    return tenths / 10


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Names = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]],
    Field(max_length=MAX_LIST),
]


class _Doc(BaseModel):
    # Strict: `true` is not a percentage, "5" not a number; a misspelt field is an error.
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class VariantDoc(_Doc):
    name: Annotated[str, AfterValidator(_name)]
    weight: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    # Any JSON value, checked (and kept exactly) by annotations/flags/knobs.py.
    value: Any = None


class EnvironmentDoc(_Doc):
    enabled: bool = True
    percentage: Annotated[
        float, Field(ge=0, le=100, allow_inf_nan=False), AfterValidator(_tenths)
    ] = 0.0
    allow_users: Names = []
    allow_groups: Names = []
    variants: Annotated[list[VariantDoc], Field(max_length=100)] = []
    rollout: RolloutDoc | None = None
    value: Any = None
    # `schema` would shadow a BaseModel method.
    knob_schema: Any = Field(default=None, alias="schema")


class FlagDoc(_Doc):
    """The flag document as the API takes it; `Flag.from_doc` turns it into a Flag."""

    key: Annotated[str, AfterValidator(_key)]
    description: Text = ""
    owner: Text = ""
    enabled: bool = True
    environments: dict[Annotated[str, AfterValidator(_name)], EnvironmentDoc] = {}


def _rules(env: EnvironmentDoc, path: str) -> EnvironmentRules:
    """The checks across a list's items, which a field's own validator cannot name the item of."""
    for i, variant in enumerate(env.variants):
        if any(v.name == variant.name for v in env.variants[:i]):
            raise FlagError(f"{path}.variants[{i}].name", f"duplicate variant {variant.name!r}")
    if env.variants and sum(v.weight for v in env.variants) <= 0:
        raise FlagError(f"{path}.variants", "the weights must add up to more than 0")
    if env.rollout is not None and (problem := env.rollout.step_problem()) is not None:
        raise FlagError(f"{path}.rollout.steps[{problem[0]}]", problem[1])
    try:
        value, schema, values = environment_knobs(
            env.value, env.knob_schema, [v.value for v in env.variants]
        )
    except KnobError as error:
        raise FlagError(f"{path}.{error.field}", error.problem) from None
    return EnvironmentRules(
        enabled=env.enabled,
        percentage=env.percentage,
        # Order is kept for display; duplicates carry no meaning.
        allow_users=tuple(dict.fromkeys(env.allow_users)),
        allow_groups=tuple(dict.fromkeys(env.allow_groups)),
        variants=tuple(
            Variant(v.name, v.weight, value) for v, value in zip(env.variants, values, strict=True)
        ),
        rollout=env.rollout,
        value=value,
        schema=schema,
    )


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
        elif _json(before[name]) != _json(value):
            patch[name] = make_merge_patch(before[name], value)
    return patch


def _json(value: object) -> str:
    # Python has True == 1 == 1.0; a knob set from 1 to true or 1.0 is a change all the same.
    # The standard library's encoder: any JSON value compares, integers past 64 bits included.
    return json.dumps(value, sort_keys=True)


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
    state = f"{_pct(env.percentage)}" if env.enabled else f"disabled, {_pct(env.percentage)}"
    return state if env.value is None else f"{state} value {text_of(env.value)}"


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
    if old.rollout != new.rollout:
        plan = "removed" if new.rollout is None else new.rollout.summary()
        parts.append(f"rollout plan {plan}")
    if old.value != new.value:
        parts.append(f"{text_of(old.value)} -> {text_of(new.value)}")
    if old.schema != new.schema:
        parts.append(f"schema {text_of(old.schema)} -> {text_of(new.schema)}")
    return parts


def _short(names: list[str], limit: int = 5) -> list[str]:
    return names if len(names) <= limit else [*names[:limit], f"... ({len(names)} in all)"]


def _variants_text(variants: tuple[Variant, ...]) -> str:
    return "[" + " ".join(f"{v.name}:{v.weight:g}{_valued(v)}" for v in variants) + "]"


def _valued(variant: Variant) -> str:
    return "" if variant.value is None else f"={text_of(variant.value)}"
