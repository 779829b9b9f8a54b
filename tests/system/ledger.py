"""The acknowledged-message ledger, run inside a pod of the cluster under test. `kit` sends it
appended to the checker's minimal publisher (tests/support/tier0_checker/mqtt_pub.py, standard
library only), which reports exactly which PUBLISHes the broker PUBACKed.

  publish HOST PORT TAG RATE DURATION [USERNAME PASSWORD_FILE]
      QoS 1 device messages at RATE per second for DURATION s (as USERNAME, the gateway user of the
      chart's MQTT users, with the password read from PASSWORD_FILE), each from a new device
      `E2E-<TAG>-<n>` of site E2E-LEDGER (the store keeps each device's newest message, so one
      message per device makes every acknowledged message checkable afterwards). A broken
      connection is reopened, and so is one whose oldest PUBACK is ACK_TIMEOUT_S overdue (a
      partitioned broker never closes it), as the device simulator does; a message whose PUBACK
      never came is not acknowledged and never re-sent. Prints `ready`, one `acked <device id>
      <epoch s>` line per PUBACK (when it arrived), then `sent <n> acked <m>`.

The payload is validated against the contract (tier0_contract, in the services image) before the
first message goes out, so a drifted schema fails here rather than being counted as lost.
"""

import asyncio
import sys
import time
from datetime import UTC, datetime

import orjson

from tier0_contract import models, topics

try:
    from tier0_checker.mqtt_pub import Publisher
except ModuleNotFoundError:  # in the pod: defined by the publisher's source, sent ahead of this one
    pass

SITE = "E2E-LEDGER"
ACK_TIMEOUT_S = 2.0
"""A PUBACK this overdue means the broker is gone without a word: reconnect (the simulators' bound)."""


def payload(device_id: str) -> bytes:
    body = {
        "device_id": device_id,
        "device_type": "og_sensor",
        "site_id": SITE,
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "firmware": "e2e",
        "metrics": {
            "pressure_bar": 90.0,
            "flow_rate_m3_h": 400.0,
            "temperature_c": 40.0,
            "h2s_ppm": 1.0,
            "level_pct": 50.0,
        },
        "status": {"state": "OK", "code": "OGS-OK", "message": "Nominal"},
        "location": {"lat": 40.0, "lon": -100.0},
    }
    return orjson.dumps(body)


async def publish(
    host: str, port: int, tag: str, rate: float, duration: float, username: str | None, password: str | None
) -> None:
    models.DEVICE_PAYLOAD.validate_json(payload(f"E2E-{tag}-0"))
    in_flight: dict[int, str] = {}
    sent_at: dict[int, float] = {}
    acked = 0

    def on_ack(packet_id: int) -> None:
        nonlocal acked
        device = in_flight.pop(packet_id, None)
        sent_at.pop(packet_id, None)
        if device is not None:
            acked += 1
            print(f"acked {device} {time.time():.3f}", flush=True)

    pub = Publisher(host, port, f"e2e-ledger-{tag}", on_ack, username, password)
    await pub.connect()
    print("ready", flush=True)
    start, sent = time.monotonic(), 0
    while (now := time.monotonic()) - start < duration:
        oldest = next(iter(sent_at.values()), now)  # insertion order: the longest unacknowledged
        if now - oldest > ACK_TIMEOUT_S and not pub.closed.is_set():
            await pub.close()
        if pub.closed.is_set():
            in_flight.clear()  # their PUBACKs can no longer come: not acknowledged
            sent_at.clear()
            try:
                await pub.connect()
            except (OSError, TimeoutError, ConnectionError):
                await asyncio.sleep(0.2)
                continue
        due = int((now - start) * rate)
        while sent < due:
            device = f"E2E-{tag}-{sent}"
            packet_id = pub.next_packet_id()
            in_flight[packet_id] = device
            sent_at[packet_id] = now
            pub.publish(topics.device_topic(SITE, "og_sensor", device).encode(), payload(device), packet_id)
            sent += 1
        await asyncio.sleep(0.005)
    deadline = time.monotonic() + 10  # the last PUBACKs
    while in_flight and not pub.closed.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print(f"sent {sent} acked {acked}", flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["publish"]:
    host, port, tag, rate, duration = sys.argv[2:7]
    user, password_file = (sys.argv[7:9] + [None, None])[:2]
    password = open(password_file).read().strip() if password_file else None
    asyncio.run(publish(host, int(port), tag, float(rate), float(duration), user, password))
