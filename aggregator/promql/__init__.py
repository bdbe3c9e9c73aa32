"""Prometheus' HTTP query API and a PromQL subset, evaluated over the store's raw points."""
