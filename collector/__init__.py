"""Collector: protocol parsers, listeners, StatsD aggregation and ingest limits."""
