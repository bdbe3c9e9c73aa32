"""Random writes, checkpoints and reopens read back exactly as a dict model predicts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.embedded_reader import EmbeddedReader
from storage.records import Samples, Series

SERIES = [Series.of("m", {"k": str(i)}) for i in range(4)] + [Series("other")]

points = st.tuples(st.sampled_from(SERIES), st.integers(-50, 50), st.floats(-1e6, 1e6))
steps = st.one_of(
    st.lists(points, min_size=1, max_size=30).map(lambda p: ("write", p)),
    st.just(("checkpoint", None)),
    st.just(("reopen", None)),
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=12), st.integers(-60, 60), st.integers(-60, 60))
def test_reads_match_a_dict_of_last_writes(tmp_path_factory, script, start, end) -> None:
    path = tmp_path_factory.mktemp("model")
    tiers = Settings().tiers()
    model: dict[tuple[Series, int], float] = {}
    store = EmbeddedStore(path, tiers)
    try:
        for action, batch in script:
            if action == "write":
                store.write(Samples.from_points(batch))
                model.update(((s, t), v) for s, t, v in batch)
            elif action == "checkpoint":
                store.checkpoint()
            else:
                store.close()
                store = EmbeddedStore(path, tiers)
        reader = EmbeddedReader(path, tiers)
        for view in (store, reader):
            want = sorted(
                ((SERIES.index(s), t, v) for (s, t), v in model.items() if start <= t < end),
            )
            got = view.read(SERIES, start, end)
            pairs = zip(got.points(), got.index.tolist(), strict=True)
            assert [(i, t, v) for (_, t, v), i in pairs] == want
            everything = view.read(None, -100, 100).points()
            assert sorted(everything, key=lambda p: (str(p[0]), p[1])) == everything
            assert {(s, t): v for s, t, v in everything} == model
        reader.close()
    finally:
        store.close()
