"""Errors of the dashboards.

DashboardsError
 └── SpecError(ValueError)   a dashboard file is not valid YAML or not a valid dashboard
"""

from __future__ import annotations

from pathlib import Path


class DashboardsError(Exception):
    """Base of every dashboards error."""


class SpecError(DashboardsError, ValueError):
    """A dashboard file that cannot be used; names the file and the line to fix."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")
