"""The ingest worker: MQTT shared subscription in, batched writes to the current primary out, ack
after the write has reached the standby.

Delivery is at-least-once end to end: a message is acknowledged to the broker only after the
batch holding it is in Redis (and, with `replicated_ack`, on a replica: `WAIT` in the same round
trip), and a redelivered message is recognised by the store script.

One writer at a time, no backlog: every worker of both regions is a member of the one share
group (`$share/ingest/og/field/#`) and connected to both regions' Redis; it writes to whichever is
the current primary (`tier0_services.primary`), re-resolved every `resolve_interval` and at once
after READONLY/NOREPLICAS/connection errors. So a standby region's worker is as busy as the active
one's, no session queues up while a region is standby, and after a switchover every worker writes
to the new primary within one re-resolution. While there is no primary (mid-transition, both
unreachable), a worker holds the messages it has unacknowledged, so the broker stops at the
Receive Maximum and keeps the rest for the seconds the transition lasts.

This module wires the parts and runs the loops (flush, primary resolution, heartbeat, active
devices, writability) and the shutdown; the parts do the jobs: `session` the broker session,
`inbox` what was received and not yet acknowledged, `delivery` a batch from write to
acknowledgement (driven by the pure `ackpolicy`).
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from redis.exceptions import RedisError

from tier0_contract import credentials, keys
from tier0_services import aio, heartbeat, primary
from tier0_services.ingest import delivery, inbox, session, store
from tier0_services.ingest.metrics import IngestMetrics
from tier0_services.ingest.settings import Settings

log = logging.getLogger("tier0.ingest")

Config = Settings
"""The worker's configuration (`ingest.settings.Settings`)."""

MAX_UNCONFIRMED_BATCHES = 8
"""Written batches awaiting their replica confirmation at once (the broker's window bounds it too)."""


