"""User simulator -> real RabbitMQ -> activity consumer -> real Redis.

Checks: every confirmed message applied exactly once; poison messages counted and dead-lettered
while the consumer keeps going; a consumer SIGKILLed mid-stream loses nothing; the consumer
reconnects after a restart of its own broker; a Redis replica holds messages unacknowledged.
"""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import pytest
import redis.exceptions
from redis import Redis

from tier0_contract import keys, topics
from tier0_dev import programs
from tier0_dev.procs import free_port
from tier0_services.access import rabbitmq as rabbitmq_access
from tier0_services.activity.consumer import ActivityConsumer, amqp_parameters, declare
from tier0_services.activity.metrics import ActivityMetrics
from tier0_services.activity.settings import Settings
from tier0_simulators.users import PERSISTENT, Population

pytestmark = pytest.mark.integration

Channel = Any  # pika is untyped (mypy: ignore_missing_imports)


def connect(port: int, secrets: programs.Secrets) -> pika.BlockingConnection:
    """A connection as the application user (tier0-app) to the activity vhost."""
    params = amqp_parameters(programs.amqp_url(port), rabbitmq_access.APP, secrets.amqp_password())
    return pika.BlockingConnection(params)


@pytest.fixture
def queue(rabbitmq_port: int, local_secrets: programs.Secrets) -> Iterator[Channel]:
    """A clean queue set on the session broker, with a confirming channel for publishing."""
    conn = connect(rabbitmq_port, local_secrets)
    ch = conn.channel()
    for q in (topics.ACTIVITY_QUEUE, topics.ACTIVITY_DEAD_LETTER_QUEUE):
        ch.queue_delete(q)
    declare(ch)
    ch.confirm_delivery()
    yield ch
    conn.close()


START = datetime.now(UTC) - timedelta(hours=1)  # within the timestamp rule's max age


def publish(ch: Channel, n: int, seed: int = 3, start: datetime = START, nacks_allowed: int = 0) -> list[str]:
    """Publish `n` confirmed messages. With `nacks_allowed`, a message the broker nacks is sent again
    (as the user simulator does): a node just restarted nacks while it is still recovering its queues,
    and the consumer applies a resent message once (by its id)."""
    pop = Population(20, 40, seed=seed)
    ids = []
    for i in range(n):
        msg = pop.tick(start + timedelta(seconds=i))
        body = msg.model_dump_json().encode()
        while True:
            try:
                ch.basic_publish("", topics.ACTIVITY_QUEUE, body, PERSISTENT, mandatory=True)
                break
            except pika.exceptions.NackError:
                if nacks_allowed == 0:
                    raise
                nacks_allowed -= 1
                time.sleep(0.2)
        ids.append(msg.message_id)
    return ids


def redis_url(redis: Redis) -> str:
    return f"redis://127.0.0.1:{redis.connection_pool.connection_kwargs['port']}/0"


def stats(redis: Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis.hgetall(keys.ACTIVITY_STATS).items()}  # type: ignore[union-attr]


def applied(redis: Redis) -> int:
    s = stats(redis)
    return s.get("stored", 0) + s.get("stale", 0)


def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def consumer_thread(
    port: int, secrets: programs.Secrets, redis: Redis, *peers: Redis, **cfg: Any
) -> tuple[ActivityConsumer, threading.Thread]:
    config = Settings(
        amqp_url=programs.amqp_url(port),
        amqp_username=rabbitmq_access.APP,
        amqp_password_file=secrets.dir("rabbitmq") / rabbitmq_access.APP_PASSWORD_KEY,
        redis_url=redis_url(redis),
        peer_redis_urls=[redis_url(p) for p in peers],
        prefetch=10,
        resolve_interval=0.2,
        **cfg,
    )
    consumer = ActivityConsumer(config, ActivityMetrics())
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    return consumer, thread


