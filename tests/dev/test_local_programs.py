"""The real programs start on free ports and do real work: Redis replication, MQTT, AMQP."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tier0_dev import programs
from tier0_dev.procs import find_program, free_port
from tier0_services.access import mqtt as mqtt_access

pytestmark = pytest.mark.integration


def test_redis_pair_replicates(redis_factory) -> None:  # type: ignore[no-untyped-def]
    _, primary = redis_factory()
    _, replica = redis_factory("--replicaof", "127.0.0.1", "0")
    r1 = redis.Redis(port=primary)
    r2 = redis.Redis(port=replica)
    r2.replicaof("127.0.0.1", primary)
    r1.set("region1:status", "active")
    r1.wait(1, 5000)
    assert r2.get("region1:status") == b"active"
    info = r2.info("replication")
    assert isinstance(info, dict) and info["role"] == "slave"


def test_mosquitto_delivers_qos1(mosquitto_port: int, local_secrets: programs.Secrets) -> None:
    sub = subprocess.Popen(
        [find_program("mosquitto_sub"), "-p", str(mosquitto_port), "-t", "og/field/#", "-q", "1", "-C", "1", "-v"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **local_secrets.mosquitto_clients_env(mqtt_access.INGEST)},
    )
    time.sleep(0.3)
    subprocess.run(
        [
            find_program("mosquitto_pub"),
            "-p",
            str(mosquitto_port),
            "-t",
            "og/field/WY-ALPHA/turbine/T1",
            "-q",
            "1",
            "-m",
            "{}",
        ],
        check=True,
        env={**os.environ, **local_secrets.mosquitto_clients_env(mqtt_access.GATEWAY)},
    )
    out, _ = sub.communicate(timeout=10)
    assert out.strip() == "og/field/WY-ALPHA/turbine/T1 {}"


def test_mosquitto_keeps_a_worker_sessions_messages_across_a_restart(
    tmp_path: Path, local_secrets: programs.Secrets
) -> None:
    """A QoS 1 message the broker acknowledged for an ingest worker that was away (its persistent
    session in the share group) is delivered after a broker restart: the broker saves its sessions
    (`persistence true`, writable by the user it runs as)."""
    port = free_port()
    state = tmp_path / "mosquitto"
    share = "$share/ingest/og/field/#"
    sub = [find_program("mosquitto_sub"), "-p", str(port), "-V", "5", "-c", "-i", "worker-1", "-x", "3600", "-q", "1"]
    ingest = {**os.environ, **local_secrets.mosquitto_clients_env(mqtt_access.INGEST)}
    gateway = {**os.environ, **local_secrets.mosquitto_clients_env(mqtt_access.GATEWAY)}
    broker = programs.mosquitto(port, state, local_secrets)
    try:
        # Subscribe, then leave (a worker being restarted), keeping the session.
        subprocess.run([*sub, "-t", share, "-W", "1"], capture_output=True, timeout=10, env=ingest)
        pub = [find_program("mosquitto_pub"), "-p", str(port), "-q", "1", "-t", "og/field/WY-ALPHA/turbine/T1"]
        subprocess.run([*pub, "-m", "acked while the worker was away"], check=True, timeout=10, env=gateway)
        broker.stop()
        broker = programs.mosquitto(port, state, local_secrets)
        out = subprocess.run(
            [*sub, "-t", share, "-C", "1", "-W", "5"], capture_output=True, text=True, timeout=10, env=ingest
        )
        assert out.stdout.strip() == "acked while the worker was away", (out.stdout, out.stderr)
    finally:
        broker.stop()


def test_rabbitmq_speaks_amqp(rabbitmq_port: int) -> None:
    with socket.create_connection(("127.0.0.1", rabbitmq_port), timeout=2) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        frame = s.recv(7)
    assert frame[0] == 1  # method frame: connection.start
