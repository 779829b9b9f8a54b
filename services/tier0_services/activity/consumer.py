"""The activity consumer: `webapp_active_users` (RabbitMQ) into the current primary Redis,
acknowledged after the write reached the standby.

- Competing consumers: the consumers of both regions take messages from the one queue, and each
  writes to the pair's current primary (`tier0_services.primary`), so user activity follows the
  active region and no standby consumer holds anything back.
- Manual acknowledgement after the Redis write (and, with `replicated_ack`, after `WAIT` saw it on
  a replica, or per the at-risk policy of services/README.md), with a prefetch window: a consumer
  killed at any point leaves its unacknowledged messages in the queue for the next one (Redis
  dedupes them).
- Poison messages (not JSON, or not a valid `UserActivityMessage`) and messages older than the
  timestamp rule's max age are rejected without requeue; the queue's dead-letter exchange routes
  them to `webapp_active_users.dead`. A message dated in the future is applied with its receive
  time (`timestamps.clamp_or_reject`), so it cannot make every later message look stale.
- No primary, READONLY, NOREPLICAS or Redis down: the message in hand is kept (unacknowledged,
  counted as `requeued` per attempt) and the write retried with backoff, while pika keeps the
  connection alive.
- Broker down or restarted: reconnect with backoff and redeclare the topology.

pika's BlockingConnection fits: one message every few seconds, no concurrency needed.
"""

import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pika
import pika.exceptions
import redis
from pydantic import ValidationError
from redis.exceptions import RedisError

from tier0_contract import liveness, models, timestamps, topics
from tier0_services import heartbeat, primary, rediserrors
from tier0_services.activity.metrics import ActivityMetrics
from tier0_services.activity.settings import Settings
from tier0_services.activity.store import ActivityStore

log = logging.getLogger("tier0.activity")

Sleep = Callable[[float], None]
Ack = Literal["replicated", "at_risk", "unchecked"]
REFUSED_ATTEMPTS = 3
"""Writes of one message refused for a non-transient reason (`rediserrors.is_transient`) before
it is dead-lettered (`failed`) instead of retried forever."""


class Refused(Exception):
    """Redis refused a message REFUSED_ATTEMPTS times for a reason retrying does not cure."""


def declare(channel: "pika.adapters.blocking_connection.BlockingChannel") -> int:
    """Declare the dead-letter exchange and queue and the activity queue (idempotent); returns the
    number of messages ready in the activity queue."""
    channel.exchange_declare(topics.ACTIVITY_DLX, exchange_type="fanout", durable=True)
    channel.queue_declare(
        topics.ACTIVITY_DEAD_LETTER_QUEUE, durable=True, arguments=topics.dead_letter_queue_arguments()
    )
    channel.queue_bind(topics.ACTIVITY_DEAD_LETTER_QUEUE, topics.ACTIVITY_DLX)
    ok = channel.queue_declare(topics.ACTIVITY_QUEUE, durable=True, arguments=topics.activity_queue_arguments())
    return int(ok.method.message_count)


def amqp_parameters(
    url: str, username: str | None, password: str | None, ca_file: Path | None = None
) -> pika.URLParameters:
    """Connection parameters from a URL without credentials plus the user and the password read from
    its file (a password in the URL still works, for a hand-run consumer). `amqps://` with
    `ca_file`: TLS verified against that CA."""
    params = pika.URLParameters(url)
    if username:
        params.credentials = pika.PlainCredentials(username, password or "")
    if url.startswith("amqps://") and ca_file:
        context = ssl.create_default_context(cafile=str(ca_file))
        params.ssl_options = pika.SSLOptions(context, params.host)
    params.heartbeat = 30
    params.blocked_connection_timeout = 60
    return params


def _is_noreplicas(exc: BaseException) -> bool:
    return isinstance(exc, redis.exceptions.ResponseError) and "NOREPLICAS" in str(exc)


