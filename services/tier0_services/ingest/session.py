"""The ingest worker's broker session: the gmqtt client, its callbacks, the shared subscription.

Split from the worker's loops (worker.py) because the session has a state of its own that the rest
only asks about: whether it is connected and subscribed (`ready`, which the heartbeat reports and
the operator routes devices by: a broker acknowledges and drops what nobody subscribes to), whether
the subscription is wanted yet (a worker joins the share group only once it can write), and how
fast to reconnect during an outage. Messages go to the `sink` it is given (the worker's inbox)
unacknowledged; `ack()` sends the PUBACKs once the delivery flow (delivery.py) says so.
"""

import asyncio
import logging
import ssl
import time
from collections.abc import Sequence
from typing import Any

from gmqtt.mqtt.handler import MQTTConnectError

from tier0_contract import topics
from tier0_services.ingest import mqtt
from tier0_services.ingest.metrics import IngestMetrics
from tier0_services.ingest.settings import Settings

log = logging.getLogger("tier0.ingest")

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


class Session:
    """One persistent MQTT session (clean start off, the worker's stable client id) in the share group."""

    def __init__(self, config: Settings, metrics: IngestMetrics, sink: mqtt.Sink, stopping: asyncio.Event) -> None:
        self.config = config
        self.metrics = metrics
        self._stopping = stopping
        self.connected = False
        self._disconnected_at: float | None = None
        self._wanted = False
        self.client = mqtt.IngestClient(
            config.mqtt_client_id,
            sink,
            receive_maximum=config.receive_maximum,
            session_expiry_interval=config.session_expiry,
        )
        if config.mqtt_username:
            self.client.set_auth_credentials(config.mqtt_username, config.mqtt_password())
        ca = config.mqtt_tls_ca_file
        self._tls: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca else False
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = asyncio.Event()
        """Set once the broker has acknowledged the shared subscription (cleared on disconnect)."""
        self.client.reconnect_retries = -1  # gmqtt's UNLIMITED_RECONNECTS
        self.client.reconnect_delay = RECONNECT_FAST_S

    @property
    def ready(self) -> bool:
        """Connected and subscribed: the broker has this worker to give the devices' messages to."""
        return self.connected and self.subscribed.is_set()

    @property
    def joined(self) -> bool:
        """The subscription is wanted (`join()` was called): made on every connection from now on."""
        return self._wanted

    def join(self) -> None:
        """Subscribe now if connected, and on every connection from now on."""
        if self._wanted:
            return
        self._wanted = True
        if self.connected:
            self._subscribe()

    def ack(self, acks: Sequence[tuple[int | None, Any]]) -> int:
        """PUBACK these `(packet id, connection)` in one write (`mqtt.IngestClient.ack`); how many were sent."""
        sent: int = self.client.ack(acks)
        return sent

    def pace_reconnects(self) -> None:
        """Stretch gmqtt's fixed reconnect delay as the current outage lasts (`reconnect_delay`)."""
        if self._disconnected_at is not None:
            self.client.reconnect_delay = reconnect_delay(time.monotonic() - self._disconnected_at)

    async def connect(self) -> None:
        """The first connect, retried until the broker takes it (gmqtt reconnects on its own after)."""
        delay = 0.5
        while True:
            try:
                await self.client.connect(self.config.mqtt_host, self.config.mqtt_port, ssl=self._tls, keepalive=30)
                return
            except MQTTConnectError as exc:  # refused (credentials): each attempt says so; retried
                log.error("mqtt connect refused by the broker (%s); retrying in %.1f s", exc, delay)
            except (TimeoutError, OSError) as exc:
                why = str(exc) or f"no answer within {self.client.connect_timeout:g} s"  # a bare TimeoutError
                log.warning("mqtt connect failed (%s); retrying in %.1f s", why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    async def disconnect(self) -> None:
        if self.connected:
            await self.client.disconnect()

    def _on_connect(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        log.info("connected to mqtt://%s:%s (session present: %s)", self.config.mqtt_host, self.config.mqtt_port, flags)
        self.connected = True
        self.metrics.mqtt_connected.set(1)
        self.metrics.mqtt_connects.inc()
        self._disconnected_at = None
        self.client.reconnect_delay = RECONNECT_FAST_S
        if self._wanted:
            self._subscribe()

    def _on_subscribe(self, client: Any, mid: int, qos: Any, properties: Any) -> None:
        log.info("subscription acknowledged (granted QoS %s)", qos)
        self.subscribed.set()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        self.connected = False
        self.subscribed.clear()
        self.metrics.mqtt_connected.set(0)
        if not self._stopping.is_set():
            # gmqtt retries with a fixed delay, which `pace_reconnects` stretches as the outage lasts.
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
