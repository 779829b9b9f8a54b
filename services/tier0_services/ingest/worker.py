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
"""

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from typing import Any

from gmqtt.mqtt.handler import MQTTConnectError
from redis.exceptions import RedisError

from tier0_contract import credentials, keys, topics
from tier0_services import ackpolicy, aio, heartbeat, primary, rediserrors
from tier0_services.ingest import batch, store
from tier0_services.ingest.metrics import IngestMetrics
from tier0_services.ingest.mqtt import IngestClient
from tier0_services.ingest.settings import Settings

log = logging.getLogger("tier0.ingest")

Config = Settings
"""The worker's configuration (`ingest.settings.Settings`)."""

Received = tuple[bytes, bytes, int | None, Any]  # topic, payload, packet id (None: QoS 0), connection
Ack = ackpolicy.Ack
MAX_UNCONFIRMED_BATCHES = 8
"""Written batches awaiting their replica confirmation at once (the broker's window bounds it too)."""
STOP_CHECK_S = 0.1
"""How often a worker waiting for a primary looks whether it is stopping."""
RECONNECT_FAST_S = 0.1
RECONNECT_FAST_FOR_S = 3.0
RECONNECT_MAX_S = 10.0


def reconnect_delay(outage_s: float) -> float:
    """gmqtt's delay between reconnect attempts, `outage_s` into a broker outage: every 0.1 s for the
    first 3 s (a restarted broker has nobody to give the devices' messages to until a share-group
    member subscribes again), then a tenth of the outage so far, at most 10 s (a long outage is not
    hammered)."""
    if outage_s < RECONNECT_FAST_FOR_S:
        return RECONNECT_FAST_S
    return min(RECONNECT_MAX_S, outage_s / 10)


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
        self._pending: list[Received] = []
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._arrived = asyncio.Event()
        """Set by the first message after the flush loop found nothing to take: an idle worker
        sleeps on it instead of polling every `max_delay` (200 times a second by default)."""
        self._stopping = False
        self._connected = False
        self._disconnected_at: float | None = None
        self._want_subscription = False
        self.progress = heartbeat.Progress("ingest", config.mqtt_client_id, config.region)
        self.client = IngestClient(
            config.mqtt_client_id,
            self._receive,
            receive_maximum=config.receive_maximum,
            session_expiry_interval=config.session_expiry,
        )
        if config.mqtt_username:
            self.client.set_auth_credentials(config.mqtt_username, config.mqtt_password())
        self._mqtt_tls = (
            ssl.create_default_context(cafile=str(config.mqtt_tls_ca_file)) if config.mqtt_tls_ca_file else False
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = asyncio.Event()
        """Set once the broker has acknowledged the shared subscription (cleared on disconnect)."""
        self.client.reconnect_retries = -1  # gmqtt's UNLIMITED_RECONNECTS
        self.client.reconnect_delay = RECONNECT_FAST_S

    # --- MQTT side ------------------------------------------------------------------------------

    def _receive(self, topic: bytes, payload: bytes, mid: int | None, conn: Any) -> None:
        self._pending.append((topic, payload, mid, conn))
        self.progress.received += 1
        if len(self._pending) == 1:
            self._arrived.set()
        if len(self._pending) >= self.config.batch_size:
            self._wake.set()

    def _on_connect(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        log.info("connected to mqtt://%s:%s (session present: %s)", self.config.mqtt_host, self.config.mqtt_port, flags)
        self._connected = True
        self.metrics.mqtt_connected.set(1)
        self.metrics.mqtt_connects.inc()
        self._disconnected_at = None
        self.client.reconnect_delay = RECONNECT_FAST_S
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
            # gmqtt retries with a fixed delay, which the heartbeat loop stretches as the outage lasts.
            self._disconnected_at = time.monotonic()
            self.client.reconnect_delay = RECONNECT_FAST_S
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
                await self.client.connect(
                    self.config.mqtt_host, self.config.mqtt_port, ssl=self._mqtt_tls, keepalive=30
                )
                return
            except MQTTConnectError as exc:  # refused (credentials): each attempt says so; retried
                log.error("mqtt connect refused by the broker (%s); retrying in %.1f s", exc, delay)
            except (TimeoutError, OSError) as exc:
                why = str(exc) or f"no answer within {self.client.connect_timeout:g} s"  # a bare TimeoutError
                log.warning("mqtt connect failed (%s); retrying in %.1f s", why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    # --- Redis side -----------------------------------------------------------------------------

    async def _primary_loop(self) -> None:
        while True:
            try:
                await self.primary.run()
            except (RedisError, OSError) as exc:  # run() observes with errors caught; belt and braces
                log.warning("primary resolution failed: %s", exc)
                await asyncio.sleep(self.config.resolve_interval)

    async def _current_primary(self) -> int:
        """The current primary's index, waiting while there is none (a transition, or a worker that
        knows only its own Redis, which is a replica now). A stopping worker stops waiting: the
        batch stays unacknowledged and the broker redelivers it (without this a worker holding a
        batch never finished its SIGTERM and was killed after its grace period)."""
        while True:
            if self._stopping:
                raise asyncio.CancelledError
            try:
                async with asyncio.timeout(STOP_CHECK_S):
                    return await self.primary.primary()
            except TimeoutError:
                continue

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
            if self._disconnected_at is not None:
                self.client.reconnect_delay = reconnect_delay(time.monotonic() - self._disconnected_at)
            await self.beat()
            await asyncio.sleep(self.config.heartbeat_interval)

    async def beat(self) -> bool:
        """Write this worker's heartbeat into the current primary; False when there is none or it
        refused (a worker that cannot write heartbeats cannot write data either)."""
        i = self.primary.choice.endpoint
        self.progress.pending = len(self._pending) + self._in_flight
        # Connected means subscribed too: a broker acknowledges and drops what nobody subscribes to,
        # so the operator routes devices only to a region whose ingest reports this (`routing`).
        self.progress.connected = self._connected and self.subscribed.is_set()
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

    async def _write(self, prepared: batch.Prepared) -> tuple[store.Applied, Ack]:
        """Write until the batch may be acknowledged (`ackpolicy`): a batch is never dropped, only
        delayed (it stays unacknowledged). Re-written after a primary change (the script makes that
        harmless)."""
        pause = ackpolicy.FIRST_PAUSE_S
        refused = 0
        timeout_ms = int(self.config.replica_ack_timeout * 1000)
        while True:
            i = await self._current_primary()
            wait = ackpolicy.wait_replicas(self.config.replicated_ack, self.primary.choice.observation)
            try:
                applied = await self.stores[i].apply(prepared, wait_replicas=wait, wait_timeout_ms=timeout_ms)
            except (RedisError, OSError) as exc:
                step = ackpolicy.after_write_error(exc, refused)
                refused = step.refused
                assert step.error is not None
                self.metrics.write_errors.labels(step.error).inc()
                self._log_write_error(exc, step, pause)
                if step.action is ackpolicy.Action.DEAD_LETTER:
                    salvaged = await self._salvage_and_confirm(i, prepared)
                    if salvaged is not None:
                        return salvaged
                    refused = 0  # the primary moved meanwhile: the whole batch again
                if step.error == "readonly":  # the promoted primary is found within a resolution
                    self.primary.poke()
                    await asyncio.sleep(min(pause, self.config.resolve_interval))
                    pause = ackpolicy.next_pause(pause)
                    continue
            else:
                step = ackpolicy.after_write(self.config.replicated_ack, applied.replicas)
                if step.action is ackpolicy.Action.ACKNOWLEDGE and step.ack is not None:
                    return applied, step.ack
                outcome = await self._hold_until_replicated(i)
                if outcome is not None:
                    return applied, outcome
                if self._stopping:  # leave the batch unacknowledged: the broker redelivers it
                    raise asyncio.CancelledError
                continue  # the primary moved or failed while holding: write the batch again
            self.primary.poke()
            await asyncio.sleep(pause)
            pause = ackpolicy.next_pause(pause)

    def _log_write_error(self, exc: BaseException, step: ackpolicy.Step, pause: float) -> None:
        why = rediserrors.reason(exc)
        if step.error == "readonly":
            log.warning("redis answered READONLY: re-resolving the primary")
        elif step.error == "connection":
            log.warning("redis write failed (%s); retrying in %.2f s", why, pause)
        elif step.error == "noreplicas":
            log.warning("primary refuses writes (NOREPLICAS): holding; retrying in %.2f s", pause)
        elif step.error == "other":
            log.error("redis write failed (%s); retrying in %.2f s", why, pause)
        else:
            log.error("redis refused the batch (%s), attempt %d of %d", why, step.refused, ackpolicy.REFUSED_ATTEMPTS)

    async def _salvage_and_confirm(self, i: int, prepared: batch.Prepared) -> tuple[store.Applied, Ack] | None:
        """The batch was refused REFUSED_ATTEMPTS times for a reason retrying does not cure: write
        what can be written, dead-letter what cannot (`_salvage`), then confirm it on a replica as
        any write. None: a transient error or a primary change on the way (write the batch again)."""
        try:
            applied = await self._salvage(self.stores[i], prepared)
        except (RedisError, OSError) as exc:  # transient only: _salvage handles the rest itself
            log.warning("salvaging a refused batch: %s; writing it again", rediserrors.reason(exc))
            self.primary.poke()
            return None
        outcome = await self._confirm(i)
        return None if outcome is None else (applied, outcome)

    async def _salvage(self, target: store.Store, prepared: batch.Prepared) -> store.Applied:
        """Halves of a refused batch are written on their own, down to single messages; a message
        the store still refuses becomes a dead letter (`store: <reason>`), counted as `failed`. So
        one message that breaks the script costs only itself, and a key of the wrong type costs
        every message (each one dead-lettered and counted), never an endless retry. Bounded: at
        most 2n-1 writes for n messages. Transient errors propagate (the caller holds)."""
        now = time.time()
        failed: list[bytes] = []
        totals = [0, 0, 0]

        async def write(start: int, stop: int) -> None:
            try:
                part = await target.apply(batch.records_only(prepared, start, stop))
            except RedisError as exc:
                if rediserrors.is_transient(exc):
                    raise
                if stop - start == 1:
                    failed.append(batch.failed_record(prepared.records[start], rediserrors.reason(exc), now))
                    return
                middle = (start + stop) // 2
                await write(start, middle)
                await write(middle, stop)
                return
            totals[0] += part.stored
            totals[1] += part.stale
            totals[2] += part.duplicate

        if prepared.records:
            await write(0, len(prepared.records))
        letters = batch.dead_letters_only(prepared, failed)
        if letters.dead_letters or letters.future_clamped:
            try:
                await target.apply(letters)
            except RedisError as exc:
                if rediserrors.is_transient(exc):
                    raise
                log.error(
                    "the dead letters of a refused batch were refused too (%s): %d message(s) acknowledged "
                    "without a trace in Redis",
                    rediserrors.reason(exc),
                    letters.rejected,
                )
                self.metrics.messages.labels("lost").inc(letters.rejected)
                letters, failed = batch.dead_letters_only(batch.Prepared()), []
        if failed:
            log.error("%d message(s) refused by the store dead-lettered to %s", len(failed), keys.DEVICES_DEAD_LETTER)
        return store.Applied(
            totals[0],
            totals[1],
            totals[2],
            letters.invalid,
            letters.too_old,
            prepared.future_clamped,
            failed=len(failed),
        )

    async def _hold_until_replicated(self, i: int) -> Ack | None:
        """After a write no replica confirmed, hold it (`ackpolicy.while_holding`): ask again with
        a backoff until a replica confirms, the policy accepts it at risk, or the primary moves.
        None: write again."""
        pause = ackpolicy.FIRST_PAUSE_S
        while not self._stopping:
            step = ackpolicy.while_holding(i, self.primary.choice)
            if step.action is not ackpolicy.Action.HOLD:
                return step.ack
            self.metrics.replication_holds.inc()
            await asyncio.sleep(pause)
            pause = ackpolicy.next_pause(pause)
            result = await self._wait_on(i)
            step = ackpolicy.after_confirm(result)
            if step.error == "noreplicas":  # same primary, still without a replica: keep holding
                self.metrics.write_errors.labels("noreplicas").inc()
            if step.action is ackpolicy.Action.WRITE_AGAIN:
                log.warning("holding a batch: %s", result)
                self.primary.poke()
                return None
            if step.action is ackpolicy.Action.ACKNOWLEDGE:
                return step.ack
        return None

    async def _wait_on(self, i: int) -> int | BaseException:
        """This worker's heartbeat + `WAIT 1` on endpoint `i`: how many replicas confirmed, or the
        error. Any write on any connection followed by WAIT covers everything written before it."""
        script_keys, argv = self.progress.args(time.monotonic())
        try:
            async with self.primary.clients[i].pipeline(transaction=False) as pipe:
                pipe.eval(heartbeat.LUA, len(script_keys), *script_keys, *argv)
                pipe.wait(1, int(self.config.replica_ack_timeout * 1000))
                _, replicas = rediserrors.raise_first(await pipe.execute(raise_on_error=False))
        except (RedisError, OSError) as exc:
            return exc
        return int(replicas)

    async def _flush_loop(self) -> None:
        """Take, validate, write and confirm batches. Writes go one after the other, in the order
        received (no WAIT in them); each batch is then confirmed on a replica by a task of its own
        (`_finish`), so the next batch is written while the previous one's WAIT is outstanding:
        one round trip to the replica no longer serializes the stream. Acknowledgements stay in
        order (each finish waits for the previous one)."""
        cfg = self.config
        finishing: deque[asyncio.Task[None]] = deque()
        try:
            while not self._stopping:
                while finishing and finishing[0].done():
                    finishing.popleft().result()  # a failed finish is a bug: surface it
                if len(finishing) > MAX_UNCONFIRMED_BATCHES:
                    await finishing[0]
                    continue
                if not self._pending and not finishing:
                    # Idle (a quiet fleet, or nothing routed here): sleep until a message arrives,
                    # then let the batch fill for `max_delay` as usual.
                    self._arrived.clear()
                    if not self._pending:
                        await self._arrived.wait()
                        continue
                if len(self._pending) < cfg.batch_size:
                    self._wake.clear()
                    if finishing:
                        # Batches are in flight: let the next one grow until one is acknowledged.
                        waker = asyncio.ensure_future(self._wake.wait())
                        await asyncio.wait([waker, finishing[0]], return_when=asyncio.FIRST_COMPLETED)
                        waker.cancel()
                    else:
                        await aio.wait_event(self._wake, cfg.max_delay)
                self.metrics.pending.set(len(self._pending) + self._in_flight)
                if not self._pending:
                    continue
                take, prepared, now = self._take()
                written = await self._write_once(prepared)
                previous = finishing[-1] if finishing else None
                finishing.append(asyncio.create_task(self._finish(take, prepared, now, written, previous)))
        finally:
            if finishing:
                await finishing[-1]

    async def _write_once(self, prepared: batch.Prepared) -> tuple[store.Applied, int] | None:
        """One write (no WAIT) to the current primary; None after an error (`_finish` then takes
        the slow path, which retries)."""
        i = await self._current_primary()
        try:
            return await self.stores[i].apply(prepared), i
        except (RedisError, OSError) as exc:
            self.metrics.write_errors.labels(ackpolicy.classify(exc)).inc()
            self.primary.poke()
            return None

    async def _confirm(self, i: int) -> Ack | None:
        """Whether everything written to endpoint `i` so far may be acknowledged
        (`ackpolicy.before_confirm`, then one `_wait_on`). None: the primary moved or failed
        (write again)."""
        step = ackpolicy.before_confirm(self.config.replicated_ack, i, self.primary.choice)
        if step.action is not ackpolicy.Action.HOLD:
            return step.ack
        step = ackpolicy.after_confirm(await self._wait_on(i))
        if step.action is ackpolicy.Action.ACKNOWLEDGE:
            return step.ack
        if step.action is ackpolicy.Action.WRITE_AGAIN:
            self.primary.poke()
            return None
        return await self._hold_until_replicated(i)

    async def _finish(
        self,
        take: list[Received],
        prepared: batch.Prepared,
        now: float,
        written: tuple[store.Applied, int] | None,
        previous: "asyncio.Task[None] | None",
    ) -> None:
        started = time.perf_counter()
        try:
            outcome: Ack | None = None
            if written is not None:
                applied, i = written
                outcome = await self._confirm(i)
            if outcome is None:
                if self._stopping:  # leave the batch unacknowledged: the broker redelivers it
                    raise asyncio.CancelledError
                applied, outcome = await self._write(prepared)  # the slow path: write + WAIT, re-resolving
            if previous is not None:
                await previous
        finally:
            self._in_flight -= len(take)
        self._acknowledge(take, prepared, now, applied, outcome, started)

    def _take(self) -> tuple[list[Received], batch.Prepared, float]:
        take = self._pending[: store.MAX_BATCH]
        del self._pending[: len(take)]
        self._in_flight += len(take)
        now = time.time()
        cfg = self.config
        prepared = batch.prepare(
            ((t, p) for t, p, _, _ in take), now, skew=cfg.timestamp_skew, max_age=cfg.timestamp_max_age
        )
        return take, prepared, now

    async def flush_once(self) -> None:
        """Write and acknowledge up to one batch of what has been received."""
        take, prepared, now = self._take()
        started = time.perf_counter()
        try:
            applied, outcome = await self._write(prepared)
        finally:
            self._in_flight -= len(take)
        self._acknowledge(take, prepared, now, applied, outcome, started)

    def _acknowledge(
        self,
        take: list[Received],
        prepared: batch.Prepared,
        now: float,
        applied: store.Applied,
        outcome: Ack,
        started: float,
    ) -> None:
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.acks.inc(self.client.ack([(mid, conn) for _, _, mid, conn in take]))
        if outcome == "at_risk":
            self.metrics.at_risk.inc(len(take))
        m = self.metrics.messages
        m.labels("stored").inc(applied.stored)
        m.labels("stale").inc(applied.stale)
        m.labels("duplicate").inc(applied.duplicate)
        m.labels("invalid").inc(applied.invalid)
        m.labels("too_old").inc(applied.too_old)
        m.labels("failed").inc(applied.failed)
        self.metrics.future_clamped.inc(applied.future_clamped)
        self.metrics.batch_size.observe(len(take))
        self.progress.stored += len(take)
        self.progress.last_stored = time.monotonic()
        if prepared.newest_ts:
            self.metrics.lag.set(max(0.0, now - prepared.newest_ts))

    # --- lifecycle ------------------------------------------------------------------------------

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
        connect = asyncio.create_task(self._connect(), name="mqtt")
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

    async def _writable_gauge(self) -> None:
        """Follow whether a primary is resolved; subscribe once one has been. With both regions'
        Redis configured that is at start; a worker that knows only its own Redis (no peers) joins
        only once that Redis is primary, so a standby-only worker never takes a share it cannot
        write."""
        while True:
            writable = self.primary.choice.endpoint is not None
            self.metrics.writable.set(1 if writable else 0)
            if writable and not self._want_subscription:
                self._want_subscription = True
                if self._connected:
                    self._subscribe()
            await asyncio.sleep(0.1 if not self._want_subscription else 0.25)

    async def close(self, tasks: list["asyncio.Task[Any]"], stopped: "asyncio.Task[Any]") -> None:
        """Stop taking messages, finish the batch being written, disconnect. Messages still pending
        are unacknowledged and come back on the next connection of this client id."""
        self._stopping = True
        self._arrived.set()  # an idle flush loop ends now, not after the 10 s below
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
        if self._connected:
            await self.client.disconnect()
        await self.primary.aclose()
