"""Errors of the storage layer.

StorageError
 ├── CorruptStoreError   a data file cannot be read (beyond a torn tail, which is discarded)
 └── StoreClosedError    the store was used after close()
"""


class StorageError(Exception):
    """Base of every storage error."""


class CorruptStoreError(StorageError):
    """A data file is damaged in a way that cannot be repaired by dropping a torn tail."""


class StoreClosedError(StorageError):
    """The store was used after it was closed."""
