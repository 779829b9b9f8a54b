"""Every PUBLISH the broker delivers is stored or dead-lettered, and acknowledged after the write.

Real `mosquitto_pub` clients publish with MQTT 3.1.1 and 5, QoS 0/1/2, with and without PUBLISH
properties (user properties, message expiry, content type, topic alias, correlation data),
retained or not, into a real mosquitto; the worker writes into a real redis-server. Also: more
property-carrying QoS 1 messages than the worker's Receive Maximum keep flowing (they used to fill
the broker's in-flight window and stop ingest for good).
"""

import os
import random
import shutil
import subprocess
from collections.abc import Awaitable, Callable

import orjson
import pytest

from tests.pipeline.test_ingest import BASE_TS, client, stats, wait_for
from tier0_dev import programs
from tier0_services.access import mqtt as mqtt_access
from tier0_services.ingest.worker import IngestWorker
from tier0_simulators import fleet

pytestmark = pytest.mark.integration

pytest_plugins = ["tests.pipeline.test_ingest"]

CASES: list[tuple[str, list[str]]] = [
    ("v5 qos1 user property", ["-V", "mqttv5", "-q", "1", "-D", "publish", "user-property", "k", "v"]),
    (
        "v5 qos1 expiry, content type, format",
        [
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            "60",
            "-D",
            "publish",
            "content-type",
            "application/json",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
        ],
    ),
    ("v5 qos1 topic alias", ["-V", "mqttv5", "-q", "1", "-D", "publish", "topic-alias", "1"]),
    (
        "v5 qos1 correlation, response topic",
        [
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-D",
            "publish",
            "correlation-data",
            "abc",
            "-D",
            "publish",
            "response-topic",
            "r/t",
        ],
    ),
    ("v5 qos1 plain", ["-V", "mqttv5", "-q", "1"]),
    ("v5 qos1 retained", ["-V", "mqttv5", "-q", "1", "-r", "-D", "publish", "user-property", "a", "b"]),
    ("v5 qos2 (delivered at qos1)", ["-V", "mqttv5", "-q", "2", "-D", "publish", "user-property", "k", "v"]),
    ("v5 qos0 user property", ["-V", "mqttv5", "-q", "0", "-D", "publish", "user-property", "k", "v"]),
    ("v311 qos1", ["-V", "mqttv311", "-q", "1"]),
    ("v311 qos1 retained", ["-V", "mqttv311", "-q", "1", "-r"]),
    ("v311 qos0", ["-V", "mqttv311", "-q", "0"]),
]


def mosquitto_pub(port: int, topic: str, lines: list[bytes], args: list[str], secrets: programs.Secrets) -> None:
    """`mosquitto_pub -l` as the gateway user: one message per stdin line, over one connection."""
    binary = shutil.which("mosquitto_pub")
    if binary is None:
        pytest.fail("mosquitto_pub is not installed: apt-get install mosquitto-clients")
    subprocess.run(
        [binary, "-p", str(port), "-t", topic, "-l", *args],
        input=b"\n".join(lines) + b"\n",
        check=True,
        timeout=60,
        env={**os.environ, **secrets.mosquitto_clients_env(mqtt_access.GATEWAY)},
    )


def device_lines(i: int, n: int, rng: random.Random) -> tuple[str, list[bytes]]:
    """`n` messages of device `i`, one second apart (all newer than the previous: all stored)."""
    dev = fleet.device(i)
    return dev.topic, [orjson.dumps(fleet.payload(dev, 0, fleet.timestamp(BASE_TS + k), rng)) for k in range(n)]


async def test_every_protocol_variant_is_stored_and_acknowledged(
    mosquitto_port: int,
    redis_port: int,
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    r = client(redis_port)
    worker = await start_worker(mosquitto_port, redis_port)
    rng, per_case = random.Random(1), 20
    for i, (_, args) in enumerate(CASES):
        topic, lines = device_lines(i, per_case, rng)
        mosquitto_pub(mosquitto_port, topic, lines, args, local_secrets)
    total = per_case * len(CASES)
    await wait_for(lambda: _stored(r, total), timeout=30)
    assert await stats(r) == {"stored": total}
    # Clear the retained messages (an empty retained PUBLISH), which is itself delivered: invalid.
    for i, (_, args) in enumerate(CASES):
        if "-r" in args:
            subprocess.run(
                ["mosquitto_pub", "-p", str(mosquitto_port), "-t", fleet.device(i).topic, "-r", "-n"],
                check=True,
                env={**os.environ, **local_secrets.mosquitto_clients_env(mqtt_access.GATEWAY)},
            )
    await wait_for(lambda: _handled(r, total + 2), timeout=30)
    assert await stats(r) == {"stored": total, "invalid": 2}
    for i, (name, _) in enumerate(CASES):
        latest = orjson.loads(await r.hget("devices:latest", fleet.device(i).device_id) or b"{}")
        assert latest.get("timestamp_utc") == fleet.timestamp(BASE_TS + per_case - 1), name
    qos0 = sum(per_case for _, args in CASES if args[args.index("-q") + 1] == "0")
    assert worker.metrics.acks._value.get() == total - qos0  # every QoS 1 delivery PUBACKed
    assert worker.metrics.pending._value.get() == 0


async def test_invalid_qos0_and_property_messages_are_dead_lettered(
    mosquitto_port: int,
    redis_port: int,
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    r = client(redis_port)
    await start_worker(mosquitto_port, redis_port)
    topic = fleet.device(0).topic
    mosquitto_pub(mosquitto_port, topic, [b"{not json"], ["-V", "mqttv5", "-q", "0"], local_secrets)
    mosquitto_pub(
        mosquitto_port,
        topic,
        [b"[]"],
        ["-V", "mqttv5", "-q", "1", "-D", "publish", "user-property", "k", "v"],
        local_secrets,
    )
    mosquitto_pub(mosquitto_port, topic, [b"{}"], ["-V", "mqttv311", "-q", "1"], local_secrets)
    await wait_for(lambda: _handled(r, 3))
    assert await stats(r) == {"invalid": 3}
    assert await r.llen("deadletter:devices") == 3


async def test_more_property_messages_than_receive_maximum_keep_flowing(
    mosquitto_port: int,
    redis_port: int,
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    r = client(redis_port)
    worker = await start_worker(mosquitto_port, redis_port, receive_maximum=10, batch_size=4)
    args = [
        "-V",
        "mqttv5",
        "-q",
        "1",
        "-D",
        "publish",
        "user-property",
        "k",
        "v",
        "-D",
        "publish",
        "message-expiry-interval",
        "300",
    ]
    rng = random.Random(2)
    topic, lines = device_lines(0, 300, rng)
    mosquitto_pub(mosquitto_port, topic, lines[:200], args, local_secrets)
    await wait_for(lambda: _stored(r, 200), timeout=30)
    mosquitto_pub(mosquitto_port, topic, lines[200:], args, local_secrets)  # still flowing after 20 x Receive Maximum
    await wait_for(lambda: _stored(r, 300), timeout=30)
    assert await stats(r) == {"stored": 300}
    assert worker.metrics.acks._value.get() == 300


async def _stored(r: object, n: int) -> bool:
    return (await stats(r)).get("stored", 0) >= n


async def _handled(r: object, n: int) -> bool:
    return sum((await stats(r)).values()) >= n
