"""Aggregator: numpy rollups in tiers, the rollup scheduler, and queries over tiers."""
