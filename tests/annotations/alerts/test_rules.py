"""Rule files: what loads, what each error says and the line it names, the set of files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from annotations.alerts.rules import RuleError, RuleSet, load_rules_file, load_rules_text

EXAMPLE = Path(__file__).resolve().parents[3] / "shipboard" / "rules.example.yaml"

GOOD = """\
- name: HighErrorRate
  query: {metric: http.errors.count, tags: {service: web}, agg: sum, group_by: [service, host]}
  ratio_of: {metric: http.requests.count, agg: sum}
  window: 5m
  op: ">"
  threshold: 0.02
  for: 5m
  keep_firing_for: 10m
  no_data: ok
  interval: 15s
  labels: {severity: page, team: search}
  annotations: {summary: "{service} errors at {value:.1%}", runbook: "https://example.com/r"}
  notify: [oncall]
- name: LowDisk
  query: {metric: disk.free}
  op: <
  threshold: 1e9
"""


def load(text: str):
    return load_rules_text(textwrap.dedent(text), "r.yaml")


def errors(text: str) -> list[str]:
    return [str(e) for e in load(text).errors]


def test_a_list_of_rules_loads_every_field():
    loaded = load(GOOD)
    assert loaded.errors == []
    first, second = loaded.rules
    assert first.name == "HighErrorRate"
    assert first.query.group_by == ("service", "host")
    assert first.ratio_of is not None
    assert first.ratio_of.metric == "http.requests.count"
    assert (first.window_ns, first.for_ns, first.keep_firing_for_ns) == (
        300 * 10**9,
        300 * 10**9,
        600 * 10**9,
    )
    assert (first.op, first.threshold, first.no_data, first.interval_ns(1)) == (
        ">",
        0.02,
        "ok",
        15 * 10**9,
    )
    assert first.notify == ("oncall",)
    assert first.source == "r.yaml:1"
    assert (second.source, second.threshold, second.interval, second.notify) == (
        "r.yaml:14",
        1e9,
        None,
        None,
    )


def test_a_mapping_with_rules_loads_the_same():
    indented = "rules:\n" + textwrap.indent(GOOD, "  ")
    loaded = load(indented)
    assert loaded.errors == []
    assert [r.source for r in loaded.rules] == ["r.yaml:2", "r.yaml:15"]
    assert [r.model_dump() for r in loaded.rules] == [r.model_dump() for r in load(GOOD).rules]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "rules:\n", "rules: []\n", "[]\n"])
def test_an_empty_file_has_no_rules_and_no_errors(text):
    assert load(text).rules == load(text).errors == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- name: A\n  query: {metric: cpu}\n  op: '>'\n  threshold: 1\n  for: 5x\n",
            "r.yaml:5: rule A: for: '5x' is not a duration (write e.g. 30s, 5m, 6h, 7d, 1y)",
        ),
        (
            "- name: A\n  query: {metric: cpu}\n  op: '>'\n  threshold: 1\n  colour: red\n",
            "r.yaml:5: rule A: colour: Extra inputs are not permitted",
        ),
        (
            "- name: A\n  query: {metric: cpu}\n  op: '>'\n",
            "r.yaml:1: rule A: threshold: Field required",
        ),
        (
            "- name: A\n  query:\n    metric: cpu\n    agg: median\n  op: '>'\n  threshold: 1\n",
            "r.yaml:4: rule A: query.agg: Input should be 'mean', 'sum', 'min', 'max', 'count',"
            " 'last', 'increase' or 'rate'",
        ),
        (
            "- name: A\n  query: {metric: cpu, group_by: [host, 3]}\n  op: '>'\n  threshold: 1\n",
            "r.yaml:2: rule A: query.group_by.1: Input should be a valid string",
        ),
        (
            "- name: A\n  query: {metric: cpu, tags: {host: '!'}}\n  op: '>'\n  threshold: 1\n",
            "r.yaml:2: rule A: query.tags.host: host:! is not key:value (e.g. host:web-*)",
        ),
        (
            "- name: A\n  query: {metric: cpu}\n  op: '>'\n  threshold: 1\n  window: 0s\n",
            "r.yaml:5: rule A: window: must be longer than 0s",
        ),
        (
            "- name: A\n  query: {metric: cpu}\n  op: '>'\n  threshold: 1\n  interval: 0ms\n",
            "r.yaml:5: rule A: interval: must be longer than 0s",
        ),
        (
            "- name: A\n  query: {metric: e, group_by: [host]}\n  ratio_of:\n    metric: r\n"
            "    group_by: [service]\n  op: '>'\n  threshold: 1\n",
            "r.yaml:5: rule A: ratio_of.group_by: service not in query.group_by: each group of"
            " the query divides by the ratio_of group it falls in",
        ),
        (
            "- name: A\n  query: {metric: cpu}\n  op: '>'\n  threshold: 1\n"
            "  labels: {alertname: B}\n",
            "r.yaml:5: rule A: labels.alertname: alertname is the rule's name, set on every alert",
        ),
        (
            "- name: A\n  query: {metric: cpu}\n  op: '>'\n  threshold: 1\n  source: x:1\n",
            "r.yaml:5: rule A: source: not a rule field (set on loading)",
        ),
        (
            "- name: bad name\n  query: {metric: cpu}\n  op: '>'\n  threshold: 1\n",
            "r.yaml:1: rule bad name: name: String should match pattern"
            " '^[A-Za-z_][A-Za-z0-9_:.-]*$'",
        ),
        ("- just a string\n", "r.yaml:1: a rule is a mapping (name: …, query: …)"),
        (
            "groups:\n  - name: A\n",
            "r.yaml:1: unknown key 'groups': a rules file is a list of rules, or a mapping with"
            " `rules:` holding that list",
        ),
        (
            "name: A\nquery: {metric: cpu}\n",
            "r.yaml:1: unknown key 'name': a rules file is a list of rules, or a mapping with"
            " `rules:` holding that list",
        ),
        (
            "- name: A\n  query: {metric: cpu\n",
            "r.yaml:3: not YAML: while parsing a flow mapping expected ',' or '}',"
            " but got '<stream end>'",
        ),
        (
            "- a\n---\n- b\n",
            "r.yaml:2: not YAML: expected a single document in the stream"
            " but found another document",
        ),
    ],
)
def test_each_error_names_the_line_and_field(text, expected):
    assert errors(text) == [expected]


def test_a_bad_rule_is_left_out_and_the_others_load():
    text = GOOD + "- name: Broken\n  query: {metric: cpu}\n  op: '~'\n  threshold: 1\n"
    loaded = load(text)
    assert [r.name for r in loaded.rules] == ["HighErrorRate", "LowDisk"]
    assert [str(e) for e in loaded.errors] == [
        "r.yaml:20: rule Broken: op: Input should be '>', '>=', '<', '<=', '==' or '!='"
    ]


def test_every_problem_of_a_rule_is_reported():
    text = "- name: A\n  query: {}\n  op: '?'\n  threshold: many\n"
    assert errors(text) == [
        "r.yaml:2: rule A: query.metric: Field required",
        "r.yaml:3: rule A: op: Input should be '>', '>=', '<', '<=', '==' or '!='",
        "r.yaml:4: rule A: threshold: Input should be a valid number, unable to parse string"
        " as a number",
    ]


def test_a_second_rule_of_a_name_in_one_file_is_an_error():
    text = GOOD + "- name: LowDisk\n  query: {metric: disk.free}\n  op: <\n  threshold: 5\n"
    loaded = load(text)
    assert [r.threshold for r in loaded.rules] == [0.02, 1e9]
    assert [str(e) for e in loaded.errors] == [
        "r.yaml:18: rule LowDisk: name: duplicate rule name (first at line 14)"
    ]


def test_the_example_file_loads_without_errors():
    loaded = load_rules_file(EXAMPLE)
    assert loaded.errors == []
    names = [r.name for r in loaded.rules]
    assert names == ["HostCpuBusy", "HostMemoryHigh", "HostDiskFilling", "HighErrorRate"]
    assert [r.name for r in loaded.rules if r.ratio_of is not None] == ["HighErrorRate"]


def test_an_unreadable_file_is_one_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"- name: caf\xe9\n")
    assert [str(e) for e in load_rules_file(path).errors] == [
        f"{path}:1: cannot read the file: not UTF-8 text"
    ]


def write(path: Path, text: str, mtime_s: int | None = None) -> None:
    path.write_text(text)
    if mtime_s is not None:
        os.utime(path, (mtime_s, mtime_s))


def rule_text(name: str, threshold: float = 1) -> str:
    return f"- name: {name}\n  query: {{metric: cpu}}\n  op: '>'\n  threshold: {threshold}\n"


def test_a_rule_set_loads_folders_and_files_in_order(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "b.yml", rule_text("B"))
    write(rules / "a.yaml", rule_text("A") + rule_text("Shared"))
    write(rules / ".hidden.yaml", rule_text("Hidden"))
    write(rules / "notes.txt", "not rules")
    extra = tmp_path / "extra.yaml"
    write(extra, rule_text("Shared", 2) + rule_text("C"))
    ruleset = RuleSet.load([rules, extra, tmp_path / "missing-dir"])
    assert list(ruleset.rules) == ["A", "Shared", "B", "C"]
    assert ruleset.rules["Shared"].threshold == 1
    assert ruleset.rules["Shared"].source == f"{rules / 'a.yaml'}:5"
    assert ruleset.errors == [
        RuleError(str(extra), 1, f"rule Shared: duplicate name (first in {rules / 'a.yaml'}:5)")
    ]
    assert not ruleset.changed()


def test_changed_sees_writes_additions_and_removals(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "a.yaml", rule_text("A"), 1_000)
    ruleset = RuleSet.load([rules])
    assert not ruleset.changed()
    write(rules / "a.yaml", rule_text("A", 50), 1_000)  # same mtime, another size
    assert ruleset.changed()
    ruleset = ruleset.reload()
    assert ruleset.rules["A"].threshold == 50
    write(rules / "a.yaml", rule_text("A", 70), 2_000)  # same size, another mtime
    assert ruleset.changed()
    ruleset = ruleset.reload()
    write(rules / "b.yaml", rule_text("B"))
    assert ruleset.changed()
    ruleset = ruleset.reload()
    assert list(ruleset.rules) == ["A", "B"]
    (rules / "a.yaml").unlink()
    assert ruleset.changed()
    assert list(ruleset.reload().rules) == ["B"]


def test_a_named_file_that_is_missing_is_an_error_until_it_appears(tmp_path):
    path = tmp_path / "alerts.yaml"
    ruleset = RuleSet.load([path])
    assert ruleset.errors == [RuleError(str(path), 1, "no such rule file")]
    assert not ruleset.changed()
    write(path, rule_text("A"))
    assert ruleset.changed()
    assert list(ruleset.reload().rules) == ["A"]


def test_a_folder_that_appears_later_is_seen(tmp_path):
    rules = tmp_path / "rules"
    ruleset = RuleSet.load([rules])
    assert (ruleset.rules, ruleset.errors) == ({}, [])
    rules.mkdir()
    assert not ruleset.changed()
    write(rules / "a.yaml", rule_text("A"))
    assert ruleset.changed()
