"""Bucketing: sticky, monotonic, independent between flags, shares as configured."""

from __future__ import annotations

import mmh3
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from annotations.flags.bucketing import BUCKETS, bucket, evaluate, in_rollout, pick_variant
from annotations.flags.model import Flag, Variant

users = st.text(min_size=0, max_size=40)
keys = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,30}", fullmatch=True)
tenths = st.integers(0, 1000)
POPULATION = [f"user-{i}" for i in range(100_000)]


def flag(key: str = "f", **env: object) -> Flag:
    return Flag.from_doc({"key": key, "environments": {"prod": env}})


def test_bucket_is_murmur3_of_key_and_user_as_documented() -> None:
    assert bucket("new-search", "alice") == mmh3.hash("new-search:alice", 0, signed=False) % 100000
    # A pinned value: a change of hash would move every user of every flag.
    assert bucket("new-search", "alice") == 30_393


@pytest.mark.slow
@given(keys, users)
def test_bucket_is_sticky_and_in_range(key: str, user: str) -> None:
    first = bucket(key, user)
    assert 0 <= first < BUCKETS
    assert all(bucket(key, user) == first for _ in range(3))
    assert evaluate(flag(key, percentage=50), "prod", user) == evaluate(
        flag(key, percentage=50), "prod", user
    )


@given(keys, users, tenths, tenths)
def test_raising_the_percentage_never_removes_a_user(key: str, user: str, a: int, b: int) -> None:
    low, high = sorted((a / 10, b / 10))
    if in_rollout(key, user, low):
        assert in_rollout(key, user, high)


@given(keys, users)
def test_zero_percent_is_nobody_and_hundred_is_everybody(key: str, user: str) -> None:
    assert not in_rollout(key, user, 0.0)
    assert in_rollout(key, user, 100.0)


@pytest.mark.slow
@pytest.mark.parametrize("percentage", [0.1, 1.0, 5.0, 25.0, 50.0, 99.9])
def test_share_is_within_one_percent_over_100000_users(percentage: float) -> None:
    f = flag("checkout-v2", percentage=percentage)
    share = sum(evaluate(f, "prod", u).enabled for u in POPULATION) / len(POPULATION) * 100
    assert abs(share - percentage) <= 1.0


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(st.integers(0, 1000).map(lambda t: t / 10), st.integers(0, 2**31))
def test_share_holds_for_any_percentage_and_population(percentage: float, offset: int) -> None:
    population = [f"u{offset + i}" for i in range(100_000)]
    share = sum(in_rollout("k", u, percentage) for u in population) / len(population) * 100
    assert abs(share - percentage) <= 1.0


def test_flags_bucket_independently() -> None:
    # With two 50% flags, about a quarter of the users must have both if the flags are independent.
    both = sum(in_rollout("flag-a", u, 50) and in_rollout("flag-b", u, 50) for u in POPULATION)
    assert abs(both / len(POPULATION) - 0.25) <= 0.01


@pytest.mark.slow
@given(keys, keys)
def test_two_keys_put_users_in_different_buckets(key_a: str, key_b: str) -> None:
    assume(key_a != key_b)
    same = sum(bucket(key_a, u) == bucket(key_b, u) for u in POPULATION[:200])
    assert same <= 5


@pytest.mark.parametrize(
    "weights", [(50, 50), (1, 1, 2), (10, 0, 90), (33.3, 33.3, 33.4), (1, 999), (20, 20, 20, 40)]
)
def test_variant_weights_are_honoured_within_one_percent(weights: tuple[float, ...]) -> None:
    variants = tuple(Variant(f"v{i}", w) for i, w in enumerate(weights))
    counts = dict.fromkeys((v.name for v in variants), 0)
    for u in POPULATION:
        name = pick_variant("exp", u, variants)
        assert name is not None
        counts[name] += 1
    total = sum(weights)
    for v in variants:
        assert abs(counts[v.name] / len(POPULATION) - v.weight / total) <= 0.01


@given(
    st.lists(st.integers(0, 100), min_size=1, max_size=6).filter(lambda w: sum(w) > 0),
    users,
)
def test_variant_is_sticky_and_never_zero_weight(weights: list[int], user: str) -> None:
    variants = tuple(Variant(f"v{i}", w) for i, w in enumerate(weights))
    name = pick_variant("exp", user, variants)
    assert name == pick_variant("exp", user, variants)
    assert name is not None
    assert next(v.weight for v in variants if v.name == name) > 0


@pytest.mark.slow
def test_variant_bucket_is_independent_of_the_rollout_bucket() -> None:
    # Users in a 50% rollout must still split 50/50 between two variants.
    f = flag(
        "exp", percentage=50, variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]
    )
    results = [evaluate(f, "prod", u) for u in POPULATION]
    on = [r for r in results if r.enabled]
    share_a = sum(r.variant == "a" for r in on) / len(on)
    assert abs(share_a - 0.5) <= 0.01


def test_kill_switch_wins_over_allowlist() -> None:
    f = Flag.from_doc(
        {"key": "f", "enabled": False, "environments": {"prod": {"allow_users": ["ann"]}}}
    )
    assert evaluate(f, "prod", "ann").to_doc() == {
        "key": "f",
        "environment": "prod",
        "enabled": False,
        "variant": None,
        "reason": "killed",
        "value": None,
    }


def test_environment_switched_off_is_killed_there_only() -> None:
    f = Flag.from_doc(
        {
            "key": "f",
            "environments": {
                "prod": {"enabled": False, "percentage": 100},
                "staging": {"percentage": 100},
            },
        }
    )
    assert evaluate(f, "prod", "u").reason == "killed"
    assert evaluate(f, "staging", "u").enabled


def test_unknown_environment_is_off_by_default() -> None:
    assert evaluate(flag(percentage=100), "dev", "u").reason == "default"
    assert not evaluate(flag(percentage=100), "dev", "u").enabled


def test_allowlists_of_users_and_groups_come_before_the_rollout() -> None:
    f = flag(
        allow_users=["ann"],
        allow_groups=["staff"],
        variants=[{"name": "only", "weight": 1}],
    )
    assert evaluate(f, "prod", "ann").to_doc()["reason"] == "allowlist"
    assert evaluate(f, "prod", "bob", ["staff"]).variant == "only"
    assert evaluate(f, "prod", "bob", ["guests"]).reason == "default"
    assert evaluate(f, "prod", "bob", ["guests"]).variant is None


def test_rollout_reason_and_variant_when_in_the_percentage() -> None:
    f = flag(percentage=100, variants=[{"name": "blue", "weight": 1}])
    assert evaluate(f, "prod", "carol").to_doc() == {
        "key": "f",
        "environment": "prod",
        "enabled": True,
        "variant": "blue",
        "reason": "rollout",
        "value": None,
    }


def test_no_variants_means_variant_none() -> None:
    assert evaluate(flag(percentage=100), "prod", "u").variant is None


def test_a_rollout_ramp_keeps_its_users() -> None:
    # A rollout plan moving a flag from 5% to 25%: everyone who had it at 5% keeps it.
    plan = {"steps": [5, 25, 100], "interval": "2s"}
    at_5 = flag("ramp", percentage=5, rollout=plan)
    at_25 = flag("ramp", percentage=25, rollout=plan)
    had = {u for u in POPULATION if evaluate(at_5, "prod", u).enabled}
    has = {u for u in POPULATION if evaluate(at_25, "prod", u).enabled}
    assert had <= has
    assert len(had) == pytest.approx(5_000, rel=0.05)
    assert len(has) == pytest.approx(25_000, rel=0.05)
