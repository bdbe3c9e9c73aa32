"""A rule's `on_firing` in its file: what loads, what each mistake says and the line it names,
and (Hypothesis) any JSON value without nulls loads back as written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.alerts.model import OnFiring
from annotations.alerts.rules import load_rules_file, load_rules_text

EXAMPLE = Path(__file__).resolve().parents[3] / "shipboard" / "rules.example.yaml"
HEAD = "- name: SlowSearch\n  query: {metric: search.p99}\n  op: '>'\n  threshold: 0.5\n"


def load(text: str):
    return load_rules_text(textwrap.dedent(text), "r.yaml")


def errors(text: str) -> list[str]:
    return [str(e) for e in load(text).errors]


def test_on_firing_loads_with_revert_after_defaulting_to_ten_minutes():
    loaded = load(HEAD + "  on_firing: {flag: search.max_results, environment: prod, set: 20}\n")
    assert loaded.errors == []
    [rule] = loaded.rules
    assert rule.on_firing == OnFiring.model_validate(
        {"flag": "search.max_results", "environment": "prod", "set": 20, "revert_after": "10m"}
    )
    assert rule.on_firing.revert_after_ns == 600 * 10**9
    assert rule.model_dump(mode="json", by_alias=True)["on_firing"] == {
        "flag": "search.max_results",
        "environment": "prod",
        "set": 20,
        "revert_after": "10m",
    }


def test_a_rule_without_on_firing_has_none():
    [rule] = load(HEAD).rules
    assert rule.on_firing is None


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("set: 0.5", 0.5),
        ("set: false", False),
        ("set: fast", "fast"),
        ("set: '2024-01-01'", "2024-01-01"),
        ("set: [1, two]", [1, "two"]),
        ("set: {mode: lite, limits: {rows: 20}}", {"mode": "lite", "limits": {"rows": 20}}),
    ],
)
def test_set_takes_any_json_value(written, value):
    text = HEAD + f"  on_firing:\n    flag: search.mode\n    environment: prod\n    {written}\n"
    [rule] = load(text).rules
    assert rule.on_firing is not None
    assert rule.on_firing.set_ == value
    assert type(rule.on_firing.set_) is type(value)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            "  on_firing: 20\n",
            "r.yaml:5: rule SlowSearch: on_firing: a mapping: {flag: KEY, environment: ENV,"
            " set: VALUE, revert_after: 10m}",
        ),
        (
            "  on_firing:\n    flag: search.max_results\n    environment: prod\n",
            "r.yaml:5: rule SlowSearch: on_firing.set: Field required",
        ),
        (
            "  on_firing:\n    environment: prod\n    set: 20\n",
            "r.yaml:5: rule SlowSearch: on_firing.flag: Field required",
        ),
        (
            "  on_firing:\n    flag: search max\n    environment: prod\n    set: 20\n",
            "r.yaml:6: rule SlowSearch: on_firing.flag: 'search max': write 1-100 of"
            " A-Z a-z 0-9 _ . -, starting alphanumeric",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: -prod\n    set: 20\n",
            "r.yaml:7: rule SlowSearch: on_firing.environment: '-prod': write 1-100 of"
            " A-Z a-z 0-9 _ . -, starting alphanumeric",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: prod\n    set: ~\n",
            "r.yaml:8: rule SlowSearch: on_firing.set: a value is required (null would remove"
            " the knob's value)",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: prod\n    set: {rows: 20, mode: ~}\n",
            "r.yaml:8: rule SlowSearch: on_firing.set: null (at mode): a knob's value holds no"
            " nulls (leave the key out)",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: prod\n    set: 2024-01-01\n",
            "r.yaml:8: rule SlowSearch: on_firing.set: not a JSON value: datetime.date(2024, 1, 1)"
            " (quote it to make it a string)",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: prod\n    set: [1, .nan]\n",
            "r.yaml:8: rule SlowSearch: on_firing.set: not a finite number (at [1])",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: prod\n    set: {1: a}\n",
            "r.yaml:8: rule SlowSearch: on_firing.set: a mapping key that is not a string: 1",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: prod\n    set: 99999999999999999999\n",
            "r.yaml:8: rule SlowSearch: on_firing.set: an integer out of 64 bits",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: prod\n    set: 1\n"
            "    revert_after: later\n",
            "r.yaml:9: rule SlowSearch: on_firing.revert_after: 'later' is not a duration"
            " (write e.g. 30s, 5m, 6h, 7d, 1y)",
        ),
        (
            "  on_firing:\n    flag: s\n    environment: prod\n    set: 1\n    value: 2\n",
            "r.yaml:9: rule SlowSearch: on_firing.value: Extra inputs are not permitted",
        ),
    ],
)
def test_each_mistake_names_the_line_and_what_to_write(lines, expected):
    assert errors(HEAD + lines) == [expected]


def test_a_rule_with_a_bad_on_firing_is_left_out_and_the_others_load():
    good = HEAD.replace("SlowSearch", "Fine")
    loaded = load(good + HEAD + "  on_firing: {flag: s, environment: prod}\n")
    assert [r.name for r in loaded.rules] == ["Fine"]
    assert [str(e) for e in loaded.errors] == [
        "r.yaml:9: rule SlowSearch: on_firing.set: Field required"
    ]


def test_the_example_file_turns_a_knob():
    loaded = load_rules_file(EXAMPLE)
    assert loaded.errors == []
    knobs = {r.name: r.on_firing for r in loaded.rules if r.on_firing is not None}
    assert knobs == {
        "HighErrorRate": OnFiring.model_validate(
            {"flag": "search.max_results", "environment": "prod", "set": 20, "revert_after": "10m"}
        )
    }


keys = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
json_values = st.recursive(
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
durations = st.builds(lambda n, unit: f"{n}{unit}", st.integers(0, 600), st.sampled_from("smhd"))


@pytest.mark.slow  # hundreds of examples: about a second or more
@settings(max_examples=200, deadline=None)
@given(keys, keys, json_values, st.none() | durations)
def test_any_knob_written_loads_back_as_written(flag, environment, value, revert_after):
    on_firing = {"flag": flag, "environment": environment, "set": value}
    if revert_after is not None:
        on_firing["revert_after"] = revert_after
    rule = {"name": "R", "query": {"metric": "m"}, "op": ">", "threshold": 1}
    text = yaml.safe_dump([{**rule, "on_firing": on_firing}], sort_keys=False)
    loaded = load_rules_text(text, "gen.yaml")
    assert loaded.errors == []
    [loaded_rule] = loaded.rules
    assert loaded_rule.on_firing is not None
    dumped = loaded_rule.model_dump(mode="json", by_alias=True)["on_firing"]
    assert dumped == {**on_firing, "revert_after": revert_after or "10m"}


@pytest.mark.slow  # hundreds of examples
@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["flag", "environment", "set", "revert_after", "x"]),
        st.none() | st.integers() | st.text(max_size=6) | st.lists(st.none()),
    )
)
def test_any_on_firing_gives_a_rule_or_errors_on_its_lines_never_an_exception(on_firing):
    rule = {"name": "R", "query": {"metric": "m"}, "op": ">", "threshold": 1}
    text = yaml.safe_dump([{**rule, "on_firing": on_firing}], sort_keys=False)
    loaded = load_rules_text(text, "gen.yaml")
    assert len(loaded.rules) + len(loaded.errors) >= 1
    assert all(e.message.startswith("rule R: on_firing") for e in loaded.errors)
    last = len(text.splitlines())
    assert all(1 <= e.line <= last for e in loaded.errors)
    assert not (loaded.rules and loaded.errors)
