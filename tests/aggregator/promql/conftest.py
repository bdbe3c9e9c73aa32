"""The Prometheus that is the truth for a test module: it holds the module's `dataset`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aggregator.promql.dataset import Dataset
from tests.aggregator.promql.truth import Prometheus


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Iterator[Prometheus]:
    running = Prometheus(tmp_path_factory.mktemp("prometheus"))
    running.start()
    running.write(dataset.written())
    yield running
    running.stop()
