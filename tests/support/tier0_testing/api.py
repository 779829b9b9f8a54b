"""Realistic region data for the region API's tests and benchmark, written the way production writes
it, a stand-in for the operator for the failover endpoints' tests, and the region API started as
its own process (`start_api`).

Devices go through the ingest worker's own pure validation (`ingest.batch.prepare`) and its Lua
store (`ingest.store.Store`), so the API is tested against exactly the keys and shapes the worker
produces, not a hand-written imitation. The fleet follows the seeds: four device types in equal
shares over the sites, states 85% OK / 12% WARN / 3% ALERT, values in each type's normal range.
"""

import asyncio
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from tier0_contract import keys, topics
from tier0_contract import regionpair as rp
from tier0_contract.models import DeviceState, DeviceType
from tier0_dev.procs import Process, free_port, http_ok
from tier0_kube import client as kube
from tier0_kube import errors as kube_errors
from tier0_services.ingest import batch, store

SITES = (
    "WY-ALPHA",
    "TX-BRAVO",
    "ND-CHARLIE",
    "OK-DELTA",
    "NM-ECHO",
    "CO-FOXTROT",
    "LA-GOLF",
    "AK-HOTEL",
    "PA-INDIA",
    "CA-JULIET",
)

_PREFIX = {
    DeviceType.TURBINE: "TURB",
    DeviceType.THERMAL_ENGINE: "THEN",
    DeviceType.ELECTRICAL_ROTOR: "EROT",
    DeviceType.OG_SENSOR: "OGS",
}
_RANGES: dict[DeviceType, dict[str, tuple[float, float]]] = {
    DeviceType.TURBINE: {
        "rpm": (3000, 3600),
        "inlet_temp_c": (380, 450),
        "exhaust_temp_c": (500, 560),
        "vibration_mm_s": (1, 4),
        "pressure_bar": (15, 20),
        "power_kw": (11_000, 14_000),
    },
    DeviceType.THERMAL_ENGINE: {
        "rpm": (1200, 1800),
        "coolant_temp_c": (80, 95),
        "oil_temp_c": (90, 110),
        "exhaust_temp_c": (350, 450),
        "fuel_rate_l_h": (50, 120),
        "load_pct": (40, 90),
    },
    DeviceType.ELECTRICAL_ROTOR: {
        "rpm": (1500, 3600),
        "winding_temp_c": (60, 110),
        "current_a": (100, 400),
        "voltage_v": (380, 690),
        "vibration_mm_s": (0.5, 3),
        "power_factor": (0.85, 0.98),
    },
    DeviceType.OG_SENSOR: {
        "pressure_bar": (50, 150),
        "flow_rate_m3_h": (100, 900),
        "temperature_c": (20, 80),
        "h2s_ppm": (0, 10),
        "level_pct": (20, 90),
    },
}
_TYPES = tuple(DeviceType)


@dataclass(frozen=True)
class Device:
    device_id: str
    site_id: str
    device_type: DeviceType
    state: DeviceState


