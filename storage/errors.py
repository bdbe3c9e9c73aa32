"""Errors of the storage layer.

StorageError
 ├── CorruptStoreError   a data file cannot be read (beyond a torn tail, which is discarded)
 ├── StoreClosedError    the store was used after close()
 ├── StoreLockedError    another process already writes to the data dir
 ├── ReadOnlyStoreError  a write was made to a store opened read-only
 ├── SpoolFullError      the metric server is away and the on-disk spool is full
 └── ServerWriteError    the metric server refused a write as bad (4xx)
"""


class StorageError(Exception):
    """Base of every storage error."""


class CorruptStoreError(StorageError):
    """A data file is damaged in a way that cannot be repaired by dropping a torn tail."""


class StoreClosedError(StorageError):
    """The store was used after it was closed."""


class StoreLockedError(StorageError):
    """Another process holds the data dir's write lock."""


class ReadOnlyStoreError(StorageError):
    """A write, retention or checkpoint was asked of a store opened with readonly=True."""


class SpoolFullError(StorageError):
    """The metric server is away and the spool holding writes for it is full: refuse writes."""

    status = 503


class ServerWriteError(StorageError):
    """The metric server refused a write as malformed; retrying it would not help."""
