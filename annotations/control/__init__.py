"""The control plane: deploys, notes (the annotations table), tokens and roles, the audit log,
their HTTP routes, the control DB (SQLite or PostgreSQL) and the announcement outbox that the
writers of annotations append to.

May import: `storage.timeparse` (time arguments) and libraries. Never imports
`annotations.flags` or `annotations.chat`: they build on its records, not the other way round.
"""
