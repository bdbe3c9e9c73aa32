"""Backoff: waits double from the first up to the cap, jitter stays in its band, success resets."""

from __future__ import annotations

import random

import pytest

from storage.backoff import Backoff


def test_waits_double_up_to_the_cap_and_a_success_starts_over():
    backoff = Backoff(0.2, 5.0)
    assert [backoff.failed() for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    backoff.succeeded()
    assert backoff.failed() == 0.2


def test_wait_after_many_failures_is_the_cap():
    assert Backoff(2.0, 300.0).wait_s(10_000) == 300.0
    assert Backoff(2.0, 300.0).wait_s(1) == 2.0


def test_jitter_scales_each_wait_within_its_band():
    backoff = Backoff(1.0, 8.0, jitter=0.2, rng=random.Random(7))
    for base in (1.0, 2.0, 4.0, 8.0, 8.0):
        assert 0.8 * base <= backoff.failed() <= 1.2 * base


@pytest.mark.parametrize(("first_s", "max_s", "jitter"), [(0, 1, 0), (2, 1, 0), (1, 2, 1.0)])
def test_nonsense_is_refused(first_s: float, max_s: float, jitter: float):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(first_s, max_s, jitter=jitter)
