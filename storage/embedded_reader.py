"""A read-only follower of an embedded data dir in another process (the dashboards'): it
reloads the manifest when a checkpoint replaced it and tails the WAL from where it stopped, on
`refresh()`, ignoring a record still being written.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from storage.embedded_view import StoreView
from storage.manifest import MANIFEST, Manifest, read_manifest
from storage.records import Tier
from storage.wal import read_records, segment_path

_Stamp = tuple[int, int, int]


class EmbeddedReader(StoreView):
    """A `storage.base.StoreReader` on a data dir another process writes."""

    def __init__(self, path: Path, tiers: Sequence[Tier]) -> None:
        super().__init__(path, tiers)
        self._refresh_lock = threading.Lock()
        self._stamp: _Stamp | None = None
        self._segment = 0
        self._offset = 0
        self.refresh()

    def refresh(self) -> None:
        """Reload the manifest if it was replaced, then read new WAL records: once per
        request or query, which then reads a consistent state."""
        with self._refresh_lock:
            while True:
                stamp = _stamp(self._root / MANIFEST)
                if stamp != self._stamp:
                    try:
                        self._reload()
                    except FileNotFoundError:
                        continue  # a block was compacted away meanwhile: the newer manifest
                    self._stamp = stamp
                self._tail()
                if _stamp(self._root / MANIFEST) == stamp:
                    return  # else a checkpoint may have taken segments we had not read

    def _reload(self) -> None:
        manifest = read_manifest(self._root) or Manifest()
        blocks = self._load(manifest)
        with self._lock:
            self._manifest = manifest
            self._blocks = blocks
            self._heads = self._new_heads()
            self._restore(manifest)
            self._changes.note_everything()
        self._segment = manifest.wal_start
        self._offset = 0

    def _tail(self) -> None:
        """Apply WAL records after the last one read; segments are numbered consecutively."""
        wal_dir = self._root / "wal"
        while True:
            path = segment_path(wal_dir, self._segment)
            if not path.exists():
                return
            self._tail_segment(path)
            if not segment_path(wal_dir, self._segment + 1).exists():
                break
            self._tail_segment(path)  # the writer moved on: this segment is complete now
            self._segment += 1
            self._offset = 0
        self._merge_head_parts()

    def _tail_segment(self, path: Path) -> None:
        try:
            for record, end in read_records(path, self._offset):
                with self._lock:
                    self._apply(record)
                self._offset = end
        except FileNotFoundError:
            return  # deleted by a checkpoint: the manifest check in refresh catches up


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
