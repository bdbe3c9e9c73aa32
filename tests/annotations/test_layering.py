"""The shape of `annotations/`: three packages whose imports point one way, small modules."""

from __future__ import annotations

from tests.imports import ROOT, imported_by, modules

PACKAGE = ROOT / "annotations"


def test_control_imports_neither_flags_nor_chat():
    found = imported_by(modules(PACKAGE / "control"))
    assert not {m for m in found if m.startswith(("annotations.flags", "annotations.chat"))}


def test_flags_never_import_chat():
    found = imported_by(modules(PACKAGE / "flags"))
    assert not {m for m in found if m.startswith("annotations.chat")}


def test_the_flags_sdk_loads_no_server_code():
    found = imported_by(["annotations.flags.client"])
    assert not found & {"aiohttp", "psycopg", "psycopg_pool"}
