"""Feature flags: the flag document (`model`), sticky bucketing and evaluation (`bucketing`), the
flags in the control DB (`store`), their HTTP routes (`routes`), and the SDK for apps
(`client`: `from annotations.flags.client import Flags`).

May import `annotations.control` (the DB, errors, annotations and the outbox a change is
announced through). Never imports `annotations.chat`. The SDK imports only `model`,
`bucketing`, the errors and `annotations.http_client`, so an app that uses it loads no server
code.
"""
