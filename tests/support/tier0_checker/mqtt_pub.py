"""A minimal MQTT 3.1.1 QoS 1 publisher over asyncio that reports exactly which packets the broker
PUBACKed: the checker counts a device message as acknowledged only on its PUBACK, so the client
must not hide retries or acknowledgements (library clients do both). A message whose PUBACK never
came (the connection broke first) is simply not acknowledged; the writer never re-sends it."""

import asyncio
import struct
from collections.abc import Callable


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def connect_packet(
    client_id: str, keepalive: int = 60, username: str | None = None, password: str | None = None
) -> bytes:
    """CONNECT (MQTT 3.1.1, clean session), with a user name and password when given."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _string(client_id.encode())
    if username is not None:
        body += _string(username.encode())
    if password is not None:
        body += _string(password.encode())
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, packet_id: int) -> bytes:
    body = _string(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _remaining_length(len(body)) + body


class Publisher:
    """One connection; `publish()` sends, `on_ack(packet_id)` is called for every PUBACK."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        on_ack: Callable[[int], None],
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self.port, self.client_id, self.on_ack = host, port, client_id, on_ack
        self.username, self.password = username, password
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._next_id = 0
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 2.0) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout)
        writer.write(connect_packet(self.client_id, username=self.username, password=self.password))
        await writer.drain()
        connack = await asyncio.wait_for(reader.readexactly(4), timeout)
        if connack[0] != 0x20 or connack[3] != 0:
            writer.close()
            raise ConnectionError(f"CONNACK refused: {connack!r}")
        self._writer = writer
        self.closed.clear()
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header = await reader.readexactly(2)
                length = header[1]
                if length & 0x80:  # only PUBACK/PINGRESP expected (2 bytes); anything else: read it off
                    mult, length = 128, length & 0x7F
                    while True:
                        b = (await reader.readexactly(1))[0]
                        length += (b & 0x7F) * mult
                        mult *= 128
                        if not b & 0x80:
                            break
                body = await reader.readexactly(length)
                if header[0] == 0x40 and length == 2:
                    self.on_ack(struct.unpack("!H", body)[0])
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.closed.set()

    def next_packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def publish(self, topic: bytes, payload: bytes, packet_id: int) -> None:
        if self._writer is None or self.closed.is_set():
            raise ConnectionError("not connected")
        self._writer.write(publish_packet(topic, payload, packet_id))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
