"""Guarded rollouts: a flag environment's rollout plan (`annotations.flags.rollout_plan`) stepped
up while its guards hold and set back on a regression (`stepping`, run every second on the node
holding the rollouts lock), what that does to the flag (`actions`), its state in the control DB
(`state`), the guards' comparisons (`guards`) and the pause/resume routes (`routes`).

May import `annotations.control`, `annotations.flags` and `aggregator`; nothing imports it but
the composition root.
"""
