"""The shape of `annotations/`: three packages whose imports point one way, small modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "annotations"


def imported_by(modules: list[str]) -> set[str]:
    """The top-level and annotations.* modules a fresh interpreter holds after importing
    `modules` (and only them)."""
    code = (
        f"import sys, {', '.join(modules)}\n"
        "print('\\n'.join(m for m in sys.modules"
        " if '.' not in m or m.startswith('annotations.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return set(out.stdout.split())


def modules(under: Path) -> list[str]:
    return [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted(under.rglob("*.py"))
    ]


def test_no_module_imports_the_root_the_collector_or_the_dashboards():
    assert not imported_by(modules(PACKAGE)) & {"shipboard", "collector", "dashboards"}


def test_control_imports_neither_flags_nor_chat():
    found = imported_by(modules(PACKAGE / "control"))
    assert not {m for m in found if m.startswith(("annotations.flags", "annotations.chat"))}


def test_flags_never_import_chat():
    found = imported_by(modules(PACKAGE / "flags"))
    assert not {m for m in found if m.startswith("annotations.chat")}


def test_the_flags_sdk_loads_no_server_code():
    found = imported_by(["annotations.flags.client"])
    assert not found & {"aiohttp", "psycopg", "psycopg_pool"}


def test_at_most_twelve_modules_at_the_top_and_none_past_450_lines():
    assert len(list(PACKAGE.glob("*.py"))) <= 12
    long = {
        str(path.relative_to(ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 450
    }
    assert long == {}
