"""A label regex read as literals matches exactly those literals, as the regex itself does."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from aggregator.promql.regex_literals import literal_alternatives
from aggregator.promql.syntax import compile_regex

# Letters, digits and every character a regex gives a meaning, or an escape.
pieces = st.sampled_from([*"ab1._-|()[]{}*+?^$\\: ", "\\.", "\\d", "\\w", "(?:", "(?i)", "é"])
patterns = st.lists(pieces, max_size=8).map("".join)
values = st.text(st.sampled_from("ab1._-|()*+?$\\ é"), max_size=5)


@given(st.sets(values, min_size=1, max_size=4), st.sampled_from(["{}", "({})", "(?:{})"]))
def test_escaped_values_joined_by_bars_read_back_as_those_values(chosen: set[str], wrapping: str):
    pattern = wrapping.format("|".join(re.escape(v) for v in sorted(chosen)))
    assert literal_alternatives(pattern) == frozenset(chosen)


@given(patterns, st.lists(values, max_size=5))
def test_what_a_pattern_is_read_as_is_what_it_matches(pattern: str, others: list[str]):
    found = literal_alternatives(pattern)
    if found is None:
        return
    regex = compile_regex(pattern)
    for candidate in [*found, *others]:
        assert (regex.match(candidate) is not None) == (candidate in found), candidate


def test_classes_flags_and_groups_are_not_literals():
    for pattern in ("h.*", "\\d+", "(?i)web", "(a)|(b)", "[ab]", "a\\w", "a{2}", "x\\"):
        assert literal_alternatives(pattern) is None, pattern
    assert literal_alternatives("web\\.1|db-2") == frozenset({"web.1", "db-2"})
    assert literal_alternatives("") == frozenset({""})
