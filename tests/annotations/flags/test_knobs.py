"""Typed knobs: a flag environment's and its variants' JSON values, and the schema they obey."""

from __future__ import annotations

import math
import socket
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.flags.knobs import Knob, knob, same
from annotations.flags.model import (
    Flag,
    FlagError,
    describe_change,
    make_merge_patch,
    merge_patch,
)

KEY = "search.max_results"


def flag(prod: dict[str, Any]) -> Flag:
    return Flag.from_doc({"key": KEY, "environments": {"prod": prod}})


def value_of(prod: dict[str, Any]) -> Any:
    return flag(prod).to_doc()["environments"]["prod"].get("value")


def error_of(prod: dict[str, Any]) -> str:
    with pytest.raises(FlagError) as raised:
        flag(prod)
    return str(raised.value)


@pytest.mark.parametrize(
    "value",
    [
        *(True, False, 0, 1, -(2**63), 2**64 - 1, 1.0, -0.0, 2.5e-300, "", "50", "ü ✓", [], {}),
        *([1, "a", True, 1.5], {"limit": 50, "mode": "fast", "tiers": [1, 2]}),
    ],
)
def test_a_value_is_kept_exactly(value: Any) -> None:
    doc = flag({"value": value, "variants": [{"name": "a", "weight": 1, "value": value}]}).to_doc()
    prod = doc["environments"]["prod"]
    for kept in (prod["value"], prod["variants"][0]["value"]):
        assert kept == value
        assert type(kept) is type(value)
        assert orjson.dumps(kept, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            value, option=orjson.OPT_SORT_KEYS
        )


def test_absent_value_and_schema_stay_absent() -> None:
    prod = flag({"value": None, "schema": None}).to_doc()["environments"]["prod"]
    assert "value" not in prod
    assert "schema" not in prod
    assert (
        "value"
        not in flag({"variants": [{"name": "a", "weight": 1}]}).to_doc()["environments"]["prod"][
            "variants"
        ][0]
    )


def test_true_is_not_1_and_1_is_not_1_0() -> None:
    one, true, float_one = flag({"value": 1}), flag({"value": True}), flag({"value": 1.0})
    assert one != true
    assert one != float_one
    assert true != float_one
    assert flag({"value": {"b": 1, "a": 2}}) == flag({"value": {"a": 2, "b": 1}})
    assert [c.summary for c in describe_change(one, true)] == ["search.max_results prod: 1 -> true"]
    assert make_merge_patch(one.to_doc(), true.to_doc()) == {
        "environments": {"prod": {"value": True}}
    }
    assert make_merge_patch(one.to_doc(), float_one.to_doc()) == {
        "environments": {"prod": {"value": 1.0}}
    }


def test_a_merge_patch_sets_and_deletes_a_value() -> None:
    before = flag({"percentage": 10, "value": 50, "schema": {"min": 1, "max": 100}})
    patched = merge_patch(before.to_doc(), {"environments": {"prod": {"value": 20}}})
    after = Flag.from_doc(patched)
    assert after.environments["prod"].value == knob(20, "value")
    assert after.environments["prod"].percentage == 10.0
    cleared = Flag.from_doc(merge_patch(patched, {"environments": {"prod": {"value": None}}}))
    assert cleared.environments["prod"].value is None
    assert "value" not in cleared.to_doc()["environments"]["prod"]


def test_an_object_value_merges_key_by_key() -> None:
    before = flag({"value": {"limit": 50, "mode": "fast"}}).to_doc()
    patch = {"environments": {"prod": {"value": {"limit": 20, "mode": None}}}}
    assert Flag.from_doc(merge_patch(before, patch)).to_doc()["environments"]["prod"]["value"] == {
        "limit": 20
    }


def test_a_value_read_is_a_copy_and_so_is_the_one_written() -> None:
    written: dict[str, Any] = {"tiers": [1, 2]}
    f = flag({"value": written})
    got = f.environments["prod"].value
    assert got is not None
    got.get()["tiers"].append(3)
    written["tiers"].append(4)
    assert got.data == {"tiers": [1, 2]}
    assert f.to_doc()["environments"]["prod"]["value"] == {"tiers": [1, 2]}


