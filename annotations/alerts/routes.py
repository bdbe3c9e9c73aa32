"""HTTP routes of alerting: the alerts and their states, the rules and their last evaluations,
and silences.

Roles are the application's middleware's, by method: reads are a viewer's, a silence's POST
and DELETE an operator's (and audited, as every change is). Errors are raised as
`annotations.control.errors` types and answered as `{"error": ...}` by its error middleware.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Protocol

from aiohttp import web
from pydantic import Field

from annotations.alerts.instances import RuleStatus, load_instances, rule_statuses
from annotations.alerts.knobs import KnobAction, list_knob_actions
from annotations.alerts.model import STATES, Instance, Rule
from annotations.alerts.silences import (
    Silence,
    add_silence,
    expire_silence,
    list_silences,
    silenced_by,
)
from annotations.control.auth import PRINCIPAL
from annotations.control.bodies import Body, RequiredText, Text, TimeNs, TimeText, read_body
from annotations.control.db import ControlDB
from annotations.control.errors import BadRequestError
from annotations.control.routes import CONTROL_DB, MAX_ID, json_response, row_id
from annotations.control.timespec import format_time

"""The largest silence id (a BIGINT)."""


class RuleProblem(Protocol):
    """A rule file's error: where it is and what is wrong."""

    @property
    def file(self) -> str: ...

    @property
    def line(self) -> int: ...

    @property
    def message(self) -> str: ...


RulesView = Callable[[], tuple[Mapping[str, Rule], Sequence[RuleProblem]]]
"""This node's rules by name, and the errors of the rule files it read."""


def no_rules() -> tuple[Mapping[str, Rule], Sequence[RuleProblem]]:
    """The view of a node that loads no rules."""
    return {}, []


class SilenceBody(Body):
    matchers: Annotated[dict[str, str], Field(min_length=1)]
    ends_at: TimeText | None = None
    ends_at_ns: TimeNs | None = None
    comment: RequiredText
    who: Text = ""
    id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None


def _since_ns(instance: Instance) -> int:
    """When the instance entered its state: pending since it began to hold, firing since it
    fired, resolved since it resolved; nodata and error (which keep no start) as of their last
    evaluation."""
    by_state = {
        "pending": instance.active_ns,
        "firing": instance.fired_ns,
        "resolved": instance.resolved_ns,
    }.get(instance.state)
    return instance.evaluated_ns if by_state is None else by_state


def alert_json(instance: Instance, silences: Sequence[Silence]) -> dict[str, Any]:
    return {
        "rule": instance.rule,
        "labels": instance.labels,
        "state": instance.state,
        "value": instance.value,
        "since": format_time(_since_ns(instance)),
        "silenced_by": silenced_by(silences, instance.labels),
        "annotations": instance.annotations,
        "fingerprint": instance.fingerprint,
        "error": instance.error,
    }


def _file_and_line(source: str) -> tuple[str, int | None]:
    """`rules/web.yaml:12` -> ("rules/web.yaml", 12)."""
    path, sep, line = source.rpartition(":")
    return (path, int(line)) if sep and line.isdigit() else (source, None)


def rule_json(
    rule: Rule, status: RuleStatus | None, knob_action: KnobAction | None = None
) -> dict[str, Any]:
    """A rule as its file says it, where it is, how its last evaluation went, and the knob its
    `on_firing` holds now (null if none)."""
    file, line = _file_and_line(rule.source)
    return {
        **rule.model_dump(mode="json", by_alias=True),
        "file": file,
        "line": line,
        "last_evaluation": None if status is None else format_time(status.evaluated_ns),
        "duration_s": None if status is None else status.duration_s,
        "error": "" if status is None else status.error,
        "knob_action": None if knob_action is None else knob_action.to_json(),
    }


def _states(text: str) -> set[str]:
    states = {s for s in text.split(",") if s}
    if states - set(STATES):
        raise BadRequestError(f"state must be among {', '.join(STATES)}")
    return states


def add_alert_routes(app: web.Application, rules_view: RulesView = no_rules) -> None:
    """Add the routes to `app`, whose control DB is at `CONTROL_DB`; `rules_view()` gives
    the rules that `/api/v1/rules` lists (the engine's), beside their stored evaluations."""

    def db_of(request: web.Request) -> ControlDB:
        return request.config_dict[CONTROL_DB]

    async def get_alerts(request: web.Request) -> web.Response:
        db, now_ns = db_of(request), time.time_ns()
        states = _states(request.query.get("state", ""))

        def read() -> tuple[dict[str, Instance], list[Silence]]:
            return load_instances(db), list_silences(db, now_ns, active_only=True)

        instances, silences = await db.run(read)
        alerts = [
            alert_json(i, silences) for i in instances.values() if not states or i.state in states
        ]
        return json_response({"alerts": alerts})

    async def get_rules(request: web.Request) -> web.Response:
        db = db_of(request)
        rules, errors = rules_view()

        def read() -> tuple[dict[str, RuleStatus], dict[str, KnobAction]]:
            return rule_statuses(db), {a.rule: a for a in list_knob_actions(db)}

        statuses, actions = await db.run(read)
        return json_response(
            {
                "rules": [
                    rule_json(rule, statuses.get(name), actions.get(name))
                    for name, rule in rules.items()
                ],
                "errors": [{"file": e.file, "line": e.line, "message": e.message} for e in errors],
            }
        )

    async def get_silences(request: web.Request) -> web.Response:
        db = db_of(request)
        silences = await db.run(list_silences, db, time.time_ns())
        return json_response({"silences": [s.to_json() for s in silences]})

    async def post_silence(request: web.Request) -> web.Response:
        db = db_of(request)
        body = await read_body(request, SilenceBody)
        now_ns = time.time_ns()
        ends_ns = body.time_ns("ends_at", now_ns)
        if ends_ns is None:
            raise BadRequestError("ends_at: say when the silence ends (+2h, ISO 8601)")
        silence = await db.run(
            add_silence,
            db,
            body.matchers,
            ends_ns,
            body.comment,
            body.who or request[PRINCIPAL].name,
            now_ns,
            body.id,
        )
        return json_response(silence.to_json(), status=200 if silence.id == body.id else 201)

    async def delete_silence(request: web.Request) -> web.Response:
        db = db_of(request)
        silence = await db.run(expire_silence, db, row_id(request, "silence"), time.time_ns())
        return json_response(silence.to_json())

    app.router.add_get("/api/v1/alerts", get_alerts)
    app.router.add_get("/api/v1/rules", get_rules)
    app.router.add_get("/api/v1/silences", get_silences)
    app.router.add_post("/api/v1/silences", post_silence)
    app.router.add_delete("/api/v1/silences/{id}", delete_silence)
