"""The flag document: validation, defaults, RFC 7396 merge patch and change summaries."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.flags.model import (
    EnvironmentRules,
    Flag,
    FlagChange,
    FlagError,
    describe_change,
    make_merge_patch,
    merge_patch,
)

FULL = {
    "key": "new-search",
    "description": "Search v2",
    "owner": "search-team",
    "enabled": True,
    "environments": {
        "prod": {
            "enabled": True,
            "percentage": 10.0,
            "allow_users": ["u1"],
            "allow_groups": ["staff"],
            "variants": [{"name": "blue", "weight": 50.0}, {"name": "green", "weight": 50.0}],
        }
    },
}


def test_full_document_round_trips() -> None:
    assert Flag.from_doc(FULL).to_doc() == FULL


def test_missing_fields_take_their_defaults() -> None:
    assert Flag.from_doc({"key": "f", "environments": {"prod": {}}}).to_doc() == {
        "key": "f",
        "description": "",
        "owner": "",
        "enabled": True,
        "environments": {
            "prod": {
                "enabled": True,
                "percentage": 0.0,
                "allow_users": [],
                "allow_groups": [],
                "variants": [],
            }
        },
    }


def test_only_keeps_one_environment() -> None:
    flag = Flag.from_doc({"key": "f", "environments": {"prod": {}, "staging": {}}})
    assert list(flag.only("staging").environments) == ["staging"]
    assert flag.only("dev").environments == {}


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ([], ""),
        ({}, "key"),
        ({"key": ""}, "key"),
        ({"key": "-x"}, "key"),
        ({"key": "a/b"}, "key"),
        ({"key": "x" * 101}, "key"),
        ({"key": "snapshot"}, "key"),
        ({"key": "f", "enviroments": {}}, "enviroments"),
        ({"key": "f", "enabled": "yes"}, "enabled"),
        ({"key": "f", "enabled": 1}, "enabled"),
        ({"key": "f", "owner": 3}, "owner"),
        ({"key": "f", "description": "x" * 2001}, "description"),
        ({"key": "f", "environments": []}, "environments"),
        ({"key": "f", "environments": {"a b": {}}}, "environments.a b"),
        ({"key": "f", "environments": {"prod": 1}}, "environments.prod"),
        ({"key": "f", "environments": {"prod": {"pct": 1}}}, "environments.prod.pct"),
        (
            {"key": "f", "environments": {"prod": {"percentage": 100.1}}},
            "environments.prod.percentage",
        ),
        (
            {"key": "f", "environments": {"prod": {"percentage": -0.1}}},
            "environments.prod.percentage",
        ),
        (
            {"key": "f", "environments": {"prod": {"percentage": 0.05}}},
            "environments.prod.percentage",
        ),
        (
            {"key": "f", "environments": {"prod": {"percentage": "5"}}},
            "environments.prod.percentage",
        ),
        (
            {"key": "f", "environments": {"prod": {"percentage": True}}},
            "environments.prod.percentage",
        ),
        (
            {"key": "f", "environments": {"prod": {"percentage": float("nan")}}},
            "environments.prod.percentage",
        ),
        (
            {"key": "f", "environments": {"prod": {"allow_users": "ann"}}},
            "environments.prod.allow_users",
        ),
        (
            {"key": "f", "environments": {"prod": {"allow_groups": ["ok", ""]}}},
            "environments.prod.allow_groups[1]",
        ),
        ({"key": "f", "environments": {"prod": {"variants": {}}}}, "environments.prod.variants"),
        (
            {"key": "f", "environments": {"prod": {"variants": [{"name": "a"}]}}},
            "environments.prod.variants[0].weight",
        ),
        (
            {"key": "f", "environments": {"prod": {"variants": [{"name": "a", "weight": -1}]}}},
            "environments.prod.variants[0].weight",
        ),
        (
            {"key": "f", "environments": {"prod": {"variants": [{"name": "a", "weight": 0}]}}},
            "environments.prod.variants",
        ),
        (
            {
                "key": "f",
                "environments": {
                    "prod": {"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}
                },
            },
            "environments.prod.variants[1].name",
        ),
    ],
)
def test_invalid_documents_name_the_bad_field(doc: Any, path: str) -> None:
    with pytest.raises(FlagError) as caught:
        Flag.from_doc(doc)
    assert caught.value.path == path
    assert caught.value.status == 400
    assert str(caught.value).startswith(f"{path}: " if path else caught.value.problem)


def test_percentage_steps_of_a_tenth_are_accepted_and_normalised() -> None:
    flag = Flag.from_doc(
        {"key": "f", "environments": {"prod": {"percentage": 0.30000000000000004}}}
    )
    assert flag.environments["prod"].percentage == 0.3
    assert Flag.from_doc({"key": "f", "environments": {"p": {"percentage": 100}}}).environments[
        "p"
    ].percentage == pytest.approx(100.0)


@pytest.mark.slow
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_arbitrary_json_raises_only_flag_error(doc: Any) -> None:
    with contextlib.suppress(FlagError):
        Flag.from_doc(doc)


# RFC 7396, appendix A: (target, patch, result).
RFC_7396_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7396_CASES)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    before = repr(target)
    assert merge_patch(target, patch) == result
    assert repr(target) == before  # the target is not modified in place


def test_merge_patch_moves_one_percentage() -> None:
    doc = Flag.from_doc(FULL).to_doc()
    patched = Flag.from_doc(merge_patch(doc, {"environments": {"prod": {"percentage": 50}}}))
    assert patched.environments["prod"].percentage == 50.0
    assert patched.environments["prod"].allow_users == ("u1",)


json_values = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow
@given(json_values, json_values)
def test_make_merge_patch_turns_before_into_after(before: Any, after: Any) -> None:
    assert merge_patch(before, make_merge_patch(before, after)) == after


def test_make_merge_patch_is_minimal() -> None:
    assert make_merge_patch({"a": 1, "b": {"c": 1, "d": 2}}, {"a": 1, "b": {"c": 2}}) == {
        "b": {"c": 2, "d": None}
    }


def flag(**env: Any) -> Flag:
    return Flag.from_doc({"key": "new-search", "environments": {"prod": env}})


def test_describe_percentage_move() -> None:
    assert describe_change(flag(percentage=10), flag(percentage=25)) == [
        FlagChange("prod", "new-search prod: 10% -> 25%")
    ]


def test_describe_create_delete_kill_and_revive() -> None:
    created = describe_change(None, flag(percentage=5))
    assert created == [FlagChange(None, "new-search created: prod 5%")]
    assert describe_change(flag(), None) == [FlagChange(None, "new-search deleted")]
    killed = Flag("new-search", enabled=False, environments={"prod": EnvironmentRules()})
    assert describe_change(flag(), killed) == [
        FlagChange(None, "new-search killed (off in every environment)")
    ]
    assert describe_change(killed, flag()) == [FlagChange(None, "new-search revived")]


def test_describe_rules_changes_per_environment() -> None:
    before = Flag.from_doc(
        {"key": "k", "owner": "a", "environments": {"prod": {"allow_users": ["x", "y"]}, "old": {}}}
    )
    after = Flag.from_doc(
        {
            "key": "k",
            "owner": "b",
            "environments": {
                "prod": {
                    "enabled": False,
                    "allow_users": ["y", "z"],
                    "variants": [{"name": "a", "weight": 1}],
                },
                "staging": {"percentage": 100},
            },
        }
    )
    assert describe_change(before, after) == [
        FlagChange(None, "k: owner 'a' -> 'b'"),
        FlagChange("old", "k old: removed"),
        FlagChange(
            "prod", "k prod: disabled; allow_users +z; allow_users -x; variants [] -> [a:1]"
        ),
        FlagChange("staging", "k staging: added (100%)"),
    ]


def test_describe_no_change_is_empty() -> None:
    assert describe_change(flag(percentage=1), flag(percentage=1)) == []
