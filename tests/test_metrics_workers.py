"""``serve --workers N`` as Prometheus sees it: whichever worker answers a scrape, /metrics
shows the whole service's counts. Seen before the fix: six scrapes after nine requests read
9 9 1 9 1 9, each worker showing only its own."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.support.server import clean_environment, serving

pytestmark = pytest.mark.slow

LIVE_OK = re.compile(
    r'^backendai_api_request_count_total\{[^}]*endpoint="/health/live"[^}]*status_code="200"'
    r"[^}]*\} (\S+)$",
    re.M,
)


def _served_live(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    values = LIVE_OK.findall(text)
    return sum(float(v) for v in values)


def _requests(base_url: str, count: int) -> None:
    for _ in range(count):
        # A new connection each time, so the kernel spreads them over the workers.
        assert httpx.get(f"{base_url}/health/live", timeout=10).status_code == 200


def test_every_scrape_of_several_workers_counts_every_request(tmp_path: Path) -> None:
    with serving(
        cwd=tmp_path, env=clean_environment(), extra_args=["--workers", "2"], ready_within=30.0
    ) as server:
        _requests(server.base_url, 20)
        scrapes = [_served_live(server.base_url) for _ in range(8)]
    assert scrapes == [20.0] * 8


def test_an_operators_metrics_dir_starts_empty(tmp_path: Path) -> None:
    """Counts of an earlier run left in PROMETHEUS_MULTIPROC_DIR are not added to this one's."""
    metrics_dir = tmp_path / "metrics"
    env = clean_environment(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    for requests in (7, 3):
        with serving(
            cwd=tmp_path, env=env, extra_args=["--workers", "2"], ready_within=30.0
        ) as server:
            _requests(server.base_url, requests)
            assert [_served_live(server.base_url) for _ in range(4)] == [float(requests)] * 4
