"""Prometheus metrics of the ingest worker (no per-device or per-site labels: bounded series)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Batch write latency: the target is a few milliseconds per batch of hundreds of messages.
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000)
RESULTS = ("stored", "stale", "duplicate", "invalid", "too_old", "failed", "lost")


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "tier0_ingest_messages",
            "Device messages handled, by result: stored (applied), stale/duplicate (not newer than "
            "the stored state, e.g. redeliveries), invalid (dead-lettered), too_old (dead-lettered: "
            "older than the timestamp rule's max age), failed (dead-lettered: the store refused them for good), "
            "lost (the store refused their dead letters too; logged)",
            ["result"],
            registry=registry,
        )
        for result in RESULTS:
            self.messages.labels(result)
        self.acks = Counter(
            "tier0_ingest_acks", "PUBACKs sent to the broker (after the Redis write)", registry=registry
        )
        self.batch_seconds = Histogram(
            "tier0_ingest_batch_seconds",
            "Time to validate and write one batch to Redis (successful attempts)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "tier0_ingest_batch_messages", "Messages per batch", buckets=SIZE_BUCKETS, registry=registry
        )
        self.lag = Gauge(
            "tier0_ingest_lag_seconds",
            "Age of the newest message of the last written batch (receive time minus payload time)",
            registry=registry,
        )
        self.pending = Gauge(
            "tier0_ingest_pending_messages",
            "Messages received and not yet acknowledged (waiting for their batch to be written and replicated)",
            registry=registry,
        )
        self.writable = Gauge(
            "tier0_ingest_writable",
            "1 while a current primary is resolved (the worker writes to it); 0 while there is none",
            registry=registry,
        )
        self.write_errors = Counter(
            "tier0_ingest_write_errors",
            "Failed batch writes: readonly (Redis is a replica), noreplicas (the primary refuses writes: "
            "min-replicas-to-write not met), connection, other (transient: retried), refused (a reason "
            "retrying does not cure: after 3 the batch is salvaged and what fails is dead-lettered)",
            ["error"],
            registry=registry,
        )
        for error in ("readonly", "noreplicas", "connection", "other", "refused"):
            self.write_errors.labels(error)
        self.mqtt_connected = Gauge(
            "tier0_ingest_mqtt_connected", "1 while connected to the MQTT broker", registry=registry
        )
        self.mqtt_connects = Counter(
            "tier0_ingest_mqtt_connects",
            "Successful MQTT connections (the first and every reconnect)",
            registry=registry,
        )
        self.active_devices = Gauge(
            "tier0_ingest_active_devices",
            "Devices seen within the activity window, as last written to stats:active_devices",
            registry=registry,
        )
        self.at_risk = Counter(
            "tier0_ingest_at_risk_messages",
            "Messages acknowledged after reaching the primary only (no replica confirmed the write, and the "
            "primary's min-replicas-to-write is 0: the pair's policy is to keep accepting while the standby is down)",
            registry=registry,
        )
        self.replication_holds = Counter(
            "tier0_ingest_replication_holds",
            "Retries of WAIT while holding a written but unreplicated batch unacknowledged",
            registry=registry,
        )
        self.future_clamped = Counter(
            "tier0_ingest_future_clamped_messages",
            "Messages dated beyond the skew allowance, stored with the receive time instead",
            registry=registry,
        )
