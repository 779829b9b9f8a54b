"""What the operator measures: one `Probe` per region per round, and what Kubernetes shows of each
region (`RegionSeen`, from the EndpointSlices `endpoints.Witness` watches). The resource itself (spec and
status) is `tier0_contract.regionpair`, the one model every component shares.

Probes are frozen values, so the decisions (`decide.py`, `transition.py`) are pure functions of
spec, status and probes, unit-tested without Redis or an apiserver.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from tier0_contract import pipeline
from tier0_contract import regionpair as rp


@dataclass(frozen=True)
class Probe:
    """One measurement of one region: its Redis (PING, INFO replication, the operator's own keys and
    settings, the pipeline heartbeats) and its health URL."""

    region: str
    at: datetime
    reachable: bool = False
    http_ok: bool | None = None  # None: no healthURL configured
    role: rp.Role = "unknown"
    offset: int = 0  # master_repl_offset of a primary, slave_repl_offset of a replica
    master_host: str | None = None
    master_port: int | None = None
    link_up: bool = False
    error: str = ""
    # A replica's view of its primary (INFO replication), the standby's witness of the active region:
    last_io_seconds: int | None = None  # master_last_io_seconds_ago while the link is up
    link_down_seconds: int | None = None  # master_link_down_since_seconds (None: up, or never connected)
    syncing: bool = False  # master_sync_in_progress: a (re)sync the replica started, not a lost primary
    epoch: int | None = None  # keys.PAIR_EPOCH in this Redis (None: not set)
    min_replicas_to_write: int | None = None  # CONFIG GET min-replicas-to-write (None: not read)
    min_replicas_max_lag: int | None = None
    ping_period: int | None = None  # CONFIG GET repl-ping-replica-period (None: not read)
    heartbeats: tuple[pipeline.Heartbeat, ...] = field(default=(), compare=False)
    server_time: float | None = None  # Redis TIME (epoch s): the clock the heartbeats are on

    @property
    def healthy(self) -> bool:
        return self.reachable and self.http_ok is not False

    def replicates_from(self, endpoint: rp.RedisEndpoint) -> bool:
        return self.role == "replica" and (self.master_host, self.master_port) == endpoint.replication_endpoint


@dataclass(frozen=True)
class RegionSeen:
    """One region through Kubernetes' eyes: its Redis Service and its API Service as their
    EndpointSlices show them (`endpoints.state_of`; `rp.EndpointState`)."""

    redis: rp.EndpointState = "unknown"
    api: rp.EndpointState = "unknown"
    redis_vanished: bool = False
    """Its Redis endpoint went from serving to absent without a terminating stage (`endpoints.followed`):
    the pod was force-deleted. The kubelet still stops it with a grace of about 2 s."""

    @property
    def disruption(self) -> str | None:
        """Why this region is being taken down on purpose (a drain, an eviction, a deletion that
        leaves nothing serving), or None. A crash is not a disruption: its probes say so."""
        if self.redis == "terminating":
            return "its Redis pod is terminating (drain, eviction or deletion)"
        if self.redis == "absent" and self.redis_vanished:
            # Nothing new can connect to it; the connections open to it still work until the kubelet
            # stops it: time to switch over without loss.
            return "its serving Redis pod was deleted without grace (forced)"
        if self.api == "terminating":
            return "its last serving API pod is terminating (drain, eviction or deletion)"
        return None

    @property
    def redis_down(self) -> str | None:
        """Why Kubernetes says this region's Redis is not serving (None: serving, or not known): the
        Kubernetes witness of a failed active region."""
        if self.redis in ("notready", "absent", "terminating"):
            return f"Kubernetes shows its Redis {self.redis}"
        return None


NOTHING_SEEN = RegionSeen()


def now() -> datetime:
    return datetime.now(UTC)
