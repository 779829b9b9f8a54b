"""Device simulator: one shard of the fleet publishing telemetry over MQTT (QoS 1) with gmqtt.

Every device publishes once per interval. The interval is cut into slots and each slot publishes
its share of devices, so the load is spread evenly instead of arriving in one burst per second.
When a slot starts late the simulator does not sleep (it catches up), tracks how late it is
(`tier0_simulator_publish_lag_seconds`), and warns loudly once it is more than one interval behind:
a fleet that cannot keep its rate must say so, never silently publish less.

The connection is a `mqttlink.Link`: the chart points the simulator at the global MQTT Service,
which follows the active region, and a broker that stops acknowledging (a partitioned or frozen
region never closes the connection) is dropped after `--ack-timeout` seconds without a PUBACK and
the connection reopened, to wherever the Service points now, with the unacknowledged messages.

`python -m tier0_simulators.devices --help`. As a Kubernetes Indexed Job each pod takes its shard
from TIER0_SHARD_INDEX (the chart sets it from the Job's completion index).
"""

import asyncio
import logging
import os
import random
import signal
import ssl
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, start_http_server
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tier0_contract import credentials
from tier0_simulators import fleet, mqttlink, reconnect

log = logging.getLogger("tier0.simulator.devices")
T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    devices: int = 100_000
    sites: int = len(fleet.SITES)
    shard_index: int = 0
    shard_count: int = 1
    interval: float = 1.0
    slots: int = 50
    """Publishing slots per interval."""
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    """Read from the password file at start; never printed."""
    mqtt_tls_ca_file: str | None = None
    duration: float = 0.0
    """Stop after this many seconds (0: run until SIGTERM)."""
    report_every: float = 10.0
    seed: int | None = None
    policy: reconnect.Policy = reconnect.Policy()
    """When a silent broker's connection is dropped and how soon it is reopened."""


class SimulatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "tier0_simulator_messages_published",
            "Device messages handed to the MQTT client (QoS 1)",
            registry=registry,
        )
        self.inflight = Gauge(
            "tier0_simulator_inflight_messages",
            "Published messages not yet acknowledged by the broker",
            registry=registry,
        )
        self.lag = Gauge(
            "tier0_simulator_publish_lag_seconds",
            "How late the current publishing slot started (0 when keeping the schedule)",
            registry=registry,
        )
        self.target_rate = Gauge(
            "tier0_simulator_target_messages_per_second",
            "Messages per second this shard should publish",
            registry=registry,
        )
        self.achieved_rate = Gauge(
            "tier0_simulator_achieved_messages_per_second",
            "Messages per second over the last report period",
            registry=registry,
        )
        self.devices = Gauge(
            "tier0_simulator_devices", "Devices simulated by this shard, by current state", ["state"], registry=registry
        )
        self.flow_waits = Counter(
            "tier0_simulator_flow_control_waits",
            "Times publishing waited because the broker's receive maximum of unacknowledged messages was reached",
            registry=registry,
        )
        self.reconnects = Counter(
            "tier0_simulator_reconnects",
            "MQTT connections dropped and reopened, by reason: ack_timeout (no PUBACK within the timeout), "
            "lost (the connection ended), connect (an attempt failed or timed out)",
            ["reason"],
            registry=registry,
        )


@dataclass
class Summary:
    published: int = 0
    acknowledged: int = 0
    seconds: float = 0.0
    max_lag: float = 0.0

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0


