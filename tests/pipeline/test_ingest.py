"""MQTT ingest against real mosquitto and redis-server.

Checks: every published message stored exactly once with exact per-site counts and alert set;
malformed messages counted and dead-lettered while the worker goes on; a worker SIGKILLed
mid-stream loses nothing and double-counts nothing; a worker whose Redis turns replica writes
nothing and loses nothing once it is primary again; a worker stopped while it holds a batch ends
at once and the batch comes back; worker reconnects after a broker restart and after a Redis
restart.
"""

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import gmqtt
import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_dev import programs
from tier0_dev.procs import free_port
from tier0_services.access import mqtt as mqtt_access
from tier0_services.ingest.metrics import IngestMetrics
from tier0_services.ingest.worker import Config, IngestWorker
from tier0_simulators import fleet

pytestmark = pytest.mark.integration

Message = tuple[str, bytes]
BASE_TS = time.time() - 600


def messages(devices: Iterable[int], round_: int, rng: random.Random, states: dict[int, int]) -> list[Message]:
    """One message per device at second `round_` (after BASE_TS); records each device's state."""
    out = []
    for i in devices:
        dev = fleet.device(i)
        states[i] = rng.choice((0, 0, 0, 1, 2))
        body = fleet.payload(dev, states[i], fleet.timestamp(BASE_TS + round_), rng)
        out.append((dev.topic, orjson.dumps(body)))
    return out


async def publish(port: int, batch: list[Message], secrets: programs.Secrets) -> None:
    """Publish at QoS 1 (as the gateway user, like the device simulator) and return once the broker
    has acknowledged every message."""
    client = gmqtt.Client(f"test-pub-{uuid.uuid4().hex[:8]}")
    client.set_auth_credentials(mqtt_access.GATEWAY, secrets.mqtt_password(mqtt_access.GATEWAY))
    await client.connect("127.0.0.1", port)
    for topic, body in batch:
        while True:
            try:
                client.publish(topic, body, qos=1)
                break
            except OverflowError:  # receive maximum reached: wait for PUBACKs
                await asyncio.sleep(0.002)
    while client._persistent_storage._messages:
        await asyncio.sleep(0.01)
    await client.disconnect()


async def _counted(worker: IngestWorker, outcome: str, n: int) -> bool:
    return bool(worker.metrics.messages.labels(outcome)._value.get() >= n)


async def wait_for(cond: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def client(port: int) -> Any:
    """redis.asyncio client (typed Any: redis-py's stubs mix sync and async return types)."""
    return Redis(port=port)


async def stats(r: Any) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await r.hgetall(keys.INGEST_STATS)).items()}


