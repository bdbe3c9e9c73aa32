"""Shipboard's composition root: settings, wiring and the `shipboard` command."""
