"""Prometheus metrics of the activity consumer (one registry per consumer, so tests can run several)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ActivityMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages = Counter(
            "tier0_activity_messages",
            "User-activity messages handled, by result: stored, duplicate (redelivery), stale (older than "
            "the newest), invalid / too_old (dead-lettered), failed (dead-lettered: Redis refused the "
            "write for a reason retrying does not cure, 3 times), requeued (write retried: no primary, "
            "Redis down, NOREPLICAS)",
            ["result"],
            registry=self.registry,
        )
        self.apply_seconds = Histogram(
            "tier0_activity_apply_seconds",
            "Time to write one message to Redis",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "tier0_activity_queue_messages",
            "Messages waiting in webapp_active_users (consumer lag)",
            registry=self.registry,
        )
        self.connected = Gauge(
            "tier0_activity_broker_connected", "1 while connected to RabbitMQ", registry=self.registry
        )
        self.reconnects = Counter("tier0_activity_reconnects", "Broker reconnections", registry=self.registry)
        self.at_risk = Counter(
            "tier0_activity_at_risk_messages",
            "Messages acknowledged after reaching the primary only (no replica confirmed, and the primary's "
            "min-replicas-to-write is 0: the pair's policy is to keep accepting while the standby is down)",
            registry=self.registry,
        )
        self.replication_holds = Counter(
            "tier0_activity_replication_holds",
            "Retries of WAIT while holding a written but unreplicated message unacknowledged",
            registry=self.registry,
        )
        self.future_clamped = Counter(
            "tier0_activity_future_clamped_messages",
            "Messages dated beyond the skew allowance, applied with the receive time instead",
            registry=self.registry,
        )
