"""What a fresh interpreter loads: for the tests that pin which package may import which."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shipboard", "collector", "storage", "aggregator", "annotations", "dashboards")


def modules(under: Path) -> list[str]:
    """The dotted names of every module under the folder `under`."""
    return [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted(under.rglob("*.py"))
    ]


def imported_by(names: list[str]) -> set[str]:
    """Every module a fresh interpreter holds after importing `names` (and only them)."""
    code = f"import sys, {', '.join(names)}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return set(out.stdout.split())


def packages_imported_by(package: str) -> set[str]:
    """Shipboard's packages that importing every module of `package` loads, itself aside."""
    found = imported_by(modules(ROOT / package))
    return {
        p
        for p in PACKAGES
        if p != package and (p in found or any(m.startswith(p + ".") for m in found))
    }
