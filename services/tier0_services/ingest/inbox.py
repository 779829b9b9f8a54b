"""What the broker delivered and the worker has not acknowledged yet: pending, then in flight.

Split from the worker's loops (worker.py) because three jobs share it: the session's sink appends
to it (on the event loop, once per message: kept to an append and two counters), the flush loop
takes batches from it, and the heartbeat and `tier0_ingest_pending_messages` report how much it
holds. A message leaves it only when its batch has been acknowledged (`done`) or the worker stops
(then the broker redelivers it).
"""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from tier0_services import heartbeat
from tier0_services.ingest import batch, store
from tier0_services.ingest.settings import Settings

Received = tuple[bytes, bytes, int | None, Any]  # topic, payload, packet id (None: QoS 0), connection


@dataclass(frozen=True)
class Taken:
    """One batch taken from the inbox: the messages, validated (`batch.prepare`) at `now`."""

    messages: list[Received]
    prepared: batch.Prepared
    now: float

    def acks(self) -> list[tuple[int | None, Any]]:
        """What acknowledging the batch sends: each message's packet id and connection."""
        return [(mid, conn) for _, _, mid, conn in self.messages]


class Inbox:
    def __init__(self, config: Settings, progress: heartbeat.Progress) -> None:
        self.config = config
        self.progress = progress
        self.pending: list[Received] = []
        self.in_flight = 0
        """Messages taken in batches being written or confirmed, not yet acknowledged."""
        self.full = asyncio.Event()
        """Set when a whole batch is pending: a partial one stops waiting to fill."""
        self.arrived = asyncio.Event()
        """Set by the first message after the flush loop found nothing to take: an idle worker
        sleeps on it instead of polling every `max_delay` (200 times a second by default)."""

    def receive(self, topic: bytes, payload: bytes, mid: int | None, conn: Any) -> None:
        """The session's sink (`mqtt.Sink`)."""
        self.pending.append((topic, payload, mid, conn))
        self.progress.received += 1
        if len(self.pending) == 1:
            self.arrived.set()
        if len(self.pending) >= self.config.batch_size:
            self.full.set()

    @property
    def held(self) -> int:
        """Received and not yet acknowledged: pending and in flight."""
        return len(self.pending) + self.in_flight

    def take(self) -> Taken:
        """Up to one batch (`store.MAX_BATCH`) of the pending messages, validated, now in flight."""
        messages = self.pending[: store.MAX_BATCH]
        del self.pending[: len(messages)]
        self.in_flight += len(messages)
        now = time.time()
        cfg = self.config
        prepared = batch.prepare(
            ((t, p) for t, p, _, _ in messages), now, skew=cfg.timestamp_skew, max_age=cfg.timestamp_max_age
        )
        return Taken(messages, prepared, now)

    def done(self, taken: Taken) -> None:
        """The batch is out of flight (acknowledged, or left for the broker to redeliver)."""
        self.in_flight -= len(taken.messages)
