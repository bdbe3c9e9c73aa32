"""Which queries the API runs on the event loop: those whose last run was quick, lately."""

from __future__ import annotations

from aggregator.routes import QuickQueries

ONE = (("metric", "cpu.usage"), ("tags", "host:a"))
TWO = (("metric", "cpu.usage"), ("tags", "host:b"))
THREE = (("metric", "mem.used"),)


def test_a_query_is_quick_after_a_quick_run_and_not_after_a_slow_one() -> None:
    quick = QuickQueries(limit_s=0.001)
    assert not quick.is_quick(ONE)
    quick.note(ONE, 0.0004)
    assert quick.is_quick(ONE)
    assert not quick.is_quick(TWO)
    quick.note(ONE, 0.002)  # it became slow: back to a thread
    assert not quick.is_quick(ONE)


def test_only_the_latest_queries_are_kept() -> None:
    quick = QuickQueries(limit_s=0.001, size=2)
    quick.note(ONE, 0.0001)
    quick.note(TWO, 0.0001)
    quick.note(ONE, 0.0001)  # ONE is now the latest
    quick.note(THREE, 0.0001)
    assert [quick.is_quick(k) for k in (ONE, TWO, THREE)] == [True, False, True]
