"""Alerts: rules over the metric store, their instances' states, silences, and the grouping of
notifications for Alertmanager-style receivers.

`model` holds the records (rules, instances, groupings) that the rest of `annotations` may
read; `rules` loads rule files, `evaluate` runs a rule's query, `states` steps the pure state
machine, `instances` and `silences` keep them in the control DB, `dispatch` groups them for
Alertmanager targets, `engine` runs it all on the node holding the alerts lock, `routes` serves
them.

May import `annotations.control` (the DB, annotations, the outbox), `aggregator` (queries) and
`storage`. `annotations.chat` may import `annotations.alerts.model` only; nothing here imports
`annotations.chat` or `annotations.flags`.
"""
