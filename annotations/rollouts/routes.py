"""HTTP routes of the guarded rollouts: pause and resume a flag environment's plan (operators
only, as every POST), and the plans' state that `GET /api/v1/flags/{key}` shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from annotations.control.db import ControlDB
from annotations.control.outbox import Outbox
from annotations.control.routes import json_response
from annotations.flags.store import StoredFlag
from annotations.rollouts.actions import RolloutActions
from annotations.rollouts.state import Rollout, load_rollout

Who = Callable[[web.Request], str]


def rollout_state(db: ControlDB, stored: StoredFlag) -> dict[str, Any]:
    """`{"rollout_state": {env: state}}` for the environments with a plan under way, else {}."""
    found: dict[str, Any] = {}
    for name, env in stored.flag.environments.items():
        state = load_rollout(db, stored.flag.key, name) if env.rollout is not None else None
        if state is not None:
            found[name] = state.to_json()
    return {"rollout_state": found} if found else {}


def rollout_routes(
    db_key: web.AppKey[ControlDB], outbox_key: web.AppKey[Outbox], who: Who
) -> list[web.RouteDef]:
    def actions_of(request: web.Request) -> RolloutActions:
        return RolloutActions(request.config_dict[db_key], request.config_dict[outbox_key])

    def handler(
        act: Callable[[RolloutActions, str, str, str, int], Rollout],
    ) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            actions = actions_of(request)
            key, name = request.match_info["key"], request.match_info["environment"]
            state = await actions.db.run(act, actions, key, name, who(request), time.time_ns())
            return json_response(state.to_json())

        return handle

    base = "/api/v1/flags/{key}/environments/{environment}/rollout"
    return [
        web.post(f"{base}/pause", handler(RolloutActions.pause_by)),
        web.post(f"{base}/resume", handler(RolloutActions.resume_by)),
    ]
