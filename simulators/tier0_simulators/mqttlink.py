"""A QoS 1 MQTT publisher's connection that notices a silent broker and moves on (gmqtt).

The device simulator publishes through the global MQTT Service, which follows the active region. A
region cut off by a partition, or a frozen broker, never closes the connection, so `Link` watches the
broker's PUBACKs (`reconnect.stalled`): when the oldest unacknowledged publish has waited
`ack_timeout` seconds with nothing acknowledged meanwhile, or the connection is lost, it aborts the
connection (gmqtt only closes gracefully, flushing first, which never ends on a partitioned link),
opens a new one after a short backoff (`reconnect.Policy`; each attempt bounded by
`connect_timeout`, as a connection to a frozen broker completes its TCP handshake and then waits
for a CONNACK that never comes) and publishes again every message not acknowledged yet: at least
once, as QoS 1 promises (the ingest workers keep each device's newest message, so a duplicate
changes nothing).

Each connection is a fresh gmqtt client (a new packet-id space, a clean session on whichever broker
the Service now selects) whose own reconnection is switched off: the link alone decides when and
where to reconnect.
"""

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import gmqtt
from gmqtt.mqtt.handler import MQTTConnectError
from gmqtt.storage import PersistentStorage

from tier0_simulators import reconnect

log = logging.getLogger("tier0.simulator.mqtt")


class LinkClosedError(Exception):
    """Publishing on a link that is closing."""


class _Ledger(PersistentStorage):  # type: ignore[misc]  # gmqtt has no type hints
    """gmqtt's store of one client's unacknowledged QoS 1 publishes, which also keeps the packet id
    last stored and tells the link each one a PUBACK removes."""

    def __init__(self, on_ack: Callable[["_Ledger", int], None]) -> None:
        super().__init__()
        self.last_mid = 0
        self._on_ack = on_ack

    def push_message(self, mid: int, raw_package: bytes) -> None:
        super().push_message(mid, raw_package)
        self.last_mid = mid

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        self._on_ack(self, mid)


class _Client(gmqtt.Client):  # type: ignore[misc]
    """gmqtt's client without its own reconnection (a reconnect to the same address on a timer of
    its own, unbounded in time): the link reconnects."""

    async def reconnect(self, delay: bool = False) -> None:
        return None

    def abort(self) -> None:
        """Drop the connection at once, discarding what is unsent (the link republishes it)."""
        transport = getattr(getattr(self, "_connection", None), "_transport", None)
        if transport is not None:
            transport.abort()


class _Pending(NamedTuple):
    topic: str
    body: bytes
    sent_at: float


@dataclass
class Stats:
    acknowledged: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    """Connections dropped, by reason: `ack_timeout` (the broker stopped acknowledging), `lost`
    (the connection ended), `connect` (an attempt failed or timed out)."""


