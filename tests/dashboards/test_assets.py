"""The plotly.js the dashboards ship: the basic bundle, at the version the plotly package has."""

from __future__ import annotations

import re
from pathlib import Path

import plotly

import dashboards

ASSETS = Path(dashboards.__file__).parent / "assets"
FULL_BUNDLE = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _version(bundle: Path) -> str:
    found = re.search(r"plotly\.js .*?v([0-9.]+)", bundle.read_text()[:300])
    assert found, f"no plotly.js version in the header of {bundle}"
    return found.group(1)


def test_the_basic_bundle_matches_the_plotly_package() -> None:
    # dcc.Graph uses window.Plotly when a page defines it, so this file replaces the full
    # bundle; after upgrading plotly, ./scripts/update-plotly-basic refreshes it.
    basic = ASSETS / "plotly-basic.min.js"
    assert "(basic - minified)" in basic.read_text()[:200]
    assert _version(basic) == _version(FULL_BUNDLE)
