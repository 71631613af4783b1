"""Prometheus metrics of one worker (a registry per Service, so several can live in one process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events_in = Counter("lapse_events_in", "Events read, by topic and type", ["topic", "type"], registry=r)
        self.invalid = Counter("lapse_invalid_events", "Messages sent to the dead-letter topic, by reason class",
                               ["topic", "reason"], registry=r)
        self.decisions = Counter("lapse_decisions", "Decisions published, by action and reason", ["action", "reason"],
                                 registry=r)
        self.skipped = Counter("lapse_skipped_records", "Vendor records deliberately ignored, by topic and kind",
                               ["topic", "kind"], registry=r)
        self.audit = Counter("lapse_audit_records", "Audit records published, by kind", ["kind"], registry=r)
        self.forwarded = Counter("lapse_forwarded_events", "Events re-keyed to their user's partition", registry=r)
        self.decision_latency = Histogram("lapse_decision_latency_seconds",
                                          "Inbound message timestamp to decision published", buckets=LATENCY_BUCKETS,
                                          registry=r)
        self.lateness = Histogram("lapse_deadline_lateness_seconds", "Publish time minus deadline, for timeouts",
                                  buckets=LATENESS_BUCKETS, registry=r)
        self.live_sessions = Gauge("lapse_live_sessions", "Live sessions on this worker's partitions", registry=r)
        self.inbound_age = Gauge("lapse_last_inbound_age_seconds", "Seconds since the last message, per partition",
                                 ["topic", "partition"], registry=r)
        self.scores = Histogram("lapse_anomaly_score", "Calibrated anomaly scores",
                                buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0), registry=r)
        self.batch_size = Histogram("lapse_batch_size", "Events per processed batch",
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000), registry=r)
        self.gc_pause = Histogram("lapse_gc_pause_seconds", "Garbage-collection pauses of the worker, by generation",
                                  ["generation"], buckets=LATENCY_BUCKETS, registry=r)
        self.faults = Counter("lapse_record_faults", "Records whose decision raised (dead-lettered, worker kept "
                              "running), by stage", ["stage"], registry=r)
        self.stalled = Gauge("lapse_stalled", "1 while input waits and nothing was decided for LAPSE_STALL_S",
                             registry=r)
        self.since_decided = Gauge("lapse_seconds_since_decided", "Seconds since the worker last decided input",
                                   registry=r)
        # operator surface (admin API, policy reload)
        self.policy_info = Gauge("lapse_policy_info", "The policy version in force (value 1)", ["version"], registry=r)
        self.policy_reloads = Counter("lapse_policy_reloads", "Policy-topic records, by result (applied, refused)",
                                      ["result"], registry=r)
        self.admin_requests = Counter("lapse_admin_requests", "Admin API requests, by route and HTTP status",
                                      ["route", "status"], registry=r)
        self.forged_records = Counter("lapse_forged_records",
                                      "Internal-topic records refused as unsealed, forged, moved or stale, "
                                      "by topic and reason", ["topic", "reason"], registry=r)
        from streams.service.pipeline.sealed import REASONS, SEALED_TOPICS

        for topic in SEALED_TOPICS:  # a fixed label set, every series present from the start (0)
            for reason in REASONS:
                self.forged_records.labels(topic, reason)
        self._policy_version: str | None = None
        self._last_inbound: dict[tuple[str, int], float] = {}

    def saw(self, topic: str, partition: int, now: float | None = None) -> None:
        self._last_inbound[(topic, partition)] = time.time() if now is None else now

    def inbound_ages(self, now: float | None = None) -> dict[str, float]:
        now = time.time() if now is None else now
        ages = {}
        for (topic, partition), t in sorted(self._last_inbound.items()):
            age = max(0.0, now - t)
            self.inbound_age.labels(topic, str(partition)).set(age)
            ages[f"{topic}[{partition}]"] = round(age, 3)
        return ages

    def set_policy_version(self, version: str) -> None:
        if self._policy_version is not None:
            self.policy_info.remove(self._policy_version)
        self._policy_version = version
        self.policy_info.labels(version).set(1)

    def exposition(self) -> bytes:
        self.inbound_ages()
        return generate_latest(self.registry)
