"""The manifest: which blocks, series and WAL segments make up the store, replaced atomically.

A replacement is written to `MANIFEST.json.tmp`, fsync'd and renamed over `MANIFEST.json`, so a
power loss leaves the old manifest or the new one, whole, and maybe a half-written temporary
file, which recovery removes (`recover_manifest`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from storage.blocks import BlockInfo
from storage.errors import CorruptStoreError
from storage.files import replace_file

MANIFEST = "MANIFEST.json"
_TMP = MANIFEST + ".tmp"

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Manifest:
    """The committed state: data before `wal_start` lives in `blocks` and the series log."""

    wal_start: int = 1
    version: int = 2  # 1: a bucket's rollup rows were combined; 2: the last one written wins
    series_count: int = 0
    series_bytes: int = 0
    next_block: int = 1
    blocks: dict[str, tuple[BlockInfo, ...]] = field(default_factory=dict)
    watermarks: dict[str, int] = field(default_factory=dict)
    floors: dict[str, int] = field(default_factory=dict)
    write_seq: int = 0  # raw write records applied so far: what dirty marks are numbered by
    claims: dict[str, int] = field(default_factory=dict)  # bounds of rollup passes begun
    dirty: dict[str, dict[int, int]] = field(default_factory=dict)  # bucket -> write seq
    forgotten: tuple[int, ...] = ()  # ids of series with no point left in any tier

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": self.version,
                "wal_start": self.wal_start,
                "series_count": self.series_count,
                "series_bytes": self.series_bytes,
                "next_block": self.next_block,
                "blocks": {t: [b.to_json() for b in bs] for t, bs in self.blocks.items()},
                "watermarks": self.watermarks,
                "floors": self.floors,
                "write_seq": self.write_seq,
                "claims": self.claims,
                "dirty": {t: sorted(d.items()) for t, d in self.dirty.items()},
                "forgotten": list(self.forgotten),
            },
            indent=1,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            return cls(
                int(raw["wal_start"]),
                int(raw.get("version", 1)),
                int(raw["series_count"]),
                int(raw["series_bytes"]),
                int(raw["next_block"]),
                {t: tuple(BlockInfo.from_json(b) for b in bs) for t, bs in raw["blocks"].items()},
                {t: int(v) for t, v in raw["watermarks"].items()},
                {t: int(v) for t, v in raw["floors"].items()},
                int(raw.get("write_seq", 0)),
                {t: int(v) for t, v in raw.get("claims", {}).items()},
                {
                    t: {int(b): int(seq) for b, seq in pairs}
                    for t, pairs in raw.get("dirty", {}).items()
                },
                tuple(int(sid) for sid in raw.get("forgotten", ())),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise CorruptStoreError(f"unreadable manifest: {error}") from error


def read_manifest(root: Path) -> Manifest | None:
    try:
        data = (root / MANIFEST).read_bytes()
    except FileNotFoundError:
        return None
    return Manifest.from_json(data)


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically: write a temporary file, fsync, rename, fsync the dir."""
    replace_file(root / MANIFEST, manifest.to_json(), temporary=root / _TMP)


def recover_manifest(root: Path) -> Manifest:
    """The writer's committed manifest (a new, empty one written if there is none), after
    removing what a replacement that did not finish left behind."""
    tmp = root / _TMP
    if tmp.exists():
        _LOG.warning(
            "removing %s (%d bytes): a manifest replacement that did not finish; "
            "%s stands as committed",
            tmp,
            tmp.stat().st_size,
            MANIFEST,
        )
        tmp.unlink()
    manifest = read_manifest(root)
    if manifest is None:
        manifest = Manifest()
        write_manifest(root, manifest)
    return manifest
