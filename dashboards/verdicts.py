"""A deploy's verdict on the graphs: the colour of its marker and line, and the lines of its
hover (escaped for plotly's HTML subset) and of its "What changed" entry."""

from __future__ import annotations

import html

from annotations.control.notes import Annotation
from annotations.control.verdict_text import (
    FINAL,
    confounders_of,
    metric_detail,
    metrics_of,
    summary_text,
    verdict_of,
)

VERDICT_COLORS = {
    "healthy": "#2e9d57",
    "regressed": "#d9534f",
    "inconclusive": "#9aa0a6",
    "no_data": "#9aa0a6",
}
MAX_HOVER_METRICS = 6


def verdict_status(deploy: Annotation) -> str | None:
    """`healthy`, `regressed`, `inconclusive`, `no_data`, `pending`, or None (nothing to
    verify)."""
    verdict = verdict_of(deploy.extra)
    return None if verdict is None else str(verdict["status"])


def verdict_color(deploy: Annotation) -> str | None:
    """The colour of a deploy that succeeded and has a final verdict: green when healthy, red
    when regressed, grey when inconclusive or without data; None keeps its status's colour (a
    failed or rolled-back deploy stays red or orange, a pending verdict changes nothing)."""
    status = verdict_status(deploy)
    if status not in FINAL or deploy.extra.get("status") != "succeeded":
        return None
    return VERDICT_COLORS[status]


def verdict_lines(deploy: Annotation) -> list[str]:
    """`verdict regressed: http.errors/http.requests 0.4% -> 0.9% (+125%)`, then each metric in
    full and the confounders; nothing for a deploy without a verdict."""
    verdict = verdict_of(deploy.extra)
    if verdict is None:
        return []
    lines = [f"verdict {summary_text(verdict)}"]
    lines += [metric_detail(m) for m in metrics_of(verdict)[:MAX_HOVER_METRICS]]
    if others := confounders_of(verdict):
        lines.append("confounders: " + "; ".join(others))
    return lines


def verdict_hover(deploy: Annotation) -> list[str]:
    """`verdict_lines`, escaped for a plotly hover label."""
    return [html.escape(line[:200], quote=False) for line in verdict_lines(deploy)]