def test_every_message_once_and_poison_dead_lettered(
    queue: Channel, rabbitmq_port: int, redis_port: int, local_secrets: programs.Secrets
) -> None:
    redis = Redis(port=redis_port)
    ids = publish(queue, 30)
    queue.basic_publish("", topics.ACTIVITY_QUEUE, b"{not json", PERSISTENT)
    queue.basic_publish("", topics.ACTIVITY_QUEUE, b'{"message_id": "MSG-1"}', PERSISTENT)
    publish(queue, 5, seed=99)  # timestamps older than the newest above: recorded, not made latest
    consumer, thread = consumer_thread(rabbitmq_port, local_secrets, redis)
    try:
        wait_for(lambda: sum(stats(redis).values()) >= 37)
    finally:
        consumer.stop()
        thread.join(10)
    assert stats(redis) == {"stored": 30, "stale": 5, "invalid": 2}
    assert all(redis.exists(keys.activity_seen(i)) for i in ids)
    assert redis.llen(keys.USERS_ACTIVITY_HISTORY) == 35
    dead = queue.queue_declare(topics.ACTIVITY_DEAD_LETTER_QUEUE, passive=True).method.message_count
    assert dead == 2
    active = redis.get(keys.ACTIVE_USERS)
    assert isinstance(active, bytes) and int(active) == redis.hlen(keys.USERS_ACTIVE)


def test_consumer_killed_mid_stream_loses_nothing(
    queue: Channel, rabbitmq_port: int, redis_port: int, local_secrets: programs.Secrets
) -> None:
    redis = Redis(port=redis_port)
    ids = publish(queue, 300)
    env = {
        **os.environ,
        **local_secrets.amqp_env(rabbitmq_port),
        "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TIER0_METRICS_PORT": "0",
        "TIER0_PREFETCH": "20",
    }
    argv = [sys.executable, "-m", "tier0_services.activity"]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: stats(redis).get("stored", 0) >= 20)
    finally:
        first.kill()  # SIGKILL: unacknowledged deliveries go back to the queue
        first.wait()
    assert stats(redis)["stored"] < 300
    second = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: stats(redis).get("stored", 0) >= 300, timeout=60)
        time.sleep(0.5)
    finally:
        second.terminate()
        second.wait(10)
    assert stats(redis)["stored"] == 300  # each applied exactly once; redeliveries counted as duplicates
    assert all(redis.exists(keys.activity_seen(i)) for i in ids)


def test_replica_holds_messages_until_promoted(
    queue: Channel,
    rabbitmq_port: int,
    redis_factory: Callable[..., tuple[object, int]],
    local_secrets: programs.Secrets,
) -> None:
    _, primary_port = redis_factory()
    _, own_port = redis_factory("--replicaof", "127.0.0.1", "0")
    own = Redis(port=own_port)
    own.replicaof("127.0.0.1", primary_port)
    wait_for(lambda: own.info("replication").get("master_link_status") == "up")  # type: ignore[union-attr]
    publish(queue, 5)
    consumer, thread = consumer_thread(rabbitmq_port, local_secrets, own)
    try:
        time.sleep(1.5)
        assert stats(own) == {} and stats(Redis(port=primary_port)) == {}
        own.replicaof("NO", "ONE")
        wait_for(lambda: stats(own).get("stored", 0) == 5)
    finally:
        consumer.stop()
        thread.join(10)


def test_consumer_reconnects_after_broker_restart(
    tmp_path: Path, redis_port: int, local_secrets: programs.Secrets
) -> None:
    ports = programs.RabbitPorts(amqp=free_port(), dist=free_port())
    broker = programs.rabbitmq(ports, tmp_path / "rmq", local_secrets)
    redis = Redis(port=redis_port)
    consumer, thread = consumer_thread(ports.amqp, local_secrets, redis)
    try:
        conn = connect(ports.amqp, local_secrets)
        ch = conn.channel()
        declare(ch)
        ch.confirm_delivery()
        publish(ch, 5, seed=1)
        wait_for(lambda: stats(redis).get("stored", 0) == 5)
        conn.close()
        broker.stop()
        broker = programs.rabbitmq(ports, tmp_path / "rmq", local_secrets)
        wait_for(lambda: consumer.metrics.reconnects._value.get() >= 1, timeout=60)
        conn = connect(ports.amqp, local_secrets)
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, 5, seed=2, start=START + timedelta(minutes=1), nacks_allowed=50)
        wait_for(lambda: stats(redis).get("stored", 0) == 10, timeout=60)
        conn.close()
    finally:
        consumer.stop()
        thread.join(10)
        broker.stop()


