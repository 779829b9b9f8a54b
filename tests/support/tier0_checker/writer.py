"""The checker's clients: a device writer (MQTT QoS 1, counted on PUBACK), an activity writer
(AMQP with publisher confirms, counted on the confirm), and the readers that judge them.

Both writers run at a steady rate and can be paused while a check reads the active Redis. Device
messages are valid seed payloads whose `tags.seq` is the per-device sequence number and whose
`timestamp_utc` is the publish time (so the store's newest-wins rule orders them by sequence).
"""

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pika
import redis.asyncio as aioredis
from pika.exceptions import AMQPError

from tier0_checker.ledger import Ack, Ledger
from tier0_checker.mqtt_pub import Publisher
from tier0_contract import keys, topics
from tier0_dev import programs
from tier0_services.access import rabbitmq as rabbitmq_access
from tier0_services.activity import consumer

SITE = "CHK"


def device_payload(device: str, seq: int, at: float) -> bytes:
    return orjson.dumps(
        {
            "device_id": device,
            "site_id": SITE,
            "device_type": "turbine",
            "timestamp_utc": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            "firmware": "checker-1",
            "status": {"state": "OK", "code": "OK", "message": ""},
            "location": {"lat": 1.0, "lon": 2.0},
            "tags": {"seq": str(seq)},
            "metrics": {
                "rpm": 3000.0,
                "inlet_temp_c": 20.0,
                "exhaust_temp_c": 400.0,
                "vibration_mm_s": 1.0,
                "pressure_bar": 10.0,
                "power_kw": 1000.0,
            },
        }
    )


@dataclass
class DeviceWriter:
    """Publishes `rate` messages per second round-robin over `devices` devices."""

    mqtt_port: int
    devices: int
    rate: float
    ledger: Ledger = field(default_factory=Ledger)
    sent: int = 0
    unacked: int = 0
    """Sent, but the connection broke before the PUBACK (not acknowledged, so not checked)."""
    reconnects: int = 0
    paused: bool = False
    _stop: bool = False
    _inflight: dict[int, tuple[str, int, float]] = field(default_factory=dict)
    _seq: dict[str, int] = field(default_factory=dict)

    @property
    def period(self) -> float:
        """Seconds between two messages of one device."""
        return self.devices / self.rate

    def _on_ack(self, packet_id: int) -> None:
        item = self._inflight.pop(packet_id, None)
        if item is not None:
            self.ledger.record(Ack(*item))

    async def run(self) -> None:
        names = [f"CHK-{i:05d}" for i in range(self.devices)]
        k = 0
        while not self._stop:
            pub = Publisher("127.0.0.1", self.mqtt_port, f"checker-writer-{self.reconnects}", self._on_ack)
            try:
                await pub.connect()
            except (OSError, TimeoutError, ConnectionError):
                await asyncio.sleep(0.1)
                continue
            start, done = time.monotonic(), 0
            try:
                while not self._stop and not pub.closed.is_set():
                    await asyncio.sleep(0.005)
                    due = int((time.monotonic() - start) * self.rate) - done
                    for _ in range(due):
                        done += 1
                        if self.paused:
                            continue
                        device = names[k % self.devices]
                        k += 1
                        seq = self._seq.get(device, 0) + 1
                        self._seq[device] = seq
                        at = time.time()
                        packet_id = pub.next_packet_id()
                        self._inflight[packet_id] = (device, seq, at)
                        pub.publish(
                            topics.device_topic(SITE, "turbine", device).encode(),
                            device_payload(device, seq, at),
                            packet_id,
                        )
                        self.sent += 1
            except ConnectionError:
                pass
            finally:
                await pub.close()
                self.unacked += len(self._inflight)
                self._inflight.clear()
                if not self._stop:
                    self.reconnects += 1

    def stop(self) -> None:
        self._stop = True


@dataclass
class ActivityWriter:
    """Publishes user-activity messages with publisher confirms from a thread (pika is blocking)."""

    amqp_port: int
    rate: float
    secrets: programs.Secrets
    confirmed: list[tuple[str, float]] = field(default_factory=list)
    sent: int = 0
    unconfirmed: int = 0
    paused: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> list[tuple[str, float]]:
        with self._lock:
            taken, self.confirmed = self.confirmed, []
        return taken

    def _message(self, n: int, at: float) -> bytes:
        return orjson.dumps(
            {
                "message_id": f"chk-{n}",
                "timestamp_utc": datetime.fromtimestamp(at, UTC).isoformat(),
                "site_id": SITE,
                "active_users_list": [],
                "metrics": {
                    "active_users": n % 1000,
                    "active_connections": 0,
                    "server_cpu_pct": 1.0,
                    "server_memory_gb": 1.0,
                    "average_latency_ms": 1.0,
                },
            }
        )

    def run(self) -> None:
        n = 0
        params = consumer.amqp_parameters(
            programs.amqp_url(self.amqp_port), rabbitmq_access.APP, self.secrets.amqp_password()
        )
        params.heartbeat, params.blocked_connection_timeout = 10, 5
        while not self._stop.is_set():
            try:
                conn = pika.BlockingConnection(params)
            except AMQPError:
                self._stop.wait(0.2)
                continue
            try:
                ch = conn.channel()
                consumer.declare(ch)
                ch.confirm_delivery()
                props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
                while not self._stop.is_set():
                    self._stop.wait(1 / self.rate)
                    if self.paused:
                        continue
                    n += 1
                    at = time.time()
                    self.sent += 1
                    try:
                        ch.basic_publish("", topics.ACTIVITY_QUEUE, self._message(n, at), props, mandatory=True)
                    except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
                        self.unconfirmed += 1
                        continue
                    with self._lock:
                        self.confirmed.append((f"chk-{n}", at))
            except AMQPError:
                self.unconfirmed += 1
            finally:
                try:
                    conn.close()
                except AMQPError:
                    pass

    def stop(self) -> None:
        self._stop.set()


async def stored_seqs(client: aioredis.Redis, devices: list[str]) -> dict[str, int]:
    """Newest sequence per device in a Redis (0: none)."""
    out: dict[str, int] = {}
    for i in range(0, len(devices), 1000):
        chunk = devices[i : i + 1000]
        values = await client.hmget(keys.DEVICES_LATEST, chunk)  # type: ignore[misc]
        for device, raw in zip(chunk, values, strict=True):
            out[device] = int(orjson.loads(raw)["tags"]["seq"]) if raw else 0
    return out


async def missing_activity(client: aioredis.Redis, ids: list[str]) -> list[str]:
    """The confirmed activity message ids this Redis has never applied."""
    missing: list[str] = []
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        async with client.pipeline(transaction=False) as pipe:
            for mid in chunk:
                pipe.exists(keys.activity_seen(mid))
            found = await pipe.execute()
        missing += [mid for mid, ok in zip(chunk, found, strict=True) if not ok]
    return missing