class RunningWorker:
    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(worker.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
async def start_worker(local_secrets: programs.Secrets) -> AsyncIterator[Callable[..., Awaitable[IngestWorker]]]:
    running: list[RunningWorker] = []

    async def start(mqtt_port: int, redis_port: int, *, wait_subscribed: bool = True, **cfg: Any) -> IngestWorker:
        tag = uuid.uuid4().hex[:8]
        defaults: dict[str, Any] = {
            "client_id": f"test-ingest-{tag}",
            "share_group": f"test-{tag}",
            "resolve_interval": 0.2,
            "session_expiry": 30,
            **local_secrets.mqtt_settings(mqtt_access.INGEST),
        }
        config = Config(mqtt_port=mqtt_port, redis_url=f"redis://127.0.0.1:{redis_port}/0", **{**defaults, **cfg})
        rw = RunningWorker(IngestWorker(config, IngestMetrics(CollectorRegistry())))
        running.append(rw)
        if wait_subscribed:
            await asyncio.wait_for(rw.worker.session.subscribed.wait(), 20)
        return rw.worker

    yield start
    for rw in running:
        await rw.close()


async def test_every_message_stored_once_with_exact_site_counts(
    mosquitto_port: int,
    redis_port: int,
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    r = client(redis_port)
    worker = await start_worker(mosquitto_port, redis_port, active_window=3600)
    rng, states = random.Random(11), dict[int, int]()
    devices = range(2000)
    first, second = messages(devices, 1, rng, states), messages(range(0, 2000, 2), 2, rng, states)
    await publish(mosquitto_port, first + second, local_secrets)
    await wait_for(lambda: _handled(r, len(first) + len(second)))
    assert await stats(r) == {"stored": 3000}
    # The worker counts a batch when it acknowledges it, a moment after the store has it.
    await wait_for(lambda: _counted(worker, "stored", 3000), timeout=10)
    assert worker.metrics.messages.labels("stored")._value.get() == 3000

    # Per-site counts follow each device's newest state (the second round overrides the first).
    expected: dict[str, Counter[str]] = {}
    for i, state in states.items():
        dev = fleet.device(i)
        c = expected.setdefault(dev.site.site_id, Counter())
        c["device_count"] += 1
        c[keys.SITE_STATE_FIELDS[fleet.STATES[state]]] += 1
        c[keys.site_type_field(dev.device_type.value)] += 1
    for site, counts in expected.items():
        got = {k.decode(): v.decode() for k, v in (await r.hgetall(keys.site_metrics(site))).items()}
        assert float(got.pop("last_seen")) == pytest.approx(BASE_TS + 2, abs=0.002)
        assert {k: int(v) for k, v in got.items() if int(v)} == dict(counts)
    assert {s.decode() for s in await r.smembers(keys.SITES)} == set(expected)

    alerts = {m.decode() for m in await r.zrange(keys.DEVICES_ALERTS, 0, -1)}
    assert alerts == {fleet.device(i).device_id for i, s in states.items() if s == 2}
    assert await r.hlen(keys.DEVICES_LATEST) == 2000
    latest = orjson.loads(await r.hget(keys.DEVICES_LATEST, fleet.device(0).device_id) or b"{}")
    assert latest["status"]["state"] == fleet.STATES[states[0]]
    await wait_for(lambda: _equals(r.get(keys.ACTIVE_DEVICES), b"2000"), timeout=10)


async def test_malformed_messages_are_dead_lettered_and_the_worker_goes_on(
    mosquitto_port: int,
    redis_port: int,
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    r = client(redis_port)
    await start_worker(mosquitto_port, redis_port)
    good = messages(range(100), 1, random.Random(1), {})
    topic, body = good[0]
    bad: list[Message] = [
        (topic, b"{not json"),
        (topic, body.replace(b'"firmware"', b'"firmwear"')),
        (topic, b"\x00\xff" * 100),
        ("og/field/WY-ALPHA/turbine/SOMEONE-ELSE", body),
        (topic, b"[]"),
    ]
    await publish(mosquitto_port, good[:50] + bad + good[50:], local_secrets)
    await wait_for(lambda: _handled(r, 105))
    assert await stats(r) == {"stored": 100, "invalid": 5}
    dead = [orjson.loads(d) for d in await r.lrange(keys.DEVICES_DEAD_LETTER, 0, -1)]
    assert len(dead) == 5
    assert {d["topic"] for d in dead} == {topic, "og/field/WY-ALPHA/turbine/SOMEONE-ELSE"}
    assert all(d["error"] for d in dead)


async def test_killed_worker_loses_nothing_and_counts_nothing_twice(
    mosquitto_port: int, redis_port: int, local_secrets: programs.Secrets
) -> None:
    r = client(redis_port)
    tag = uuid.uuid4().hex[:8]
    argv = [
        sys.executable,
        "-m",
        "tier0_services.ingest",
        "--mqtt-port",
        str(mosquitto_port),
        "--redis-url",
        f"redis://127.0.0.1:{redis_port}/0",
        "--client-id",
        f"kill-{tag}",
        "--share-group",
        f"kill-{tag}",
        "--metrics-port",
        "0",
        "--batch-size",
        "200",
        *local_secrets.mqtt_args(mqtt_access.INGEST),
    ]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"ingest-kill-{tag}.log"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT)

    first = spawn()
    try:
        await wait_for(lambda: _log_has(log, "subscription acknowledged"), timeout=30)
        rng, states = random.Random(3), dict[int, int]()
        batch = [m for rnd in range(1, 11) for m in messages(range(2000), rnd, rng, states)]
        pub = asyncio.create_task(publish(mosquitto_port, batch, local_secrets))
        await wait_for(lambda: _stored_at_least(r, 3000))
        first.kill()  # SIGKILL mid-stream: unacknowledged messages stay in the broker session
        first.wait()
        await pub
        assert (await stats(r))["stored"] < len(batch)
        second = spawn()
        try:
            await wait_for(lambda: _stored_at_least(r, len(batch)), timeout=60)
            await asyncio.sleep(0.5)
        finally:
            second.terminate()
            second.wait(15)
    finally:
        if first.poll() is None:
            first.kill()
    s = await stats(r)
    assert s["stored"] == len(batch)  # every message applied exactly once, none twice
    # A redelivery is a duplicate, or stale when a newer message of its device (also in flight at
    # the kill) was stored before it came back; never invalid or anything else.
    assert set(s) <= {"stored", "duplicate", "stale"}


async def test_replica_pauses_without_writing_or_losing(
    mosquitto_port: int,
    redis_factory: Callable[..., tuple[object, int]],
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    _, own_port = redis_factory()
    _, other_port = redis_factory()
    own, other = client(own_port), client(other_port)
    worker = await start_worker(mosquitto_port, own_port)
    rng, states = random.Random(5), dict[int, int]()
    await publish(mosquitto_port, messages(range(500), 1, rng, states), local_secrets)
    await wait_for(lambda: _stored_at_least(own, 500))

    # Switchover: `other` becomes the primary with the same data, this worker's Redis its replica.
    await other.replicaof("127.0.0.1", own_port)
    await wait_for(lambda: _synced(other))
    await other.replicaof("NO", "ONE")
    await own.replicaof("127.0.0.1", other_port)
    await wait_for(lambda: _synced(own))
    await wait_for(lambda: _gauge_is(worker.metrics.writable, 0), timeout=10)

    await publish(mosquitto_port, messages(range(500), 2, rng, states), local_secrets)
    await asyncio.sleep(1.5)
    assert await stats(other) == {"stored": 500}  # nothing written anywhere while paused
    assert worker.metrics.messages.labels("stored")._value.get() == 500
    assert worker.metrics.write_errors.labels("other")._value.get() == 0

    # Promotion: the worker writes what it held and what the broker queued for it.
    await own.replicaof("NO", "ONE")
    await wait_for(lambda: _stored_at_least(own, 1000), timeout=20)
    await asyncio.sleep(0.5)
    assert await stats(own) == {"stored": 1000}
    warn = list(states.values()).count(1)
    site_warn = 0
    for site in fleet.SITES:
        site_warn += int(await own.hget(keys.site_metrics(site.site_id), "warn_count") or 0)
    assert site_warn == warn


async def test_a_worker_holding_a_batch_stops_at_once_and_the_batch_comes_back(
    mosquitto_port: int, redis_factory: Callable[..., tuple[object, int]], local_secrets: programs.Secrets
) -> None:
    """Stopped while it holds a batch with no primary to write it to (it knows only its own Redis,
    a replica now): the worker ends within a second instead of waiting for a primary forever (it
    used to outlive its SIGTERM until killed), and what it held, unacknowledged, is delivered to
    the next worker of its session and stored once."""
    _, own_port = redis_factory()
    _, other_port = redis_factory()
    own = client(own_port)
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "mqtt_port": mosquitto_port,
        "redis_url": f"redis://127.0.0.1:{own_port}/0",
        "client_id": f"hold-{tag}",
        "share_group": f"hold-{tag}",
        "session_expiry": 30,
        "resolve_interval": 0.2,
        **local_secrets.mqtt_settings(mqtt_access.INGEST),
    }
    config = Config(**values)
    first = RunningWorker(IngestWorker(config, IngestMetrics(CollectorRegistry())))
    try:
        await asyncio.wait_for(first.worker.session.subscribed.wait(), 20)
        await own.replicaof("127.0.0.1", other_port)
        await wait_for(lambda: _gauge_is(first.worker.metrics.writable, 0), timeout=10)
        rng, states = random.Random(7), dict[int, int]()
        await publish(mosquitto_port, messages(range(200), 1, rng, states), local_secrets)
        await wait_for(lambda: _received(first.worker, 200), timeout=10)
        started = time.monotonic()
        await asyncio.wait_for(first.close(), 5)
        assert time.monotonic() - started < 1.0
        assert first.worker.metrics.acks._value.get() == 0
    finally:
        first.stop.set()
    await own.replicaof("NO", "ONE")
    second = RunningWorker(IngestWorker(config, IngestMetrics(CollectorRegistry())))
    try:
        await wait_for(lambda: _stored_at_least(own, 200), timeout=20)
        await asyncio.sleep(0.3)
        assert await stats(own) == {"stored": 200}
    finally:
        await second.close()


async def test_worker_reconnects_after_broker_restart(
    tmp_path: Path,
    redis_port: int,
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    port = free_port()
    broker = programs.mosquitto(port, tmp_path / "mosquitto", local_secrets)
    try:
        r = client(redis_port)
        worker = await start_worker(port, redis_port)
        rng, states = random.Random(7), dict[int, int]()
        await publish(port, messages(range(300), 1, rng, states), local_secrets)
        await wait_for(lambda: _stored_at_least(r, 300))
        broker.stop()
        await wait_for(lambda: _gauge_is(worker.metrics.mqtt_connected, 0), timeout=10)
        broker = programs.mosquitto(port, tmp_path / "mosquitto", local_secrets)
        await asyncio.wait_for(_resubscribed(worker), 30)
        await publish(port, messages(range(300), 2, rng, states), local_secrets)
        await wait_for(lambda: _stored_at_least(r, 600))
        assert worker.metrics.mqtt_connects._value.get() >= 2
    finally:
        broker.stop()


async def test_worker_survives_a_redis_restart(
    tmp_path: Path,
    mosquitto_port: int,
    start_worker: Callable[..., Awaitable[IngestWorker]],
    local_secrets: programs.Secrets,
) -> None:
    port = free_port()
    store = programs.redis(port, tmp_path / "redis", persistent=True)
    try:
        r = client(port)
        await start_worker(mosquitto_port, port)
        rng, states = random.Random(9), dict[int, int]()
        await publish(mosquitto_port, messages(range(200), 1, rng, states), local_secrets)
        await wait_for(lambda: _stored_at_least(r, 200))
        store.stop()
        await publish(mosquitto_port, messages(range(200), 2, rng, states), local_secrets)  # held by the worker/broker
        store = programs.redis(port, tmp_path / "redis", persistent=True)
        await wait_for(lambda: _stored_at_least(r, 400), timeout=30)
        assert (await stats(r))["stored"] == 400
    finally:
        store.stop()


# --- helpers -----------------------------------------------------------------------------------------


async def _handled(r: Any, n: int) -> bool:
    return sum((await stats(r)).values()) >= n


async def _stored_at_least(r: Any, n: int) -> bool:
    try:
        return (await stats(r)).get("stored", 0) >= n
    except OSError:
        return False


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _synced(r: Any) -> bool:
    info = await r.info("replication")
    return bool(info.get("master_link_status") == "up")


async def _received(worker: IngestWorker, n: int) -> bool:
    return worker.progress.received >= n


async def _gauge_is(gauge: object, value: float) -> bool:
    return bool(gauge._value.get() == value)  # type: ignore[attr-defined]


async def _log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


async def _resubscribed(worker: IngestWorker) -> None:
    while not worker.session.ready:
        await asyncio.sleep(0.05)
