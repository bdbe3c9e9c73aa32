"""Durable files: a file fsync'd, a file replaced whole, a directory and its new names fsync'd.

`replace_file` is the one atomic write: the content goes to a temporary file beside the target,
is fsync'd, renamed over the target, and the directory is fsync'd, so after a crash or a power
loss the target holds the old content or the new, whole, never a mix. What is left of a
temporary file is the caller's to clear at its next start (its name says what it was).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# What is written: bytes, or a function that writes to the open file (`np.save`, two parts).
Content = bytes | Callable[[BinaryIO], object]


def fsync_dir(directory: Path) -> None:
    """Make the names created, renamed or removed in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mkdir_durable(directory: Path) -> None:
    """Create `directory` and any missing parents, each new name fsync'd into its parent so a
    power loss cannot take away a directory whose files were fsync'd."""
    missing: list[Path] = []
    path = directory
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_dir(path.parent)


def write_synced(path: Path, content: Content) -> None:
    """Create or truncate `path`, write `content` and fsync it; its name is durable only once
    its directory is fsync'd (`fsync_dir`, or `replace_file`, which does both)."""
    with path.open("wb") as file:
        if isinstance(content, bytes):
            file.write(content)
        else:
            content(file)
        file.flush()
        os.fsync(file.fileno())


def replace_file(path: Path, content: Content, *, temporary: Path | None = None) -> None:
    """Replace `path` atomically and durably with `content`: written to `temporary` (default
    `<name>.tmp` beside it), fsync'd, renamed over `path`, the directory fsync'd."""
    if temporary is None:
        temporary = path.with_name(path.name + ".tmp")
    write_synced(temporary, content)
    os.replace(temporary, path)
    fsync_dir(path.parent)
