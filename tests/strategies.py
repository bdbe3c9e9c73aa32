"""Hypothesis strategies for the protocol parsers, and tables of known-bad lines by reason."""

from __future__ import annotations

from hypothesis import strategies as st

from storage.records import NS_PER_S, Series

# ---------------------------------------------------------------------------------------------
# Graphite plaintext
# ---------------------------------------------------------------------------------------------

_GRAPHITE_NAME_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ";") + "éß€"
_GRAPHITE_TAG_KEY_CHARS = "".join(c for c in _GRAPHITE_NAME_CHARS if c not in "!^=")

graphite_names = st.text(_GRAPHITE_NAME_CHARS, min_size=1, max_size=40)
graphite_tags = st.dictionaries(
    st.text(_GRAPHITE_TAG_KEY_CHARS, min_size=1, max_size=10),
    st.text(_GRAPHITE_NAME_CHARS, min_size=1, max_size=10).filter(lambda v: v[0] != "~"),
    max_size=3,
)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
graphite_seconds = st.integers(0, 9_000_000_000)


@st.composite
def graphite_lines(draw: st.DrawFn, now_ns: int) -> tuple[bytes, tuple[Series, int, float]]:
    """A valid Graphite line and the point it must parse to."""
    name = draw(graphite_names)
    tags = draw(graphite_tags)
    value = draw(finite_floats)
    path = name + "".join(f";{k}={v}" for k, v in tags.items())
    stamp = draw(st.one_of(st.none(), st.just(-1), graphite_seconds))
    line = f"{path} {value!r}" + ("" if stamp is None else f" {stamp}")
    ts_ns = now_ns if stamp in (None, -1) else stamp * NS_PER_S
    return line.encode(), (Series.of(name, tags), ts_ns, value)


# Lines that look like Graphite: every token kind, separators and the odd bytes the fast path
# must hand over to the exact one.
graphite_noise_lines = st.text("ab.;=~!^01 -+eE_.naifNI\t\r\x00é", max_size=24).map(str.encode)


def graphite_token_lines(valid_only: bool) -> st.SearchStrategy[bytes]:
    """Lines of three plain tokens (only valid ones, or any), so chunks reach the fast path."""
    paths = [b"a", b"a.b", b"x-y_z", b"a;k=v"]
    values = [b"1", b"-2.5", b"1e3", b".5", b"+1"]
    stamps = [b"1", b"0", b"1700000000", b"-1", b"1.5"]
    if not valid_only:
        paths += [b"a;k", b"", b"a\tb"]
        values += [b"1_0", b"nan", b"1e999", b"x", b""]
        stamps += [b"99999999999", b"", b"1_0"]
    return st.tuples(st.sampled_from(paths), st.sampled_from(values), st.sampled_from(stamps)).map(
        b" ".join
    )


BAD_GRAPHITE_LINES: dict[str, list[bytes]] = {
    "bad_format": [b"just.a.path", b"a 1 2 3", b"a\t1\t2\t3\t4"],
    "bad_path": [b";k=v 1 2", b"a\x00b 1 2", b"\xff\xfe 1 2", b"a\x1bb 1"],
    "bad_tag": [b"a;k 1 2", b"a;=v 1", b"a;k= 1", b"a;k!=v 1", b"a;k=~v 1", b"a;k=v; 1"],
    "bad_value": [b"a one 2", b"a 1_000 2", b"a 0x10 2", b"a 1.2.3 2", b"a - 2", b"a 1e 2"],
    "non_finite": [b"a nan 2", b"a NaN", b"a inf 2", b"a -Infinity 2", b"a 1e999 2"],
    "bad_timestamp": [b"a 1 yesterday", b"a 1 -5", b"a 1 1e30", b"a 1 99999999999", b"a 1 nan"],
}
