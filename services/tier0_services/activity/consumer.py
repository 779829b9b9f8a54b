"""The activity consumer: `webapp_active_users` (RabbitMQ) into Redis, acknowledged after the write.

- Manual acknowledgement after the Redis write, with a prefetch window: a consumer killed at any
  point leaves its unacknowledged messages in the queue for the next one (Redis dedupes them).
- Poison messages (not JSON, or not a valid `UserActivityMessage`) are rejected without requeue;
  the queue's dead-letter exchange routes them to `webapp_active_users.dead` for inspection.
- Redis down or a replica: the message in hand is kept (unacknowledged, counted as `requeued`
  per attempt) and the write retried with backoff, while pika keeps the connection alive.
- Broker down or restarted: reconnect with backoff and redeclare the topology.

pika's BlockingConnection fits: one message every few seconds, no concurrency needed.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pika
import pika.exceptions
import redis
from pydantic import ValidationError
from redis.exceptions import RedisError

from tier0_contract import models, topics
from tier0_services.activity.metrics import ActivityMetrics
from tier0_services.activity.store import ActivityStore

log = logging.getLogger("tier0.activity")


@dataclass(frozen=True)
class ConsumerConfig:
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    prefetch: int = 50
    queue_check_interval: float = 5.0


def declare(channel: "pika.adapters.blocking_connection.BlockingChannel") -> int:
    """Declare the dead-letter exchange and queue and the activity queue (idempotent); returns the
    number of messages ready in the activity queue."""
    channel.exchange_declare(topics.ACTIVITY_DLX, exchange_type="fanout", durable=True)
    channel.queue_declare(topics.ACTIVITY_DEAD_LETTER_QUEUE, durable=True)
    channel.queue_bind(topics.ACTIVITY_DEAD_LETTER_QUEUE, topics.ACTIVITY_DLX)
    ok = channel.queue_declare(topics.ACTIVITY_QUEUE, durable=True, arguments=topics.activity_queue_arguments())
    return int(ok.method.message_count)


class ActivityConsumer:
    def __init__(self, config: ConsumerConfig, store: ActivityStore, metrics: ActivityMetrics) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.stopping = False
        self._connected_once = False

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
                if self.stopping:
                    break
                log.warning("broker connection lost (%r); reconnecting in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10)

    def _consume(self) -> None:
        params = pika.URLParameters(self.config.amqp_url)
        params.heartbeat = 30
        params.blocked_connection_timeout = 60
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            declare(channel)
            channel.basic_qos(prefetch_count=self.config.prefetch)
            self.metrics.connected.set(1)
            if self._connected_once:
                self.metrics.reconnects.inc()
            self._connected_once = True
            log.info("consuming %s (prefetch %d)", topics.ACTIVITY_QUEUE, self.config.prefetch)
            next_check = 0.0
            for method, _props, body in channel.consume(topics.ACTIVITY_QUEUE, inactivity_timeout=1.0):
                if self.stopping:
                    break
                now = time.monotonic()
                if now >= next_check:
                    self._queue_depth(channel)
                    next_check = now + self.config.queue_check_interval
                if method is None:  # inactivity tick
                    continue
                self._handle(channel, connection.sleep, method.delivery_tag, body)
            if channel.is_open:
                channel.cancel()  # unacknowledged prefetched messages go back to the queue
        finally:
            self.metrics.connected.set(0)
            if connection.is_open:
                connection.close()

    def _queue_depth(self, channel: "pika.adapters.blocking_connection.BlockingChannel") -> None:
        ok = channel.queue_declare(topics.ACTIVITY_QUEUE, passive=True)
        self.metrics.queue_depth.set(ok.method.message_count)

    def _handle(
        self,
        channel: "pika.adapters.blocking_connection.BlockingChannel",
        sleep: Callable[[float], None],
        tag: int,
        body: bytes,
    ) -> None:
        try:
            msg = models.parse_user_activity(body)
        except ValidationError as exc:
            log.warning("poison message dead-lettered: %s", exc.errors(include_url=False)[:2])
            channel.basic_reject(tag, requeue=False)
            self.metrics.messages.labels("invalid").inc()
            try:
                self.store.count_invalid()
            except RedisError:
                pass  # the Prometheus counter has it; the Redis counter is best effort
            return
        started = time.perf_counter()
        result = self._write(msg, body, sleep)
        self.metrics.apply_seconds.observe(time.perf_counter() - started)
        channel.basic_ack(tag)
        self.metrics.messages.labels(result).inc()

    def _write(self, msg: models.UserActivityMessage, body: bytes, sleep: Callable[[float], None]) -> str:
        """Write until it succeeds. `sleep` is the connection's, so heartbeats go on meanwhile."""
        delay = 0.1
        while True:
            try:
                return self.store.apply(msg, body)
            except redis.exceptions.ReadOnlyError:
                log.warning("redis is a replica: holding message %s until it is the primary", msg.message_id)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("redis write failed (%s); retrying in %.1f s", exc, delay)
            except RedisError as exc:
                log.error("redis write failed (%r); retrying in %.1f s", exc, delay)
            self.metrics.messages.labels("requeued").inc()
            if self.stopping:
                raise pika.exceptions.ConnectionClosedByClient(0, "stopping with a message unwritten")
            sleep(delay)
            delay = min(delay * 2, 5.0)
