"""Errors of the storage layer.

StorageError
 ├── CorruptStoreError   a data file cannot be read (beyond a torn tail, which is discarded)
 ├── StoreClosedError    the store was used after close()
 ├── StoreLockedError    another process already writes to the data dir
 └── ReadOnlyStoreError  a write was made to a store opened read-only
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
