"""Storage: record types, the Store protocol and its backends."""
