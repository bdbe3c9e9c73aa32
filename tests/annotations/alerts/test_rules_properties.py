"""The rule file parser under Hypothesis: written rules load back as they were, and any text
gives rules and errors, never an exception."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.alerts.model import Rule
from annotations.alerts.rules import load_rules_text

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_:.-]{0,20}", fullmatch=True)
words = st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True)
durations = st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, 600), st.sampled_from("smhd"))
selectors = st.fixed_dictionaries(
    {"metric": words},
    optional={
        "tags": st.dictionaries(words, words, max_size=3),
        "agg": st.sampled_from(["mean", "sum", "min", "max", "count", "last"]),
        "group_by": st.lists(words, max_size=3, unique=True),
    },
)
rule_dicts = st.fixed_dictionaries(
    {
        "name": names,
        "query": selectors,
        "op": st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
        "threshold": st.floats(allow_nan=False, allow_infinity=False, width=32),
    },
    optional={
        "window": durations,
        "for": st.sampled_from(["0s"]) | durations,
        "keep_firing_for": durations,
        "no_data": st.sampled_from(["ok", "alerting", "nodata", "keep_last"]),
        "interval": durations,
        "labels": st.dictionaries(words.filter(lambda w: w != "alertname"), words, max_size=3),
        "annotations": st.dictionaries(words, st.text(max_size=30), max_size=2),
        "notify": st.lists(words, max_size=2),
    },
)


@pytest.mark.slow  # hundreds of examples: about a second or more
@settings(max_examples=200, deadline=None)
@given(st.lists(rule_dicts, max_size=5, unique_by=lambda r: r["name"]), st.booleans())
def test_written_rules_load_back_as_they_were(rules, under_a_key):
    for rule in rules:  # a ratio_of may only group by what the query groups by
        rule["ratio_of"] = {"metric": "total", "group_by": rule["query"].get("group_by", [])}
    text = yaml.safe_dump({"rules": rules} if under_a_key else rules, sort_keys=False)
    loaded = load_rules_text(text, "gen.yaml")
    assert loaded.errors == []
    assert [r.model_dump() for r in loaded.rules] == [
        Rule.model_validate(r).model_dump() for r in rules
    ]
    lines = text.splitlines()
    for rule in loaded.rules:
        file, _, line = rule.source.rpartition(":")
        assert file == "gen.yaml"
        # The rule's line is the one where its mapping starts (`- name:` or `- query:` …).
        assert lines[int(line) - 1].lstrip().startswith("- ")


yaml_like = st.lists(
    st.sampled_from(
        ["- ", "name: ", "query: ", "{", "}", "[", "]", ":", "\n", "  ", "rules:", "'", '"',
         "op: '>'", "threshold: 1", "metric: cpu", "&a ", "*a", "<<: ", "---", "#", "!!str ",
         "!!int ", "!!float ", "!!binary ", "? "]
    )
    | st.text(max_size=5),
    max_size=40,
).map("".join)  # fmt: skip


@pytest.mark.slow  # hundreds of examples: about a second or more
@settings(max_examples=400, deadline=None)
@given(yaml_like)
def test_any_text_gives_rules_and_errors_never_an_exception(text):
    loaded = load_rules_text(text, "any.yaml")
    count = len(text.splitlines()) + 2  # YAML breaks lines at \r, \x85 and more, too
    for error in loaded.errors:
        assert error.file == "any.yaml"
        assert 1 <= error.line <= count
        assert error.message
    for rule in loaded.rules:
        assert isinstance(rule, Rule)
        assert rule.source.startswith("any.yaml:")
