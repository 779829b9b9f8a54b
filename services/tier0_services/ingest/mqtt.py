"""gmqtt client for at-least-once ingest at tens of thousands of messages per second.

gmqtt acknowledges a QoS 1 PUBLISH before the handler runs unless `optimistic_acknowledgement=False`;
then it runs an *async* `on_message` as a Task per message and sends the PUBACK with the Task's
return value when it finishes (`MqttPackageHandler._handle_qos_1_publish_packet` and
`__handle_publish_callback` in gmqtt/mqtt/handler.py). That is correct but costs a Task and a socket
write per message: measured at 8-16k msg/s on this machine, below the 40k target.

So every QoS 0 and QoS 1 PUBLISH takes a shorter path here: the handler parses topic, packet id and
payload (skipping the MQTT 5 property block: user properties, message expiry, content type, ...)
and hands them to a sink without acknowledging; the worker writes a whole batch to Redis and only
then calls `ack()`, which sends every PUBACK of the batch in one write. QoS 0 messages have no
packet id and need no PUBACK, but they go through the same batches, so they are stored or counted
as well. Nothing the broker delivers at QoS 0/1 takes gmqtt's own path, so the broker's in-flight
window (Receive Maximum) can never fill with messages nobody will acknowledge.

Topic aliases: the worker announces no Topic Alias Maximum in CONNECT (i.e. 0), so the broker must
send every topic in full; a PUBLISH with an empty topic anyway reaches the sink with topic `b""` and
is dead-lettered by the batcher (and acknowledged), never silently dropped.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv50
from gmqtt.mqtt.handler import MqttPackageHandler

log = logging.getLogger(__name__)

Sink = Callable[[bytes, bytes, int | None, Any], None]
"""Called with (topic, payload, packet id or None for QoS 0, connection) per message; must not block."""

_PUBLISH = 0x30


def parse_publish(cmd: int, data: bytes, mqtt5: bool) -> tuple[bytes, bytes, int | None] | None:
    """(topic, payload, packet id) of a QoS 0/1 PUBLISH's variable header + payload, or None when
    the packet is not one (another packet type, QoS 2, or truncated). Pure: unit-tested."""
    if cmd & 0xF0 != _PUBLISH:
        return None
    qos = (cmd >> 1) & 0x03
    if qos > 1 or len(data) < 2:
        return None
    p = 2 + ((data[0] << 8) | data[1])
    topic = data[2:p]
    mid = None
    if qos == 1:
        if len(data) < p + 2:
            return None
        mid = (data[p] << 8) | data[p + 1]
        p += 2
    if mqtt5:
        # Property length: a variable byte integer (1-4 bytes, 7 bits each, high bit = more).
        length, shift = 0, 0
        for _ in range(4):
            if p >= len(data):
                return None
            byte = data[p]
            p += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        else:
            return None
        p += length
        if p > len(data):
            return None
    return topic, data[p:], mid


class _BatchAckHandler(MqttPackageHandler):  # type: ignore[misc]
    sink: Sink

    def __call__(self, package: Any) -> None:
        if package.cmd & 0xF0 == _PUBLISH:
            mqtt5 = self._connection_state.protocol_version >= MQTTv50
            parsed = parse_publish(package.cmd, package.data, mqtt5)
            if parsed is not None:
                topic, payload, mid = parsed
                self.sink(topic, payload, mid, self._connection)
                return
            log.warning("PUBLISH not handled by the batch path (QoS 2 or malformed): cmd 0x%02x", package.cmd)
        super().__call__(package)


CONNECT_TIMEOUT_S = 5.0
"""Bound of one TCP connect to the broker (first connect and gmqtt's reconnects alike)."""


class IngestClient(gmqtt.Client):  # type: ignore[misc]
    """gmqtt.Client whose QoS 0/1 messages go to `sink` and are acknowledged by `ack()`."""

    def __init__(
        self, client_id: str, sink: Sink, *, connect_timeout: float = CONNECT_TIMEOUT_S, **connect_properties: Any
    ) -> None:
        super().__init__(client_id, clean_session=False, optimistic_acknowledgement=False, **connect_properties)
        handler = self._package_handler
        handler.__class__ = _BatchAckHandler  # same object and state, one method overridden
        handler.sink = sink
        self.connect_timeout = connect_timeout

    async def _create_connection(self, *args: Any, **kwargs: Any) -> Any:
        """gmqtt's connect, bounded: it opens the socket with no timeout, so a SYN to a vanished pod
        address (a Service endpoint not yet withdrawn, pinned by conntrack for the retransmits)
        waited out the kernel's SYN retries, about 2 min, while the broker of a freshly restarted
        region had no subscriber and acknowledged devices' messages to nobody (kind CI). The
        TimeoutError is an OSError: the first connect and gmqtt's reconnect both retry on it."""
        async with asyncio.timeout(self.connect_timeout):
            return await super()._create_connection(*args, **kwargs)

    @property
    def connection(self) -> Any:
        """The live MQTT connection (a new object after each reconnect)."""
        return self._package_handler.current_connection

    def ack(self, acks: Sequence[tuple[int | None, Any]]) -> int:
        """PUBACK each `(packet id, connection)` received on the current connection in one write;
        returns how many were sent. QoS 0 entries (id None) need none. Ids from an older connection
        are skipped: the broker resends those messages on the resumed session and they are written
        (idempotently) again."""
        conn = self.connection
        if conn is None or conn.is_closing():
            return 0
        out = bytearray()
        sent = 0
        for mid, on in acks:
            if mid is not None and on is conn:
                # PUBACK, remaining length 2: packet id only, which means reason code 0 (success).
                out += b"\x40\x02" + mid.to_bytes(2, "big")
                sent += 1
        if out:
            conn.send_package(bytes(out))
        return sent
