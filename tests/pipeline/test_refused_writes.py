"""Writes Redis refuses for good are dead-lettered and counted, never retried forever (issue 17,
"queues bounded"), while refusals that pass (NOREPLICAS, a replica: tests/pipeline/
test_ingest_pair.py, test_activity_pipeline.py) are still held.

What is tested, over real mosquitto, rabbitmq-server and redis-server: a batch the ingest store
refuses (a key of the wrong type) is dead-lettered message by message, counted as `failed` and
acknowledged, and the worker stores the next batch once the key is repaired; an activity message
Redis refuses goes to the dead-letter queue, counted as `failed`, and the next one is stored.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis

from tests.pipeline.test_activity_pipeline import connect, consumer_thread
from tests.pipeline.test_activity_pipeline import stats as activity_stats
from tests.pipeline.test_ingest import client, messages, publish, stats, wait_for
from tier0_contract import keys, topics
from tier0_dev import programs
from tier0_services.activity.consumer import declare
from tier0_services.ingest.worker import IngestWorker
from tier0_simulators import fleet
from tier0_simulators.users import PERSISTENT, Population

pytestmark = pytest.mark.integration

pytest_plugins = ["tests.pipeline.test_ingest"]


async def test_a_batch_the_store_refuses_is_dead_lettered_not_retried_forever(
    mosquitto_port: int,
    redis_port: int,
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    r = client(redis_port)
    await r.set(keys.DEVICES_LATEST, "not a hash")  # every batch's script now fails: WRONGTYPE
    worker = await start_worker(mosquitto_port, redis_port)
    rng, states = random.Random(5), dict[int, int]()
    await publish(mosquitto_port, [*messages(range(40), 1, rng, states), (fleet.device(99).topic, b"{")], local_secrets)
    await wait_for(lambda: _counted(r, "failed", 40), timeout=30)
    assert await stats(r) == {"failed": 40, "invalid": 1}
    dead = [orjson.loads(d) for d in await r.lrange(keys.DEVICES_DEAD_LETTER, 0, -1)]
    failed = [d for d in dead if d["error"].startswith("store: WRONGTYPE")]
    assert len(failed) == 40 and {d["topic"] for d in failed} == {fleet.device(i).topic for i in range(40)}
    assert all(orjson.loads(d["payload"])["device_id"] in d["topic"] for d in failed)
    await wait_for(lambda: _acked(worker, 41), timeout=10)  # acknowledged: the broker keeps nothing
    assert worker.metrics.messages.labels("failed")._value.get() == 40
    assert worker.metrics.write_errors.labels("refused")._value.get() >= 3

    await r.delete(keys.DEVICES_LATEST)  # repaired: the next messages are stored as ever
    await publish(mosquitto_port, messages(range(40), 2, rng, states), local_secrets)
    await wait_for(lambda: _counted(r, "stored", 40), timeout=30)
    await r.aclose()


def test_an_activity_message_redis_refuses_goes_to_the_dead_letter_queue(
    rabbitmq_port: int, redis_port: int, local_secrets: programs.Secrets
) -> None:
    store = redis.Redis(port=redis_port)
    store.set(keys.USERS_ACTIVITY_HISTORY, "not a list")  # the script's first write fails: WRONGTYPE
    conn = connect(rabbitmq_port, local_secrets)
    ch = conn.channel()
    for q in (topics.ACTIVITY_QUEUE, topics.ACTIVITY_DEAD_LETTER_QUEUE):
        ch.queue_delete(q)
    declare(ch)
    ch.confirm_delivery()
    pop = Population(5, 10, seed=4)

    def send() -> str:
        msg = pop.tick(datetime.now(UTC))
        ch.basic_publish("", topics.ACTIVITY_QUEUE, msg.model_dump_json().encode(), PERSISTENT, mandatory=True)
        return msg.message_id

    consumer, thread = consumer_thread(rabbitmq_port, local_secrets, store)
    try:
        send()
        wait_for_sync(lambda: activity_stats(store).get("failed", 0) == 1)
        assert consumer.metrics.messages.labels("failed")._value.get() == 1
        dead = ch.queue_declare(topics.ACTIVITY_DEAD_LETTER_QUEUE, passive=True).method.message_count
        assert dead == 1
        store.delete(keys.USERS_ACTIVITY_HISTORY)
        stored = send()
        wait_for_sync(lambda: activity_stats(store).get("stored", 0) == 1)
        assert store.exists(keys.activity_seen(stored))
    finally:
        consumer.stop()
        thread.join(10)
        conn.close()
        store.close()


def wait_for_sync(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _counted(r: Any, field: str, n: int) -> bool:
    return (await stats(r)).get(field, 0) >= n


async def _acked(worker: IngestWorker, n: int) -> bool:
    await asyncio.sleep(0)
    return bool(worker.metrics.acks._value.get() >= n)
