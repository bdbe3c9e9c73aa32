"""Annotations: deploy log, feature flags, notes, audit, tokens and roles."""