def fleet(n: int, sites: Sequence[str] = SITES) -> list[Device]:
    """`n` devices: types and sites round-robin; every 100 consecutive devices hold 3 ALERT, 12 WARN."""
    out = []
    for i in range(n):
        dtype = _TYPES[i % len(_TYPES)]
        state = DeviceState.ALERT if i % 100 < 3 else DeviceState.WARN if i % 100 < 15 else DeviceState.OK
        out.append(Device(f"{_PREFIX[dtype]}-{i:06d}", sites[(i // len(_TYPES)) % len(sites)], dtype, state))
    return out


def message(device: Device, ts: float, rng: random.Random) -> tuple[bytes, bytes]:
    """(topic, payload) of one telemetry message of `device` at `ts` (epoch s)."""
    metrics = {name: round(rng.uniform(lo, hi), 2) for name, (lo, hi) in _RANGES[device.device_type].items()}
    payload = {
        "device_id": device.device_id,
        "device_type": device.device_type.value,
        "site_id": device.site_id,
        "timestamp_utc": datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds"),
        "firmware": "3.2.1",
        "metrics": metrics,
        "status": {
            "state": device.state.value,
            "code": f"{_PREFIX[device.device_type]}-{device.state.value}",
            "message": "Nominal" if device.state == DeviceState.OK else f"{device.state.value.title()} condition",
        },
        "location": {"lat": round(rng.uniform(30, 48), 4), "lon": round(rng.uniform(-120, -95), 4)},
        "tags": {"vendor": "HanTech", "loop": "A1"},
    }
    topic = topics.device_topic(device.site_id, device.device_type.value, device.device_id)
    return topic.encode(), orjson.dumps(payload)


async def write_devices(redis: Redis, devices: Sequence[Device], ts: float, seed: int = 0) -> int:
    """Store one message per device (at `ts`) through the ingest worker's store; returns how many
    were stored (a device whose newer message is already stored is left alone, as in production)."""
    rng = random.Random(seed)
    worker_store = store.Store(redis)
    stored = 0
    for start in range(0, len(devices), store.MAX_BATCH):
        chunk = devices[start : start + store.MAX_BATCH]
        prepared = batch.prepare((message(d, ts, rng) for d in chunk), now=ts)
        if prepared.rejected:
            raise ValueError(f"test payloads rejected by ingest validation: {prepared.dead_letters[:1]!r}")
        stored += (await worker_store.apply(prepared)).stored
    return stored


def activity_message(n_users: int, ts: float, seq: int = 1, site_id: str = "SFO-WEB-01") -> bytes:
    """A user-activity message of the seeds with `n_users` users, every third one idle."""
    when = datetime.fromtimestamp(ts, UTC).isoformat()
    users: list[dict[str, Any]] = [
        {
            "user_id": f"user-{u:04d}",
            "session_id": f"sess-{seq:04d}-{u:04d}",
            "login_time_utc": datetime.fromtimestamp(ts - 600 - u, UTC).isoformat(),
            "last_activity_utc": datetime.fromtimestamp(ts - u, UTC).isoformat(),
            "ip_address": f"10.0.{u // 250}.{u % 250 + 1}",
            "client": "web",
            "location": "San Jose",
            "connections": 0 if u % 3 == 2 else 1 + u % 4,
        }
        for u in range(n_users)
    ]
    return orjson.dumps(
        {
            "message_id": f"MSG-{seq:08d}",
            "timestamp_utc": when,
            "site_id": site_id,
            "metrics": {
                "active_users": n_users,
                "active_connections": sum(u["connections"] for u in users),
                "server_cpu_pct": 64.3,
                "server_memory_gb": 18.7,
                "average_latency_ms": 72.4,
            },
            "active_users_list": users,
        }
    )


async def write_activity(redis: Redis, raw: bytes) -> None:
    """Apply one activity message to Redis with the keys and shapes of `keys` (what the activity
    consumer writes)."""
    msg = orjson.loads(raw)
    ts = datetime.fromisoformat(msg["timestamp_utc"]).timestamp()
    sample = {k: msg[k] for k in ("message_id", "timestamp_utc", "site_id", "metrics")}
    users = {u["user_id"]: orjson.dumps(u) for u in msg.get("active_users_list", [])}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.ACTIVE_USERS, msg["metrics"]["active_users"])
        pipe.set(keys.ACTIVE_CONNECTIONS, msg["metrics"]["active_connections"])
        pipe.set(keys.USERS_ACTIVITY_LATEST, raw)
        pipe.set(keys.USERS_ACTIVITY_LATEST_TS, ts)
        pipe.delete(keys.USERS_ACTIVE)
        if users:
            pipe.hset(keys.USERS_ACTIVE, mapping=users)
        pipe.lpush(keys.USERS_ACTIVITY_HISTORY, orjson.dumps(sample))
        pipe.ltrim(keys.USERS_ACTIVITY_HISTORY, 0, keys.ACTIVITY_HISTORY_MAX - 1)
        await pipe.execute()


def start_api(
    redis_port: int, logs: Path, region: str = "region1", env: dict[str, str] | None = None
) -> tuple[Process, str]:
    """The region API as its own process (`python -m tier0_services.api`) on a free port over the
    Redis on `redis_port`, its log in `logs`; returns it and its URL once /health answers 200.
    `env` adds to its environment (and may override TIER0_REGION and TIER0_REDIS_URL). The caller
    stops it."""
    port = free_port()
    environment = {"TIER0_REGION": region, "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", **(env or {})}
    argv = [sys.executable, "-m", "tier0_services.api", "--port", str(port)]
    proc = Process(f"api-{region}", argv, logs / f"api-{region}-{port}.log", env=environment).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(http_ok(f"{url}/health"), timeout=60)
    return proc, url


# --- failover: a RegionPair and a stand-in for the operator ---------------------------------------


def regionpair_manifest(name: str = "og-field", active: str = "region1") -> dict[str, Any]:
    spec = rp.RegionPairSpec(
        service="region-api",
        active_region=active,
        regions=(
            rp.Region(
                name="region1", selector={"tier0.dev/region": "region1"}, redis=rp.RedisEndpoint(host="redis-region1")
            ),
            rp.Region(
                name="region2", selector={"tier0.dev/region": "region2"}, redis=rp.RedisEndpoint(host="redis-region2")
            ),
        ),
    )
    return rp.manifest(name, spec)


@dataclass
class FakeOperator:
    """Reacts to spec changes the way the operator reports them, in the contract's status model:
    SwitchingOver with a transition, then (after `delay`) the new active region, Healthy, a bumped
    epoch and lastTransition. `outcome="RolledBack"` keeps the old region instead; `react=False`
    stays silent."""

    client: kube.Client
    ref: kube.PairRef
    delay: float = 0.3
    outcome: rp.Outcome = "Succeeded"
    react: bool = True
    switchovers: int = 0

    async def run(self) -> None:
        while True:
            try:
                pair = await self.client.get_pair(self.ref.namespace, self.ref.name)
                if self.react and pair.status.observed_generation != pair.metadata.generation:
                    await self._reconcile(pair)
            except kube_errors.KubeUnavailableError:
                # An apiserver slowed past the client's timeout on a loaded machine: like the real
                # operator, try again instead of dying (the next pass reconciles what is left).
                await asyncio.sleep(0.2)
                continue
            await asyncio.sleep(0.02)

    async def _reconcile(self, pair: rp.RegionPair) -> None:
        status, generation = pair.status, pair.metadata.generation
        wanted, active = pair.spec.active_region, status.active_region
        assert active is not None, "FakeOperator needs a status with an activeRegion to start from"
        seen = status.model_copy(update={"observed_generation": generation, "requested_region": wanted})
        if wanted == active:
            await self._status(seen)
            return
        started = datetime.now(UTC)
        t = rp.TransitionStatus(
            type="Switchover",
            from_region=active,
            to_region=wanted,
            reason="spec.activeRegion changed",
            epoch=status.epoch + 1,
            started_at=started,
        )
        await self._status(seen.model_copy(update={"phase": "SwitchingOver", "transition": t}))
        await asyncio.sleep(self.delay)
        done = datetime.now(UTC)
        moved = self.outcome == "Succeeded"
        last = rp.LastTransition(
            type="Switchover",
            from_region=active,
            to_region=wanted,
            reason=t.reason,
            outcome=self.outcome,
            epoch=t.epoch,
            started_at=started,
            completed_at=done,
            duration_seconds=round((done - started).total_seconds(), 3),
        )
        final = seen.model_copy(
            update={
                "phase": "Healthy",
                "transition": None,
                "active_region": wanted if moved else active,
                "epoch": t.epoch if moved else status.epoch,
                "last_transition": last,
            }
        )
        await self._status(final)
        self.switchovers += 1

    async def _status(self, status: rp.RegionPairStatus) -> None:
        await self.client.patch_status(self.ref.namespace, self.ref.name, {"status": status.to_json()})