class Link:
    """One MQTT connection at a time to host:port (the global Service), as `client_id`."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        keepalive: int = 30,
        policy: reconnect.Policy = reconnect.Policy(),
        on_drop: Callable[[str], None] | None = None,
        on_flow_wait: Callable[[], None] | None = None,
    ) -> None:
        self.client_id, self.host, self.port = client_id, host, port
        self._username, self._password, self._tls, self._keepalive = username, password, tls, keepalive
        self.policy = policy
        self.stats = Stats()
        self._on_drop, self._on_flow_wait = on_drop, on_flow_wait
        self._client: _Client | None = None
        self._ledger: _Ledger | None = None  # the current client's
        self._pending: dict[int, _Pending] = {}  # the current client's, by packet id
        self._carried: list[_Pending] = []  # unacknowledged on a dropped connection, to publish again
        self._up = asyncio.Event()
        self._progress = 0.0  # when the connection opened or the broker last acknowledged
        self._closing = False
        self._watcher: asyncio.Task[None] | None = None

    @property
    def inflight(self) -> int:
        """Messages published and not yet acknowledged (on this connection or a dropped one)."""
        return len(self._pending) + len(self._carried)

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def start(self) -> None:
        """Connect (retrying with backoff until it works) and start watching the broker."""
        await self._connect()
        self._watcher = asyncio.create_task(self._watch(), name="mqtt-link-watch")

    async def publish(self, topic: str, body: bytes) -> None:
        """Hand one QoS 1 message to the broker, waiting while the link reconnects (and while every
        packet id is in flight); its PUBACK arrives later (`inflight`, `stats.acknowledged`)."""
        message = _Pending(topic, body, time.monotonic())
        if not self._try_send(message):  # the common case costs no await
            await self._send(message)

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Wait up to `drain_timeout` for everything to be acknowledged (reconnecting as needed),
        then disconnect."""
        deadline = time.monotonic() + drain_timeout
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self._closing = True
        self._up.set()  # wakes publishers waiting for a connection: they raise LinkClosedError
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        client, self._client = self._client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), self.policy.connect_timeout)
            except (TimeoutError, OSError):
                client.abort()

    # --- internals -------------------------------------------------------------------------------

    def _try_send(self, message: _Pending) -> bool:
        """Publish on the current connection; False when there is none or every packet id is in
        flight (then `_send` waits)."""
        client, ledger = self._client, self._ledger
        if not self._up.is_set() or self._closing or client is None or ledger is None:
            return False
        try:
            client.publish(message.topic, message.body, qos=1)
        except OverflowError:  # every packet id in flight: wait for PUBACKs
            if self._on_flow_wait is not None:
                self._on_flow_wait()
            return False
        self._pending[ledger.last_mid] = message
        return True

    async def _send(self, message: _Pending) -> None:
        while not self._try_send(message):
            if self._closing:
                raise LinkClosedError("the MQTT link is closing")
            if self._up.is_set():
                await asyncio.sleep(0.001)  # flow control: PUBACKs free packet ids
            else:
                await self._up.wait()

    def _new_client(self) -> tuple[_Client, _Ledger]:
        ledger = _Ledger(self._acked)
        client = _Client(self.client_id, persistent_storage=ledger)
        if self._username:
            client.set_auth_credentials(self._username, self._password)
        return client, ledger

    def _acked(self, ledger: _Ledger, mid: int) -> None:
        if ledger is self._ledger and self._pending.pop(mid, None) is not None:
            self.stats.acknowledged += 1
            self._progress = time.monotonic()

    async def _connect(self) -> None:
        failures = 0
        while not self._closing:
            await asyncio.sleep(self.policy.delay(failures))
            client, self._ledger = self._new_client()
            self._client = client
            try:
                await asyncio.wait_for(
                    client.connect(self.host, self.port, ssl=self._tls or False, keepalive=self._keepalive),
                    self.policy.connect_timeout,
                )
            except (TimeoutError, OSError, MQTTConnectError) as exc:
                client.abort()
                self._client = self._ledger = None
                failures += 1
                self._count("connect")
                level = logging.ERROR if isinstance(exc, MQTTConnectError) else logging.WARNING
                log.log(level, "mqtt connect to %s:%s failed (%s); retrying", self.host, self.port, exc or "timeout")
                continue
            self._progress = time.monotonic()
            carried, self._carried = self._carried, []
            self._up.set()
            for message in carried:  # before anything new: the order devices published in
                await self._send(message)
            return

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            client = self._client
            if client is None or self._closing:
                continue
            # Insertion order is send order (carried messages go first on a new connection).
            first = next(iter(self._pending.values()), None)
            oldest = first.sent_at if first is not None else None
            if not client.is_connected:
                reason = "lost"
            elif reconnect.stalled(time.monotonic(), oldest, self._progress, self.policy.ack_timeout):
                reason = "ack_timeout"
            else:
                continue
            why = f"no PUBACK for {self.policy.ack_timeout:.1f} s" if reason == "ack_timeout" else "connection lost"
            log.warning(
                "mqtt %s:%s: %s, %d unacknowledged: reconnecting", self.host, self.port, why, len(self._pending)
            )
            self._count(reason)
            self._up.clear()
            self._carried = [*sorted(self._pending.values(), key=lambda p: p.sent_at), *self._carried]
            self._pending.clear()
            self._client = self._ledger = None
            client.abort()
            await self._connect()

    def _count(self, reason: str) -> None:
        self.stats.drops[reason] = self.stats.drops.get(reason, 0) + 1
        if self._on_drop is not None:
            self._on_drop(reason)
