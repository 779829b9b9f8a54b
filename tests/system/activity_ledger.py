"""The acknowledged user-activity ledger, run inside a pod of the cluster under test with the user
simulator's image, settings and password file (`kit.Cluster.activity_ledger`). It publishes as the
simulator does (`tier0_simulators.users`: its connection parameters and channel, publisher
confirms), through the AMQP Service, and says exactly which messages RabbitMQ confirmed, so that
each one can be looked up afterwards in the active Redis (`keys.activity_seen(message_id)`).

  publish TAG RATE DURATION
      Persistent messages to `topics.ACTIVITY_QUEUE` at RATE per second for DURATION s, message ids
      `e2e-<TAG>-<n>`, site E2E-LEDGER, each waiting for its confirm. A broken connection is
      reopened; a message whose confirm never came is not acknowledged and never re-sent, and the
      slots that pass while the broker is unreachable are skipped (not published). Prints `ready`,
      one `confirmed <message id> <epoch s>` line per confirm, then `sent <n> confirmed <m>`.

The broker comes from the simulator's environment: TIER0_AMQP_URL (no credentials in it),
TIER0_AMQP_USERNAME, TIER0_AMQP_PASSWORD_FILE and TIER0_AMQP_TLS_CA_FILE; never argv.
"""

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pika
import pika.exceptions

from tier0_contract import credentials, models, topics
from tier0_simulators import users

SITE = "E2E-LEDGER"
FAILED = (pika.exceptions.AMQPError, pika.exceptions.UnroutableError, pika.exceptions.NackError, OSError)


def message(message_id: str) -> bytes:
    body = {
        "message_id": message_id,
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "site_id": SITE,
        "metrics": {
            "active_users": 0,
            "active_connections": 0,
            "server_cpu_pct": 10.0,
            "server_memory_gb": 1.0,
            "average_latency_ms": 5.0,
        },
        "active_users_list": [],
    }
    return orjson.dumps(body)


def parameters() -> Any:
    env = os.environ
    ca = env.get("TIER0_AMQP_TLS_CA_FILE")
    password = credentials.read_optional(env.get("TIER0_AMQP_PASSWORD_FILE"))
    user = env.get("TIER0_AMQP_USERNAME")
    params = users.amqp_parameters(env["TIER0_AMQP_URL"], user, password, Path(ca) if ca else None)
    # A dead or cut-off broker is noticed within seconds, not after the OS's TCP timeouts.
    params.heartbeat = 2
    params.blocked_connection_timeout = 5
    params.socket_timeout = 2
    params.connection_attempts = 1
    return params


def close(connection: Any) -> None:
    try:
        connection.close()
    except FAILED:
        pass


def publish(params: Any, tag: str, rate: float, duration: float) -> None:
    models.parse_user_activity(message(f"e2e-{tag}-0"))
    connection, channel = users.open_channel(params)
    print("ready", flush=True)
    start, slot, sent, confirmed = time.monotonic(), 0, 0, 0
    while (now := time.monotonic()) - start < duration:
        due = int((now - start) * rate)
        if slot >= due:
            time.sleep(0.005)
            continue
        slot = due  # the slots missed while the broker was unreachable are skipped
        if channel is None:
            try:
                connection, channel = users.open_channel(params)
            except FAILED:
                time.sleep(0.2)
                continue
        message_id = f"e2e-{tag}-{sent}"
        sent += 1
        try:
            # Returns once RabbitMQ confirmed; raises on a nack, an unroutable message or a lost link.
            channel.basic_publish("", topics.ACTIVITY_QUEUE, message(message_id), users.PERSISTENT, mandatory=True)
        except FAILED:
            close(connection)
            channel = None
            continue
        confirmed += 1
        print(f"confirmed {message_id} {time.time():.3f}", flush=True)
    if channel is not None:
        close(connection)
    print(f"sent {sent} confirmed {confirmed}", flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["publish"]:
    tag, rate, duration = sys.argv[2:5]
    publish(parameters(), tag, float(rate), float(duration))