@pytest.mark.parametrize(
    ("prod", "error"),
    [
        (
            {"value": 500, "schema": {"min": 1, "max": 100}},
            "environments.prod.value: 500 is above the maximum 100 (schema.max)",
        ),
        (
            {"value": 0, "schema": {"min": 1, "max": 100}},
            "environments.prod.value: 0 is below the minimum 1 (schema.min)",
        ),
        (
            {"value": 0.5, "schema": {"min": 1}},
            "environments.prod.value: 0.5 is below the minimum 1 (schema.min)",
        ),
        (
            {"value": "50", "schema": {"max": 100}},
            'environments.prod.value: "50" is not a number (schema.max)',
        ),
        (
            {"value": True, "schema": {"min": 0}},
            "environments.prod.value: true is not a number (schema.min)",
        ),
        (
            {
                "value": 10,
                "schema": {"enum": [10, 20, 50]},
                "variants": [
                    {"name": "a", "weight": 1, "value": 20},
                    {"name": "b", "weight": 1},
                    {"name": "c", "weight": 1, "value": "x"},
                ],
            },
            'environments.prod.variants[2].value: "x" is not one of [10, 20, 50] (schema.enum)',
        ),
        (
            {"value": True, "schema": {"enum": [1, 0]}},
            "environments.prod.value: true is not one of [1, 0] (schema.enum)",
        ),
        (
            {"value": 200, "schema": {"type": "integer", "maximum": 100}},
            "environments.prod.value: 200 is greater than the maximum of 100 (schema.maximum)",
        ),
        (
            {
                "value": {"limit": 500},
                "schema": {"type": "object", "properties": {"limit": {"maximum": 100}}},
            },
            "environments.prod.value.limit: 500 is greater than the maximum of 100"
            " (schema.properties.limit.maximum)",
        ),
        (
            {"value": 1.5, "schema": {"type": "integer"}},
            "environments.prod.value: 1.5 is not of type 'integer' (schema.type)",
        ),
    ],
)
def test_a_value_outside_its_schema_names_the_field_and_the_bound(
    prod: dict[str, Any], error: str
) -> None:
    assert error_of(prod) == error


def test_values_inside_their_schema_are_accepted() -> None:
    rules = flag(
        {"value": 100, "schema": {"min": 1, "max": 100.0, "enum": [1, 50.0, 100]}}
    ).environments["prod"]
    assert rules.value == knob(100, "value")
    assert flag({"value": 50, "schema": {"enum": [50.0]}}).environments["prod"].value == knob(
        50, "value"
    )
    assert value_of({"value": "fast", "schema": {"enum": ["fast", "exact"]}}) == "fast"
    assert value_of({"value": {"a": [1]}, "schema": {"enum": [{"a": [1.0]}]}}) == {"a": [1]}
    assert flag({"schema": {"max": 1}}).environments["prod"].value is None


