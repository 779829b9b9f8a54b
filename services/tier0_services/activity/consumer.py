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

import pika
import pika.exceptions
from pydantic import ValidationError
from redis.exceptions import RedisError

from tier0_contract import liveness, models, timestamps, topics
from tier0_services import ackpolicy, heartbeat, primary, rediserrors
from tier0_services.activity.metrics import ActivityMetrics
from tier0_services.activity.settings import Settings
from tier0_services.activity.store import ActivityStore

log = logging.getLogger("tier0.activity")

Sleep = Callable[[float], None]
Ack = ackpolicy.Ack
WRITE_RETRY_FIRST_S = 0.1
"""First pause before writing a message again after an error (then `ackpolicy.next_pause`)."""


class Refused(Exception):
    """Redis refused a message `ackpolicy.REFUSED_ATTEMPTS` times for a reason retrying does not
    cure: it is dead-lettered (`failed`) instead of retried forever."""


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
            log.error(
                "message %s dead-lettered: redis refused it %d times (%s)",
                msg.message_id,
                ackpolicy.REFUSED_ATTEMPTS,
                exc,
            )
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

    def _write(
        self, msg: models.UserActivityMessage, body: bytes, verdict: timestamps.Verdict, sleep: Sleep
    ) -> tuple[str, Ack]:
        """Write until the message may be acknowledged (`ackpolicy`). `sleep` is the connection's,
        so heartbeats go on meanwhile."""
        delay = WRITE_RETRY_FIRST_S
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
                        wait_replicas=ackpolicy.wait_replicas(self.config.replicated_ack, choice.observation),
                        wait_timeout_ms=timeout_ms,
                    )
                except RedisError as exc:
                    step = ackpolicy.after_write_error(exc, refused)
                    refused = step.refused
                    if step.action is ackpolicy.Action.DEAD_LETTER:
                        raise Refused(rediserrors.reason(exc)) from None
                    self._log_write_error(msg, exc, step, delay)
                else:
                    # A re-write after a primary change finds our own first write as a duplicate.
                    first = result if first is None or result != "duplicate" else first
                    step = ackpolicy.after_write(self.config.replicated_ack, replicas)
                    if step.action is ackpolicy.Action.ACKNOWLEDGE and step.ack is not None:
                        return first, step.ack
                    outcome = self._hold(i, sleep)
                    if outcome is not None:
                        return first, outcome
                self.primary.poke()
                pause, delay = delay, ackpolicy.next_pause(delay)
            else:
                # A transition: the promoted primary is looked for every HOLDING_INTERVAL, not later.
                log.warning("no primary (%s): holding message %s", choice.reason, msg.message_id)
                pause = primary.HOLDING_INTERVAL
            self.metrics.messages.labels("requeued").inc()
            if self.stopping:
                raise pika.exceptions.ConnectionClosedByClient(0, "stopping with a message unwritten")
            sleep(pause)

    @staticmethod
    def _log_write_error(msg: models.UserActivityMessage, exc: RedisError, step: ackpolicy.Step, delay: float) -> None:
        why = rediserrors.reason(exc)
        if step.error == "readonly":
            log.warning("redis answered READONLY: re-resolving the primary (holding %s)", msg.message_id)
        elif step.error == "connection":
            log.warning("redis write failed (%s); retrying in %.1f s", why, delay)
        elif step.error == "noreplicas":
            log.warning("primary refuses writes (NOREPLICAS): holding %s", msg.message_id)
        elif step.error == "other":
            log.error("redis write failed (%s: %s); retrying in %.1f s", type(exc).__name__, why, delay)
        else:
            log.error("redis refused %s (%s): attempt %d", msg.message_id, why, step.refused)

    def _hold(self, i: int, sleep: Sleep) -> Ack | None:
        """A write no replica confirmed, held (`ackpolicy.while_holding`): ask again with a backoff
        until a replica confirms, the policy accepts it at risk, or the primary moves. None: write
        again."""
        pause = ackpolicy.FIRST_PAUSE_S
        timeout_ms = int(self.config.replica_ack_timeout * 1000)
        while not self.stopping:
            self.liveness.tick()
            step = ackpolicy.while_holding(i, self.primary.current())
            if step.action is not ackpolicy.Action.HOLD:
                return step.ack
            self.metrics.replication_holds.inc()
            sleep(pause)
            pause = ackpolicy.next_pause(pause)
            script_keys, argv = self.progress.args(time.monotonic())
            result: int | BaseException
            try:
                pipe = self.primary.clients[i].pipeline(transaction=False)
                pipe.eval(heartbeat.LUA, len(script_keys), *script_keys, *argv)
                pipe.wait(1, timeout_ms)
                result = int(pipe.execute()[1])
            except (RedisError, OSError) as exc:
                result = exc
            step = ackpolicy.after_confirm(result)
            if step.action is ackpolicy.Action.WRITE_AGAIN:
                log.warning("holding a message: %s", result)
                self.primary.poke()
                return None
            if step.action is ackpolicy.Action.ACKNOWLEDGE:
                return step.ack
        return None
