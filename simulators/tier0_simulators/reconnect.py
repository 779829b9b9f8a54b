"""When a publisher gives up on its broker connection, and how soon it tries again (pure).

Devices and users publish through a Kubernetes Service that follows the active region. When that
region is cut off (a partition) or its broker is frozen, the TCP connection is never closed: the
peer is silent, and kube-proxy keeps an established connection on its old backend even after the
Service's selector has moved. Waiting for the broker to hang up means waiting for TCP's own
timeouts (minutes). So the simulators judge the broker by its acknowledgements (MQTT PUBACKs,
RabbitMQ publisher confirms): when a publish has waited `ack_timeout` seconds for one and nothing
was acknowledged meanwhile, they drop the connection and open a new one, which goes wherever the
Service points now, after a short backoff.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    ack_timeout: float = 2.0
    """Seconds a publish may wait for its acknowledgement before the connection is dropped."""
    connect_timeout: float = 2.0
    """Seconds a connection (TCP, TLS and the protocol's handshake) may take to open."""
    backoff_min: float = 0.1
    """Pause before the second attempt; each failed attempt doubles it, up to backoff_max."""
    backoff_max: float = 2.0

    def __post_init__(self) -> None:
        if not (self.ack_timeout > 0 and self.connect_timeout > 0 and 0 < self.backoff_min <= self.backoff_max):
            raise ValueError(f"need positive timeouts and 0 < backoff_min <= backoff_max: {self}")

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next attempt after `failures` failed ones in a row (0: none
        failed yet: the first attempt after a drop goes out at once)."""
        if failures <= 0:
            return 0.0
        return min(self.backoff_max, self.backoff_min * 2.0 ** min(failures - 1, 30))


def stalled(now: float, oldest_unacked: float | None, last_progress: float, timeout: float) -> bool:
    """Whether the broker stopped acknowledging: the oldest unacknowledged publish (sent at
    `oldest_unacked`, None when nothing waits) has waited more than `timeout` seconds, counted
    from `last_progress` when that is later (the connection opened, or the broker acknowledged
    something: a slow broker that still answers is not dropped)."""
    if oldest_unacked is None:
        return False
    return now - max(oldest_unacked, last_progress) > timeout