def test_a_far_future_message_does_not_freeze_activity(
    queue: Channel, rabbitmq_port: int, redis_port: int, local_secrets: programs.Secrets
) -> None:
    """Reproduction of issue 9: one valid message dated a year ahead made every later one `stale`."""
    redis = Redis(port=redis_port)
    pop = Population(20, 40, seed=8)

    def send(msg: Any) -> None:
        queue.basic_publish("", topics.ACTIVITY_QUEUE, msg.model_dump_json().encode(), PERSISTENT, mandatory=True)

    consumer, thread = consumer_thread(rabbitmq_port, local_secrets, redis)
    try:
        send(pop.tick(datetime.now(UTC) + timedelta(days=365)))
        send(pop.tick(datetime.now(UTC) - timedelta(days=3)))  # beyond the max age: dead-lettered as too_old
        wait_for(lambda: stats(redis).get("stored", 0) == 1)
        later = []
        for _ in range(3):  # dated when sent, after the future one arrived: each is the newest
            time.sleep(0.05)
            later.append(pop.tick(datetime.now(UTC)))
            send(later[-1])
        wait_for(lambda: sum(stats(redis).values()) >= 6)  # 4 applied + future_clamped + too_old
    finally:
        consumer.stop()
        thread.join(10)
    assert stats(redis) == {"stored": 4, "future_clamped": 1, "too_old": 1}
    latest = redis.get(keys.USERS_ACTIVITY_LATEST)
    assert isinstance(latest, bytes) and later[-1].message_id.encode() in latest
    assert consumer.metrics.future_clamped._value.get() == 1
    assert consumer.metrics.messages.labels("too_old")._value.get() == 1
    dead = queue.queue_declare(topics.ACTIVITY_DEAD_LETTER_QUEUE, passive=True).method.message_count
    assert dead == 1


def test_consumers_of_both_regions_follow_the_current_primary(
    queue: Channel, rabbitmq_port: int, redis_factory: Callable[..., tuple[Any, int]], local_secrets: programs.Secrets
) -> None:
    _, p_port = redis_factory()
    r_proc, r_port = redis_factory()
    p, r = Redis(port=p_port), Redis(port=r_port)
    p.set(keys.PAIR_EPOCH, 1)
    r.replicaof("127.0.0.1", p_port)
    wait_for(lambda: r.info("replication").get("master_link_status") == "up")  # type: ignore[union-attr]
    for node in (p, r):  # the pair's write guard (programs.PAIR_WRITE_GUARD): ack only what is on both
        node.config_set("min-replicas-to-write", 1)
        node.config_set("min-replicas-max-lag", 2)
    one, t1 = consumer_thread(rabbitmq_port, local_secrets, p, r, region="region1", replica_ack_timeout=0.2)
    two, t2 = consumer_thread(rabbitmq_port, local_secrets, r, p, region="region2", replica_ack_timeout=0.2)
    try:
        publish(queue, 10, seed=1)
        # Competing consumers may apply two messages out of order: the older one is `stale`.
        wait_for(lambda: applied(p) == 10)
        wait_for(lambda: applied(r) == 10, timeout=5)
        # Switchover: promote the replica, make the old primary follow it, then record the next
        # epoch (a guarded primary accepts writes, the epoch included, once its replica is back).
        r.replicaof("NO", "ONE")
        p.replicaof("127.0.0.1", r_port)
        wait_for(lambda: p.info("replication").get("master_link_status") == "up")  # type: ignore[union-attr]
        wait_for(lambda: _set_epoch(r, 2))
        publish(queue, 10, seed=2, start=START + timedelta(minutes=5))
        wait_for(lambda: applied(r) == 20, timeout=15)
        # Both regions' consumers heartbeat into the primary.
        wait_for(lambda: r.hlen(keys.PIPELINE_HEARTBEATS) == 2)
    finally:
        for c in (one, two):
            c.stop()
        t1.join(10)
        t2.join(10)
    assert set(stats(r)) <= {"stored", "stale"} and applied(r) == 20
    assert one.metrics.at_risk._value.get() + two.metrics.at_risk._value.get() == 0


def _set_epoch(r: Redis, epoch: int) -> bool:
    try:
        return bool(r.set(keys.PAIR_EPOCH, epoch))
    except redis.exceptions.ResponseError:  # NOREPLICAS until the replica has acknowledged
        return False