@pytest.mark.parametrize(
    ("prod", "error"),
    [
        ({"schema": {"min": 5, "max": 1}}, "environments.prod.schema: min 5 is above max 1"),
        ({"schema": {"min": "1"}}, 'environments.prod.schema.min: must be a number, not "1"'),
        ({"schema": {"max": True}}, "environments.prod.schema.max: must be a number, not true"),
        ({"schema": {"enum": []}}, "environments.prod.schema.enum: must be a non-empty list"),
        ({"schema": {"enum": 3}}, "environments.prod.schema.enum: must be a non-empty list"),
        ({"schema": {"enum": [1, 2, 1.0]}}, "environments.prod.schema.enum[2]: 1.0 is listed"),
        ({"schema": {"enum": [1, None]}}, "environments.prod.schema.enum[1]: null is not a value"),
        ({"schema": True}, "environments.prod.schema: must be an object"),
        ({"schema": {"min": 1, "type": "integer"}}, "environments.prod.schema: min and max belong"),
        (
            {"schema": {"type": "integer", "maximum": "x"}},
            "environments.prod.schema.maximum: not a JSON Schema: 'x' is not of type 'number'",
        ),
        ({"schema": {"type": "colour"}}, "environments.prod.schema.type: not a JSON Schema"),
        ({"schema": {"pattern": "("}}, "environments.prod.schema.pattern: not a JSON Schema"),
        ({"value": 1, "schema": {"$ref": "#"}}, "environments.prod.schema: refers to itself"),
        (
            {
                "value": 1,
                "schema": {"$schema": "http://json-schema.org/draft-04/schema#", "$ref": 1},
            },
            "environments.prod.schema.$ref: not a JSON Schema: a reference must be a string",
        ),
        ({"schema": {"$schema": 4}}, "environments.prod.schema.$schema: must be the URI of a JSON"),
        ({"value": float("inf")}, "environments.prod.value: inf is not a JSON number"),
        ({"value": 2**64}, "environments.prod.value: not a JSON value: Integer exceeds 64-bit"),
        ({"value": "\ud800"}, "environments.prod.value: not a JSON value: str is not valid UTF-8"),
        ({"value": [1, [None]]}, "environments.prod.value[1][0]: null is not a value"),
        ({"value": {1: "a"}}, "environments.prod.value: key 1 is not a string"),
        ({"value": (1, 2)}, "environments.prod.value: a tuple is not a JSON value"),
        ({"value": "x" * 70_000}, "environments.prod.value: is 70002 bytes of JSON; at most"),
        ({"value": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}, "deeper"),
    ],
)
def test_a_bad_value_or_schema_is_an_error_naming_it(prod: dict[str, Any], error: str) -> None:
    assert error in error_of(prod)


def test_a_schema_fetches_nothing() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/limits.json"
        error = error_of({"value": 1, "schema": {"$ref": url}})
        assert error == (
            f"environments.prod.schema: cannot resolve $ref {url!r}:"
            " only its own parts are followed"
        )
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_a_reference_within_the_schema_is_followed() -> None:
    limits = {"$defs": {"limit": {"type": "integer", "maximum": 100}}, "$ref": "#/$defs/limit"}
    assert value_of({"value": 100, "schema": limits}) == 100
    assert "101 is greater than the maximum of 100 (schema.maximum)" in error_of(
        {"value": 101, "schema": limits}
    )


def test_another_draft_is_followed_when_named() -> None:
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 10}
    assert value_of({"value": 10, "schema": {**draft4, "exclusiveMaximum": False}}) == 10
    assert "10 is greater than or equal to the maximum of 10" in error_of(
        {"value": 10, "schema": {**draft4, "exclusiveMaximum": True}}
    )


def test_a_created_knob_says_its_value() -> None:
    created = flag({"percentage": 0, "value": {"limit": 50}})
    assert [c.summary for c in describe_change(None, created)] == [
        'search.max_results created: prod 0% value {"limit": 50}'
    ]
    added = Flag.from_doc(
        {"key": KEY, "environments": {"prod": {}, "staging": {"enabled": False, "value": 5}}}
    )
    assert [c.summary for c in describe_change(flag({}), added)] == [
        "search.max_results staging: added (disabled, 0% value 5)"
    ]


def test_knob_changes_are_summarised() -> None:
    before = flag({"percentage": 10, "value": 50, "schema": {"min": 1, "max": 100}})
    summaries = [
        [c.summary for c in describe_change(before, flag(after))]
        for after in (
            {"percentage": 10, "value": 20, "schema": {"min": 1, "max": 100}},
            {"percentage": 25, "value": 20, "schema": {"min": 1, "max": 100}},
            {"percentage": 10, "value": 50, "schema": {"min": 1, "max": 200}},
            {"percentage": 10},
            {"percentage": 10, "value": 50, "schema": {"min": 1, "max": 100}}
            | {"variants": [{"name": "a", "weight": 1, "value": 20}]},
            {"percentage": 10, "value": "x" * 100},
        )
    ]
    assert summaries == [
        ["search.max_results prod: 50 -> 20"],
        ["search.max_results prod: 10% -> 25%; 50 -> 20"],
        ['search.max_results prod: schema {"max": 100, "min": 1} -> {"max": 200, "min": 1}'],
        ['search.max_results prod: 50 -> (none); schema {"max": 100, "min": 1} -> (none)'],
        ["search.max_results prod: variants [] -> [a:1=20]"],
        [f'search.max_results prod: 50 -> "{"x" * 58}…; schema {{"max": 100, "min": 1}} -> (none)'],
    ]


