"""Annotations: what changed, beside the metrics. Three subjects, one package each:

- `annotations.control`: the control-plane API and store: deploys, notes, tokens and roles,
  the audit log, the control DB and its connections, and the announcement outbox.
- `annotations.flags`: feature flags: the document, bucketing, the store, routes and the SDK.
- `annotations.chat`: announcements and the bot: the IRC wire protocol and client, webhooks,
  the notifier that delivers the outbox, the chat lines and the bot's commands.

Imports point one way: chat -> flags -> control. `annotations.app` wires control and flags into
the HTTP app the composition root serves; `annotations.http_client` is the one HTTP client of the
flags SDK and the `shipboard` commands. Nothing here imports `collector`, `dashboards` or
`shipboard`.
"""