class IngestWorker:
    def __init__(self, config: Settings, metrics: IngestMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.primary = primary.AsyncPrimary(
            config.redis_urls,
            interval=config.resolve_interval,
            write_timeout=config.replica_ack_timeout + 1.0,
            auth=config.redis_auth(),
        )
        self.stores = [store.Store(c) for c in self.primary.clients]
        self.stopping = asyncio.Event()
        """Set when the worker starts to stop: every part leaves what it holds unacknowledged."""
        self.progress = heartbeat.Progress("ingest", config.mqtt_client_id, config.region)
        self.inbox = inbox.Inbox(config, self.progress)
        self.session = session.Session(config, metrics, self.inbox.receive, self.stopping)
        self.delivery = delivery.Delivery(
            config, metrics, self.primary, self.stores, self.progress, self.inbox, self.session, self.stopping
        )

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        log.info(
            "ingest worker %s: region %s, redis %s, mqtt %s:%s, group %s, replicated ack %s",
            cfg.mqtt_client_id,
            cfg.region,
            " ".join(credentials.redact_url(u) for u in cfg.redis_urls),
            cfg.mqtt_host,
            cfg.mqtt_port,
            cfg.group,
            cfg.replicated_ack,
        )
        await self.primary.resolve()
        connect = asyncio.create_task(self.session.connect(), name="mqtt")
        loops = [
            asyncio.create_task(self._primary_loop(), name="primary"),
            asyncio.create_task(self._flush_loop(), name="flush"),
            asyncio.create_task(self._active_loop(), name="active"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._writable_gauge(), name="gauge"),
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
        self.stopping.set()
        self.inbox.arrived.set()  # an idle flush loop ends now, not after the 10 s below
        flush = next(t for t in tasks if t.get_name() == "flush")
        try:
            await asyncio.wait_for(flush, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            pass
        # A task can swallow one cancellation (redis-py's socket writes under `asyncio.wait_for` on
        # Python 3.11, see `aio.cancel_and_wait`): with a single cancel, `close` once waited past a
        # test's 30 s teardown while a batch was held for a stopped replica. So each is cancelled
        # again until it has ended; what a task ended with is surfaced by `run`, not here.
        for task in [*tasks, stopped]:
            with contextlib.suppress(Exception):
                await aio.cancel_and_wait(task)
        await self.session.disconnect()
        await self.primary.aclose()

    async def _flush_loop(self) -> None:
        """Take, validate, write and confirm batches. Writes go one after the other, in the order
        received (no WAIT in them); each batch is then confirmed on a replica by a task of its own
        (`delivery.Delivery.finish`), so the next batch is written while the previous one's WAIT is
        outstanding: one round trip to the replica no longer serializes the stream.
        Acknowledgements stay in order (each finish waits for the previous one)."""
        cfg = self.config
        box = self.inbox
        finishing: deque[asyncio.Task[None]] = deque()
        try:
            while not self.stopping.is_set():
                while finishing and finishing[0].done():
                    finishing.popleft().result()  # a failed finish is a bug: surface it
                if len(finishing) > MAX_UNCONFIRMED_BATCHES:
                    await finishing[0]
                    continue
                if not box.pending and not finishing:
                    # Idle (a quiet fleet, or nothing routed here): sleep until a message arrives,
                    # then let the batch fill for `max_delay` as usual.
                    box.arrived.clear()
                    if not box.pending:
                        await box.arrived.wait()
                        continue
                if len(box.pending) < cfg.batch_size:
                    box.full.clear()
                    if finishing:
                        # Batches are in flight: let the next one grow until one is acknowledged.
                        waker = asyncio.ensure_future(box.full.wait())
                        await asyncio.wait([waker, finishing[0]], return_when=asyncio.FIRST_COMPLETED)
                        waker.cancel()
                    else:
                        await aio.wait_event(box.full, cfg.max_delay)
                self.metrics.pending.set(box.held)
                if not box.pending:
                    continue
                taken = box.take()
                written = await self.delivery.write_once(taken.prepared)
                previous = finishing[-1] if finishing else None
                finishing.append(asyncio.create_task(self.delivery.finish(taken, written, previous)))
        finally:
            if finishing:
                await finishing[-1]

    async def _primary_loop(self) -> None:
        while True:
            try:
                await self.primary.run()
            except (RedisError, OSError) as exc:  # run() observes with errors caught; belt and braces
                log.warning("primary resolution failed: %s", exc)
                await asyncio.sleep(self.config.resolve_interval)

    async def _active_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.active_interval)
            i = self.primary.choice.endpoint
            if i is None:
                continue
            try:
                count = await self.stores[i].refresh_active_devices(time.time(), self.config.active_window)
                self.metrics.active_devices.set(count)
            except (RedisError, OSError) as exc:
                log.debug("could not refresh %s: %s", keys.ACTIVE_DEVICES, exc)

    async def _heartbeat_loop(self) -> None:
        while True:
            self.session.pace_reconnects()
            await self.beat()
            await asyncio.sleep(self.config.heartbeat_interval)

    async def beat(self) -> bool:
        """Write this worker's heartbeat into the current primary; False when there is none or it
        refused (a worker that cannot write heartbeats cannot write data either)."""
        i = self.primary.choice.endpoint
        self.progress.pending = self.inbox.held
        # Connected means subscribed too: a broker acknowledges and drops what nobody subscribes to,
        # so the operator routes devices only to a region whose ingest reports this (`routing`).
        self.progress.connected = self.session.ready
        self.metrics.pending.set(self.progress.pending)
        if i is None:
            return False
        script_keys, argv = self.progress.args(time.monotonic())
        try:
            await self.primary.clients[i].eval(heartbeat.LUA, len(script_keys), *script_keys, *argv)
        except (RedisError, OSError) as exc:
            log.debug("heartbeat not written: %s", exc)
            return False
        return True

    async def _writable_gauge(self) -> None:
        """Follow whether a primary is resolved; subscribe once one has been. With both regions'
        Redis configured that is at start; a worker that knows only its own Redis (no peers) joins
        only once that Redis is primary, so a standby-only worker never takes a share it cannot
        write."""
        while True:
            writable = self.primary.choice.endpoint is not None
            self.metrics.writable.set(1 if writable else 0)
            if writable:
                self.session.join()
            await asyncio.sleep(0.1 if not self.session.joined else 0.25)
