"""`shipboard query`: prints a metric's series from a running Shipboard, as the query API does."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from annotations.http_client import ApiClient, ApiError
from shipboard.settings import Settings


def _table(payload: dict[str, object]) -> str:
    lines = [f"step {payload['step_ms']} ms from tier {payload['tier']}"]
    series_list = payload["series"]
    assert isinstance(series_list, list)
    for series in series_list:
        tags = ",".join(f"{k}={v}" for k, v in sorted(series["tags"].items()))
        lines.append(f"{series['metric']}{{{tags}}}" if tags else series["metric"])
        for ts_ms, value in series["points"]:
            when = datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="seconds")
            lines.append(f"  {when}  {value:g}")
    if not series_list:
        lines.append("no series match")
    return "\n".join(lines)


def run_query_command(args: argparse.Namespace, settings: Settings) -> int:
    base = args.url or f"http://127.0.0.1:{settings.http_port}"
    params = {
        "metric": args.metric,
        "tags": args.tags,
        "from": args.start,
        "to": args.end,
        "step": args.step,
        "agg": args.agg,
        "group_by": args.group_by,
    }
    if args.format == "csv":
        params["format"] = "csv"
    try:
        response = ApiClient(base, settings.token).request("GET", "/api/v1/query", params=params)
    except ApiError as error:
        print(f"shipboard query: {error}", file=sys.stderr)
        return 1
    body = response.body.decode()
    if args.format == "table":
        print(_table(json.loads(body)))
    else:
        print(body, end="" if body.endswith("\n") else "\n")
    return 0
