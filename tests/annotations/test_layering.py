"""The shape of `annotations/`: four packages whose imports point one way, small modules."""

from __future__ import annotations

import pytest

from tests.imports import ROOT, imported_by, modules

PACKAGE = ROOT / "annotations"


@pytest.mark.slow
def test_control_imports_neither_flags_nor_chat():
    found = imported_by(modules(PACKAGE / "control"))
    assert not {m for m in found if m.startswith(("annotations.flags", "annotations.chat"))}


def test_flags_never_import_chat():
    found = imported_by(modules(PACKAGE / "flags"))
    assert not {m for m in found if m.startswith("annotations.chat")}


@pytest.mark.slow  # a fresh interpreter importing the package: about a second
def test_alerts_import_neither_chat_nor_flags():
    # But for a rule's on_firing, which turns a knob through the flags store (knob_actions, run
    # by the engine), so that its changes are versioned, annotated and announced as a person's.
    turning = {"annotations.alerts.engine", "annotations.alerts.knob_actions"}
    found = imported_by([m for m in modules(PACKAGE / "alerts") if m not in turning])
    assert not {m for m in found if m.startswith(("annotations.flags", "annotations.chat"))}
    found = imported_by(modules(PACKAGE / "alerts"))
    assert not {m for m in found if m.startswith("annotations.chat")}


@pytest.mark.slow  # likewise
def test_chat_imports_only_the_records_of_alerts():
    found = imported_by(modules(PACKAGE / "chat"))
    alerts = {m for m in found if m.startswith("annotations.alerts")}
    assert alerts <= {"annotations.alerts", "annotations.alerts.model"}


def test_the_flags_sdk_loads_no_server_code():
    found = imported_by(["annotations.flags.client"])
    assert not found & {"aiohttp", "psycopg", "psycopg_pool"}