class DeviceSimulator:
    def __init__(self, config: Config, metrics: SimulatorMetrics) -> None:
        self.config = config
        self.metrics = metrics
        indices = fleet.shard_range(config.devices, config.shard_index, config.shard_count)
        self.devices = [fleet.device(i, config.sites) for i in indices]
        self.rng = random.Random(config.seed)
        self.states = [fleet.initial_state(self.rng.random()) for _ in self.devices]
        self.link = mqttlink.Link(
            f"tier0-sim-{config.shard_index}-{os.getpid()}",
            config.mqtt_host,
            config.mqtt_port,
            username=config.mqtt_username,
            password=config.mqtt_password,
            tls=ssl.create_default_context(cafile=config.mqtt_tls_ca_file) if config.mqtt_tls_ca_file else None,
            policy=config.policy,
            on_drop=lambda reason: metrics.reconnects.labels(reason).inc(),
            on_flow_wait=metrics.flow_waits.inc,
        )
        self.summary = Summary()
        self._behind = False
        self._lag = 0.0

    @property
    def inflight(self) -> int:
        return self.link.inflight

    async def run(self, stop: asyncio.Event) -> Summary:
        cfg = self.config
        n = len(self.devices)
        m = self.metrics
        m.target_rate.set(n / cfg.interval)
        await self.link.start()
        log.info(
            "shard %d/%d: %d devices (indices %d..%d), target %.0f msg/s to mqtt://%s:%s",
            cfg.shard_index,
            cfg.shard_count,
            n,
            self.devices[0].index if n else 0,
            self.devices[-1].index if n else 0,
            n / cfg.interval,
            cfg.mqtt_host,
            cfg.mqtt_port,
        )
        slot_len = cfg.interval / cfg.slots
        bounds = [n * s // cfg.slots for s in range(cfg.slots + 1)]
        start = time.monotonic()
        report_at, report_count = start + cfg.report_every, 0
        tick = 0
        while not stop.is_set():
            for s in range(cfg.slots):
                due = start + tick * cfg.interval + s * slot_len
                now = time.monotonic()
                if now < due:
                    await asyncio.sleep(due - now)
                    lag = 0.0
                else:
                    lag = now - due
                    await asyncio.sleep(0)  # let PUBACKs in
                m.lag.set(lag)
                self.summary.max_lag = max(self.summary.max_lag, lag)
                self._check_schedule(lag)
                if stop.is_set() or (cfg.duration and time.monotonic() - start >= cfg.duration):
                    break
                ts = fleet.timestamp(time.time())
                for i in range(bounds[s], bounds[s + 1]):
                    state = self.states[i] = fleet.next_state(self.states[i], self.rng.random())
                    dev = self.devices[i]
                    body = orjson.dumps(fleet.payload(dev, state, ts, self.rng))
                    await self.link.publish(dev.topic, body)
                count = bounds[s + 1] - bounds[s]
                self.summary.published += count
                m.published.inc(count)
            tick += 1
            now = time.monotonic()
            if now >= report_at:
                self._report(now, report_at - cfg.report_every, self.summary.published - report_count)
                report_at, report_count = now + cfg.report_every, self.summary.published
            if cfg.duration and now - start >= cfg.duration:
                break
        self.summary.seconds = time.monotonic() - start
        await self._drain()
        return self.summary

    def _check_schedule(self, lag: float) -> None:
        """Say so at once when the schedule slips by more than one interval, and when it recovers."""
        if lag > self.config.interval and not self._behind:
            self._behind = True
            log.error(
                "FALLING BEHIND: publishing %.1f s late for a %.0f msg/s target; add shards (--shard-count) "
                "or lower --devices",
                lag,
                len(self.devices) / self.config.interval,
            )
        elif self._behind and lag < self.config.interval / 2:
            self._behind = False
            log.warning("back on schedule (%.2f s late)", lag)
        self._lag = lag

    def _report(self, now: float, since: float, count: int) -> None:
        rate = count / (now - since)
        target = len(self.devices) / self.config.interval
        self.metrics.achieved_rate.set(rate)
        self.metrics.inflight.set(self.inflight)
        for idx, name in enumerate(fleet.STATES):
            self.metrics.devices.labels(name).set(sum(1 for st in self.states if st == idx))
        if self._behind:
            log.error(
                "FALLING BEHIND: achieved %.0f msg/s of the %.0f target, %.1f s late",
                rate,
                target,
                self._lag,
            )
        else:
            log.info("published %.0f msg/s (target %.0f), %d in flight", rate, target, self.inflight)

    async def _drain(self, timeout: float = 30.0) -> None:
        """Wait until the broker has acknowledged everything published, then disconnect."""
        await self.link.close(drain_timeout=timeout)
        self.summary.acknowledged = self.summary.published - self.inflight


class Settings(BaseSettings):
    """Simulate IoT devices publishing telemetry to og/field/{site}/{type}/{device} (MQTT 5, QoS 1):
    4 device types (25% each) over the sites, states OK/WARN/ALERT (85/12/3%, persistent), one
    message per device per interval. Reports the achieved rate. Every flag is also a TIER0_<NAME>
    variable (TIER0_DEVICES, TIER0_SHARD_INDEX, ...)."""

    model_config = SettingsConfigDict(
        env_prefix="TIER0_",
        frozen=True,
        cli_prog_name="python -m tier0_simulators.devices",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    devices: int = Field(100_000, ge=1, description="size of the whole fleet, over all shards")
    sites: int = Field(len(fleet.SITES), ge=1, le=len(fleet.SITES), description="number of sites")
    shard_index: int = Field(0, ge=0, description="this process's shard (an Indexed Job's completion index)")
    shard_count: int = Field(1, ge=1, description="number of shards the fleet is split into")
    interval: float = Field(1.0, gt=0, description="seconds between two messages of a device")
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = Field(None, description="MQTT user (the chart: tier0-gateway); unset: anonymous")
    mqtt_password_file: Path | None = Field(None, description="file holding that user's password (a mounted Secret)")
    mqtt_tls_ca_file: Path | None = Field(None, description="CA bundle of the broker's certificate: connect with TLS")
    duration: float = Field(0.0, ge=0, description="stop after N seconds (0: never)")
    report_every: float = Field(10.0, gt=0, description="seconds between rate reports")
    ack_timeout: float = Field(
        2.0, gt=0, description="seconds without a PUBACK after which the connection is dropped and reopened"
    )
    connect_timeout: float = Field(2.0, gt=0, description="seconds a connection attempt (up to the CONNACK) may take")
    seed: int | None = Field(None, description="random seed (states and readings)")
    metrics_port: int = Field(9103, description="Prometheus /metrics port (0: none)")
    summary_json: bool = Field(False, description="print a JSON summary line on exit")

    @model_validator(mode="after")
    def _shard_in_range(self) -> "Settings":
        if self.shard_index >= self.shard_count:
            raise ValueError(f"shard index {self.shard_index} must be in [0, shard count {self.shard_count})")
        return self

    def config(self) -> Config:
        return Config(
            devices=self.devices,
            sites=self.sites,
            shard_index=self.shard_index,
            shard_count=self.shard_count,
            interval=self.interval,
            mqtt_host=self.mqtt_host,
            mqtt_port=self.mqtt_port,
            mqtt_username=self.mqtt_username,
            mqtt_password=credentials.read_optional(self.mqtt_password_file),
            mqtt_tls_ca_file=str(self.mqtt_tls_ca_file) if self.mqtt_tls_ca_file else None,
            duration=self.duration,
            report_every=self.report_every,
            seed=self.seed,
            policy=reconnect.Policy(ack_timeout=self.ack_timeout, connect_timeout=self.connect_timeout),
        )


def parse_args(argv: list[str] | None = None) -> Settings:
    try:
        return Settings(_cli_parse_args=sys.argv[1:] if argv is None else argv)  # type: ignore[call-arg]
    except ValidationError as exc:
        sys.exit(f"python -m tier0_simulators.devices: {exc}")


async def _serve(config: Config) -> Summary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await DeviceSimulator(config, SimulatorMetrics(REGISTRY)).run(stop)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (it is with the services extra), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = args.config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gmqtt").setLevel(logging.ERROR)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    summary = run_async(_serve(config))
    log.info(
        "published %d (%d acknowledged) in %.1f s: %.0f msg/s, max lag %.2f s",
        summary.published,
        summary.acknowledged,
        summary.seconds,
        summary.rate,
        summary.max_lag,
    )
    if args.summary_json:
        out: dict[str, Any] = {**summary.__dict__, "rate": summary.rate}
        print(orjson.dumps(out).decode(), flush=True)
    return 0 if summary.acknowledged == summary.published else 1


if __name__ == "__main__":
    sys.exit(main())
