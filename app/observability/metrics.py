"""Prometheus metrics. Each app owns a registry, so two apps in one process (tests, several
workers' children) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