class ActivityConsumer:
    def __init__(self, config: Settings, metrics: ActivityMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.primary = primary.SyncPrimary(
            config.redis_urls,
            interval=config.resolve_interval,
            write_timeout=config.replica_ack_timeout + 1.0,
            auth=config.redis_auth(),
        )
        self._amqp = amqp_parameters(
            config.amqp_url, config.amqp_username, config.amqp_password(), config.amqp_tls_ca_file
        )
        self.stores = [ActivityStore(c) for c in self.primary.clients]
        self.progress = heartbeat.Progress("activity", config.worker_id, config.region)
        self.liveness = liveness.LoopClock()
        """Stamped by the consume loop and the write retries between their blocking calls (`/livez`)."""
        self.stopping = False
        self._connected_once = False
        self._next_beat = 0.0

    def stop(self) -> None:
        self.stopping = True

    def run(self) -> None:
        """Consume until stop(); reconnect on every broker failure."""
        delay = 0.5
        while not self.stopping:
            try:
                self._consume()
                delay = 0.5
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.metrics.connected.set(0)
                self.progress.connected = False
                if self.stopping:
                    break
                self.beat()
                log.warning("broker connection lost (%r); reconnecting in %.1f s", exc, delay)
                self._pause(delay)
                delay = min(delay * 2, 10)

    def _pause(self, seconds: float) -> None:
        """Sleep between reconnects in short steps: the loop stays live (`/livez`) and a stop is prompt."""
        until = time.monotonic() + seconds
        while not self.stopping and (left := until - time.monotonic()) > 0:
            self.liveness.tick()
            time.sleep(min(left, 0.5))
        self.liveness.tick()

    def _consume(self) -> None:
        connection = pika.BlockingConnection(self._amqp)
        try:
            channel = connection.channel()
            declare(channel)
            channel.basic_qos(prefetch_count=self.config.prefetch)
            self.metrics.connected.set(1)
            self.progress.connected = True
            if self._connected_once:
                self.metrics.reconnects.inc()
            self._connected_once = True
            log.info("consuming %s (prefetch %d)", topics.ACTIVITY_QUEUE, self.config.prefetch)
            next_check = 0.0
            for method, _props, body in channel.consume(topics.ACTIVITY_QUEUE, inactivity_timeout=0.5):
                if self.stopping:
                    break
                self.liveness.tick()
                now = time.monotonic()
                if now >= next_check:
                    self._queue_depth(channel)
                    next_check = now + self.config.queue_check_interval
                if now >= self._next_beat:
                    self.beat()
                if method is None:  # inactivity tick
                    continue
                self._handle(channel, connection.sleep, method.delivery_tag, body)
            if channel.is_open:
                channel.cancel()  # unacknowledged prefetched messages go back to the queue
        finally:
            self.metrics.connected.set(0)
            self.progress.connected = False
            if connection.is_open:
                connection.close()

    def _queue_depth(self, channel: "pika.adapters.blocking_connection.BlockingChannel") -> None:
        ok = channel.queue_declare(topics.ACTIVITY_QUEUE, passive=True)
        self.metrics.queue_depth.set(ok.method.message_count)

    def beat(self) -> bool:
        """Write this consumer's heartbeat into the current primary (False: none, or refused)."""
        self._next_beat = time.monotonic() + self.config.heartbeat_interval
        choice = self.primary.current()
        if choice.endpoint is None:
            return False
        script_keys, argv = self.progress.args(time.monotonic())
        try:
            self.primary.clients[choice.endpoint].eval(heartbeat.LUA, len(script_keys), *script_keys, *argv)
        except (RedisError, OSError) as exc:
            log.debug("heartbeat not written: %s", exc)
            return False
        return True

    def _reject(self, channel: "pika.adapters.blocking_connection.BlockingChannel", tag: int, result: str) -> None:
        channel.basic_reject(tag, requeue=False)
        self.metrics.messages.labels(result).inc()
        self.progress.stored += 1
        self.progress.last_stored = time.monotonic()
        choice = self.primary.current()
        if choice.endpoint is not None:
            try:
                self.stores[choice.endpoint].count(result)
            except RedisError:
                pass  # the Prometheus counter has it; the Redis counter is best effort

    def _handle(
        self, channel: "pika.adapters.blocking_connection.BlockingChannel", sleep: Sleep, tag: int, body: bytes
    ) -> None:
        self.progress.received += 1
        try:
            msg = models.parse_user_activity(body)
        except ValidationError as exc:
            log.warning("poison message dead-lettered: %s", exc.errors(include_url=False)[:2])
            self._reject(channel, tag, "invalid")
            return
        cfg = self.config
        verdict = timestamps.clamp_or_reject(
            msg.timestamp_utc.timestamp(), time.time(), skew=cfg.timestamp_skew, max_age=cfg.timestamp_max_age
        )
        if verdict.rejected:
            log.warning("message %s dead-lettered: %s", msg.message_id, verdict.reason(cfg.timestamp_max_age))
            self._reject(channel, tag, "too_old")
            return
        started = time.perf_counter()
        self.progress.pending = 1
        try:
            result, ack = self._write(msg, body, verdict, sleep)
        except Refused as exc:
            log.error("message %s dead-lettered: redis refused it %d times (%s)", msg.message_id, REFUSED_ATTEMPTS, exc)
            self.progress.pending = 0
            self._reject(channel, tag, "failed")
            return
        self.metrics.apply_seconds.observe(time.perf_counter() - started)
        channel.basic_ack(tag)
        self.progress.pending = 0
        self.progress.stored += 1
        self.progress.last_stored = time.monotonic()
        self.metrics.messages.labels(result).inc()
        if verdict.outcome == "future_clamped":
            self.metrics.future_clamped.inc()
        if ack == "at_risk":
            self.metrics.at_risk.inc()

    def _wait_replicas(self, obs: primary.Observation | None) -> int:
        if not self.config.replicated_ack:
            return 0
        if obs is not None and obs.connected_replicas == 0 and obs.min_replicas_to_write == 0:
            return 0
        return 1

    def _write(
        self, msg: models.UserActivityMessage, body: bytes, verdict: timestamps.Verdict, sleep: Sleep
    ) -> tuple[str, Ack]:
        """Write until the message may be acknowledged. `sleep` is the connection's, so heartbeats
        go on meanwhile."""
        delay = 0.1
        refused = 0
        first: str | None = None
        timeout_ms = int(self.config.replica_ack_timeout * 1000)
        while True:
            self.liveness.tick()  # retrying for as long as Redis needs is work, not a wedge
            choice = self.primary.current()
            if choice.endpoint is not None:
                i = choice.endpoint
                try:
                    result, replicas = self.stores[i].apply(
                        msg,
                        body,
                        ts=verdict.ts,
                        future_clamped=verdict.outcome == "future_clamped" and first is None,
                        wait_replicas=self._wait_replicas(choice.observation),
                        wait_timeout_ms=timeout_ms,
                    )
                except redis.exceptions.ReadOnlyError:
                    log.warning("redis answered READONLY: re-resolving the primary (holding %s)", msg.message_id)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    log.warning("redis write failed (%s); retrying in %.1f s", rediserrors.reason(exc), delay)
                except RedisError as exc:
                    if _is_noreplicas(exc):
                        log.warning("primary refuses writes (NOREPLICAS): holding %s", msg.message_id)
                    elif rediserrors.is_transient(exc):
                        log.error(
                            "redis write failed (%s: %s); retrying in %.1f s",
                            type(exc).__name__,
                            rediserrors.reason(exc),
                            delay,
                        )
                    else:
                        refused += 1
                        if refused >= REFUSED_ATTEMPTS:
                            raise Refused(rediserrors.reason(exc)) from None
                        log.error("redis refused %s (%s): attempt %d", msg.message_id, rediserrors.reason(exc), refused)
                else:
                    # A re-write after a primary change finds our own first write as a duplicate.
                    first = result if first is None or result != "duplicate" else first
                    if not self.config.replicated_ack:
                        return first, "unchecked"
                    if replicas:
                        return first, "replicated"
                    outcome = self._hold(i, sleep)
                    if outcome is not None:
                        return first, outcome
                self.primary.poke()
                pause, delay = delay, min(delay * 2, 1.0)
            else:
                # A transition: the promoted primary is looked for every HOLDING_INTERVAL, not later.
                log.warning("no primary (%s): holding message %s", choice.reason, msg.message_id)
                pause = primary.HOLDING_INTERVAL
            self.metrics.messages.labels("requeued").inc()
            if self.stopping:
                raise pika.exceptions.ConnectionClosedByClient(0, "stopping with a message unwritten")
            sleep(pause)

    def _hold(self, i: int, sleep: Sleep) -> Ack | None:
        """A write no replica confirmed: ack at risk if the primary's policy accepts writes without
        a replica, else retry WAIT. None: the primary moved or failed, write again."""
        delay = 0.05
        timeout_ms = int(self.config.replica_ack_timeout * 1000)
        while not self.stopping:
            self.liveness.tick()
            choice = self.primary.current()
            if choice.endpoint != i or choice.observation is None:
                return None
            if choice.observation.min_replicas_to_write == 0:
                return "at_risk"
            self.metrics.replication_holds.inc()
            sleep(delay)
            delay = min(delay * 2, 1.0)
            script_keys, argv = self.progress.args(time.monotonic())
            try:
                pipe = self.primary.clients[i].pipeline(transaction=False)
                pipe.eval(heartbeat.LUA, len(script_keys), *script_keys, *argv)
                pipe.wait(1, timeout_ms)
                _, replicas = pipe.execute()
            except (RedisError, OSError) as exc:
                if _is_noreplicas(exc):  # same primary, still without a replica: keep holding
                    continue
                log.warning("holding a message: %s", exc)
                self.primary.poke()
                return None
            if int(replicas) >= 1:
                return "replicated"
        return None
