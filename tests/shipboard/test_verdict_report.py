"""What `shipboard deploy --verify` prints of a verdict: a line for it, one per metric (before
-> after, change, interval, test, samples, the day-earlier baseline), one per confounder."""

from __future__ import annotations

from shipboard.verify_cli import verdict_report
from tests.dashboards.verdict_seed import VERDICTS

DEPLOY = {"id": 4, "service": "web", "version": "3f2c1a9"}


def test_a_regressed_verdict_reads_metric_by_metric() -> None:
    verdict = VERDICTS["regressed"] | {"at": 1_800_000_000 * 10**9}
    assert verdict_report(DEPLOY, verdict) == [
        "verdict regressed for web 3f2c1a9 (at 2027-01-15T08:00:00Z)",
        "  healthy: http.latency p99 180 -> 183.6 (+2%), 99% interval -4% to +8%, quantile test,"
        " 5000/5100 samples",
        "  regressed: http.errors/http.requests 0.4% -> 0.9% (+125%), 99% interval +80% to"
        " +170%, binomial test, 12000/11800 samples, a day earlier 0.41%",
        "  confounder: flag new-search prod: 10% -> 25%",
    ]


def test_a_verdict_without_metrics_is_its_status_alone() -> None:
    assert verdict_report(DEPLOY, {"status": "no_data", "metrics": []}) == [
        "verdict no_data for web 3f2c1a9"
    ]