# Arbitrary decoded JSON, and what else a YAML file or a careless caller could hand over.
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
keywords = st.sampled_from(
    [
        *("min", "max", "enum", "type", "minimum", "maximum", "exclusiveMaximum", "multipleOf"),
        *("pattern", "items", "properties", "required", "const", "$ref", "anyOf", "not"),
        *("$schema", "minLength", "format", "additionalProperties", "$defs"),
    ]
)
drafts = st.sampled_from(
    [f"http://json-schema.org/draft-0{n}/schema#" for n in (3, 4, 6, 7)]
    + [f"https://json-schema.org/draft/{d}/schema" for d in ("2019-09", "2020-12")]
)
keyword_schemas = st.dictionaries(keywords, json_values, max_size=4)
schemas = (
    json_values
    | keyword_schemas
    | st.builds(lambda draft, rest: {**rest, "$schema": draft}, drafts, keyword_schemas)
)


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(value=json_values, rules=schemas, variant=json_values)
def test_any_value_and_schema_is_accepted_or_a_flag_error_with_a_path(
    value: Any, rules: Any, variant: Any
) -> None:
    prod = {
        "value": value,
        "schema": rules,
        "variants": [{"name": "a", "weight": 1, "value": variant}],
    }
    refused: FlagError | None = None
    try:
        accepted = flag(prod)
    except FlagError as error:
        refused = error
    if refused is not None:
        assert refused.path.startswith("environments.prod.")
        assert refused.problem
        return
    # Accepted: the full document reads back as the same flag, with the same JSON.
    assert Flag.from_doc(accepted.to_doc()) == accepted
    doc = accepted.to_doc()["environments"]["prod"]
    if value is not None:
        assert orjson.dumps(doc["value"], option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            value, option=orjson.OPT_SORT_KEYS
        )


@given(value=json_values)
def test_without_a_schema_every_json_value_without_null_is_kept(value: Any) -> None:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS) if _plain(value) else None
    if text is None or b"null" in text or len(text) > 65_536:
        return
    assert knob(value, "value") == Knob(text.decode(), value)
    got = flag({"value": value}).to_doc()["environments"]["prod"]["value"]
    assert orjson.dumps(got, option=orjson.OPT_SORT_KEYS) == text


@given(
    value=st.integers(-1000, 1000) | st.floats(-1000, 1000),
    low=st.integers(-500, 500),
    span=st.integers(0, 500),
)
def test_shorthand_bounds_accept_exactly_the_range(value: float, low: int, span: int) -> None:
    high = low + span
    rules = {"min": low, "max": high}
    if low <= value <= high:
        assert flag({"value": value, "schema": rules}).environments["prod"].value is not None
    else:
        word = "below the minimum" if value < low else "above the maximum"
        assert word in error_of({"value": value, "schema": rules})


@given(a=json_values, b=json_values)
def test_json_equality_is_symmetric_and_never_takes_a_boolean_for_a_number(a: Any, b: Any) -> None:
    assert same(a, b) == same(b, a)
    if isinstance(a, bool) != isinstance(b, bool):
        assert not same(a, b)


def _plain(value: Any) -> bool:
    """Whether orjson can write `value` as it is (no NaN, no 65-bit int, no lone surrogate)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return all(map(_plain, value))
    if isinstance(value, dict):
        return all(map(_plain, value)) and all(map(_plain, value.values()))
    return True
