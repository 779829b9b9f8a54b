"""The ingest worker: MQTT shared subscription in, batched Redis writes out, ack after the write.

Delivery is at-least-once end to end: a message is acknowledged to the broker only after the
batch holding it is in Redis, and a redelivered message is recognised by the store script.

Role gating: the worker writes only while its region's Redis reports `role:master`. It subscribes
the first time it sees its Redis primary and stays subscribed afterwards, so while it is paused
(a replica, or Redis unreachable) the broker keeps queueing its share of QoS 1 messages in its
persistent session (fixed client id, clean start off, session expiry) and the messages it already
holds stay unacknowledged; on promotion it writes them, then the backlog. A worker that starts as
a replica does not subscribe, so a standby region costs the broker nothing. Regions sharing one
broker use different share groups (`ingest-<region>` by default), so a paused region's worker never
takes messages away from the active one.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tier0_contract import keys, topics
from tier0_services.ingest import batch, store
from tier0_services.ingest.metrics import IngestMetrics
from tier0_services.ingest.mqtt import IngestClient

log = logging.getLogger("tier0.ingest")


@dataclass(frozen=True)
class Config:
    region: str = "region1"
    redis_url: str = "redis://127.0.0.1:6379/0"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    client_id: str = ""
    """Stable per worker (e.g. the pod name of a StatefulSet): the broker keeps the session by it."""
    share_group: str = ""
    batch_size: int = 500
    max_delay: float = 0.005
    """Seconds a partial batch waits for more messages before it is written."""
    receive_maximum: int = 2000
    """Unacknowledged messages the broker may have in flight to this worker (MQTT 5 flow control)."""
    session_expiry: int = 3600
    role_interval: float = 1.0
    active_window: float = keys.ACTIVE_WINDOW_SECONDS
    active_interval: float = 1.0

    @property
    def group(self) -> str:
        return self.share_group or f"{topics.INGEST_GROUP}-{self.region}"

    @property
    def mqtt_client_id(self) -> str:
        return self.client_id or f"tier0-ingest-{self.region}"


Received = tuple[bytes, bytes, int, Any]  # topic, payload, packet id, connection


class IngestWorker:
    def __init__(self, config: Config, metrics: IngestMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.redis: Redis = Redis.from_url(
            config.redis_url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )
        self.store = store.Store(self.redis)
        self._pending: list[Received] = []
        self._wake = asyncio.Event()
        self._writable = asyncio.Event()
        self._role_now = asyncio.Event()
        self._want_subscription = False
        self._stopping = False
        self._connected = False
        self.client = IngestClient(
            config.mqtt_client_id,
            self._receive,
            receive_maximum=config.receive_maximum,
            session_expiry_interval=config.session_expiry,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = asyncio.Event()
        """Set once the broker has acknowledged the shared subscription (cleared on disconnect)."""
        self.client.reconnect_retries = -1  # gmqtt's UNLIMITED_RECONNECTS
        self.client.reconnect_delay = 0.5

    # --- MQTT side ------------------------------------------------------------------------------

    def _receive(self, topic: bytes, payload: bytes, mid: int, conn: Any) -> None:
        self._pending.append((topic, payload, mid, conn))
        if len(self._pending) >= self.config.batch_size:
            self._wake.set()

    def _on_connect(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        log.info("connected to mqtt://%s:%s (session present: %s)", self.config.mqtt_host, self.config.mqtt_port, flags)
        self._connected = True
        self.metrics.mqtt_connected.set(1)
        self.metrics.mqtt_connects.inc()
        self.client.reconnect_delay = 0.5
        if self._want_subscription:
            self._subscribe()

    def _on_subscribe(self, client: Any, mid: int, qos: Any, properties: Any) -> None:
        log.info("subscription acknowledged (granted QoS %s)", qos)
        self.subscribed.set()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        self._connected = False
        self.subscribed.clear()
        self.metrics.mqtt_connected.set(0)
        if not self._stopping:
            # gmqtt retries with a fixed delay; grow it so a long broker outage is not hammered.
            self.client.reconnect_delay = min(self.client.reconnect_delay * 2, 10)
            log.warning("disconnected from the broker; reconnecting in %.1f s", self.client.reconnect_delay)

    def _subscribe(self) -> None:
        topic = topics.shared_subscription(self.config.group)
        existing = [s for s in self.client.subscriptions if s.topic == topic]
        if existing:
            self.client.resubscribe(existing[0])
        else:
            self.client.subscribe(topic, qos=1)
        log.info("subscribing to %s", topic)

    async def _connect(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.client.connect(self.config.mqtt_host, self.config.mqtt_port, keepalive=30)
                return
            except (TimeoutError, OSError) as exc:
                log.warning("mqtt connect failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    # --- Redis side -----------------------------------------------------------------------------

    async def _role_loop(self) -> None:
        """Follow the Redis role: writable while primary; paused while replica or unreachable."""
        while True:
            try:
                primary = await self.store.is_primary()
            except (RedisError, OSError) as exc:
                log.warning("redis unreachable (%s); paused", exc)
                primary = False
            if primary and not self._writable.is_set():
                log.info("redis is the primary: writing")
                self._writable.set()
                if not self._want_subscription:
                    self._want_subscription = True
                    if self._connected:
                        self._subscribe()
            elif not primary and self._writable.is_set():
                log.warning("redis is not the primary: paused (holding %d messages unacknowledged)", len(self._pending))
                self._writable.clear()
            self.metrics.writable.set(1 if primary else 0)
            self._role_now.clear()
            try:
                await asyncio.wait_for(self._role_now.wait(), self.config.role_interval)
            except TimeoutError:
                pass

    async def _active_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.active_interval)
            if not self._writable.is_set():
                continue
            try:
                count = await self.store.refresh_active_devices(time.time(), self.config.active_window)
                self.metrics.active_devices.set(count)
            except (RedisError, OSError) as exc:
                log.warning("could not refresh %s: %s", keys.ACTIVE_DEVICES, exc)

    async def _write(self, prepared: batch.Prepared) -> store.Applied:
        """Write until it succeeds: a batch is never dropped, only delayed (it stays unacknowledged)."""
        delay = 0.05
        while True:
            if not self._writable.is_set():
                await self._writable.wait()
            try:
                return await self.store.apply(prepared)
            except ReadOnlyError:
                self.metrics.write_errors.labels("readonly").inc()
                self._writable.clear()
                self._role_now.set()
                log.warning("redis answered READONLY: paused until it is the primary again")
                continue
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.metrics.write_errors.labels("connection").inc()
                log.warning("redis write failed (%s); retrying in %.2f s", exc, delay)
            except RedisError as exc:
                self.metrics.write_errors.labels("other").inc()
                log.error("redis write failed (%r); retrying in %.2f s", exc, delay)
            self._role_now.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _flush_loop(self) -> None:
        cfg = self.config
        while not self._stopping:
            if len(self._pending) < cfg.batch_size:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), cfg.max_delay)
                except TimeoutError:
                    pass
            self.metrics.pending.set(len(self._pending))
            if not self._pending:
                continue
            await self.flush_once()

    async def flush_once(self) -> None:
        """Write and acknowledge up to one batch of what has been received."""
        take = self._pending[: store.MAX_BATCH]
        del self._pending[: len(take)]
        started = time.perf_counter()
        now = time.time()
        prepared = batch.prepare(((t, p) for t, p, _, _ in take), now)
        applied = await self._write(prepared)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.acks.inc(self.client.ack([(mid, conn) for _, _, mid, conn in take]))
        m = self.metrics.messages
        m.labels("stored").inc(applied.stored)
        m.labels("stale").inc(applied.stale)
        m.labels("duplicate").inc(applied.duplicate)
        m.labels("invalid").inc(applied.invalid)
        self.metrics.batch_size.observe(len(take))
        if prepared.newest_ts:
            self.metrics.lag.set(max(0.0, now - prepared.newest_ts))

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        log.info(
            "ingest worker %s: region %s, redis %s, mqtt %s:%s, group %s",
            cfg.mqtt_client_id, cfg.region, cfg.redis_url, cfg.mqtt_host, cfg.mqtt_port, cfg.group,
        )  # fmt: skip
        connect = asyncio.create_task(self._connect(), name="mqtt")
        loops = [
            asyncio.create_task(self._role_loop(), name="role"),
            asyncio.create_task(self._flush_loop(), name="flush"),
            asyncio.create_task(self._active_loop(), name="active"),
        ]
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopped, *loops], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stopped]
        await self.close([connect, *loops], stopped)
        for task in failed:  # a loop ended by itself: a bug, surfaced instead of running half-dead
            task.result()

    async def close(self, tasks: list["asyncio.Task[Any]"], stopped: "asyncio.Task[Any]") -> None:
        """Stop taking messages, finish the batch being written, disconnect. Messages still pending
        are unacknowledged and come back on the next connection of this client id."""
        self._stopping = True
        flush = next(t for t in tasks if t.get_name() == "flush")
        try:
            await asyncio.wait_for(flush, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            pass
        for task in tasks:
            task.cancel()
        stopped.cancel()
        await asyncio.gather(*tasks, stopped, return_exceptions=True)
        if self._connected:
            await self.client.disconnect()
        await self.redis.aclose()
