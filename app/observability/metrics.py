"""Prometheus metrics. Each app owns a registry, so two apps in one process (tests) never
collide.

Under ``serve --workers N`` every worker counts in its own process; prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set up by ``serve``) keeps each worker's values
in files there, and ``/metrics`` adds them up, so every scrape sees the whole service whichever
worker answers it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROCESS_DIR_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(workers: int) -> Path | None:
    """Before the workers start: a fresh, empty directory for their metric files (an
    operator's own ``PROMETHEUS_MULTIPROC_DIR`` is emptied: files of an earlier run would add
    their counts to this one's). Returns a directory this call created, for the caller to
    remove when the service stops."""
    configured = multiprocess_dir()
    if configured is not None:
        configured.mkdir(parents=True, exist_ok=True)
        for stale in configured.glob("*.db"):
            stale.unlink()
        return None
    if workers <= 1:
        return None
    created = Path(tempfile.mkdtemp(prefix="storage-proxy-metrics-"))
    os.environ[MULTIPROCESS_DIR_ENV] = str(created)
    return created


def remove_multiprocess_dir(created: Path | None) -> None:
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)


REQUEST_LABELS = ("method", "endpoint", "domain", "operation", "error_detail", "status_code")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_count = Counter(
            "backendai_api_request_count",
            "API requests handled",
            REQUEST_LABELS,
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "backendai_api_request_duration_sec",
            "API request handling time in seconds",
            REQUEST_LABELS,
            registry=self.registry,
        )
        self.cache_available = Gauge(
            "storage_cache_available",
            "1 when the configured cache backend answers, 0 while it is bypassed",
            registry=self.registry,
            # Across workers: 0 as soon as one of them is bypassing the cache.
            multiprocess_mode="livemin",
        )
        self.access_denied = Counter(
            "storage_access_denied",
            "Requests refused by authentication or by the access check",
            ("operation", "reason"),
            registry=self.registry,
        )
        self.grant_changes = Counter(
            "storage_grant_changes",
            "Sharing grants set or revoked",
            ("action",),
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "storage_upload_bytes",
            "Bytes received by resumable uploads and acknowledged",
            registry=self.registry,
        )
        self.uploads_in_flight = Gauge(
            "storage_uploads_in_flight",
            "Resumable-upload requests currently streaming a body to disk",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.trash_purged = Counter(
            "storage_trash_purged_total",
            "Deleted vfolder directories purged from a volume's trash",
            ("volume",),
            registry=self.registry,
        )
        self.quota_usage_ratio = Gauge(
            "storage_quota_usage_ratio",
            "Bytes used or reserved by writes under way, over the byte limit, per limited scope",
            ("scope_type", "scope_id", "volume"),
            registry=self.registry,
            # Whichever worker computed it last has the current figure.
            multiprocess_mode="mostrecent",
        )
        self.quota_drift_bytes = Counter(
            "storage_quota_drift_bytes",
            "Bytes by which reconciliation corrected the usage ledger (absolute)",
            ("volume",),
            registry=self.registry,
        )
        self.quota_refusals = Counter(
            "storage_quota_refusals",
            "Writes refused because they would exceed a quota",
            ("scope_type",),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text ``/metrics`` serves: every worker's values when there are several."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def process_exiting(self) -> None:
        """A worker stopping: its live gauges leave the sums (counters keep its counts)."""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
