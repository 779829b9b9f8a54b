"""Device endpoints: active count, devices in ALERT, per-site metrics (what the ingest worker wrote).

Each endpoint reads this region's Redis in one or two pipelined round trips; `/active` shares one
read between the requests of a quarter second (`snapshot`). The decoding of stored
values is pure (`site_metrics_from_hash`, `decode_alerts`) and unit-tested.
"""

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_contract.models import DeviceType
from tier0_services.api import errors, snapshot
from tier0_services.api.deps import RedisDep, SettingsDep
from tier0_services.api.schemas import (
    SITE_ID_PATTERN,
    ActiveDevices,
    DeviceAlert,
    DeviceAlerts,
    SiteMetrics,
    decode_stored,
)
from tier0_services.api.settings import Settings

router = APIRouter(prefix="/api/devices", tags=["devices"])

SiteIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=SITE_ID_PATTERN, examples=["WY-ALPHA"])]
SiteIdQuery = Annotated[
    str | None, Query(min_length=1, max_length=64, pattern=SITE_ID_PATTERN, description="Only devices of this site")
]


@router.get("/active", responses=errors.responses(503))
async def active_devices(request: Request, redis: RedisDep, settings: SettingsDep) -> ActiveDevices:
    """How many devices sent a message within the activity window (counted when read, so a stopped
    ingest shows as a falling count rather than a frozen one). Read at most
    `TIER0_READ_MAX_AGE_SECONDS` (0.25 s) before the answer; `timestamp` is when."""
    snap: snapshot.Snapshot[ActiveDevices] = request.app.state.active_snapshot
    return await snap.get(lambda: read_active(redis, settings))


async def read_active(redis: Redis, settings: Settings) -> ActiveDevices:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(keys.DEVICES_LAST_SEEN, time.time() - settings.active_window_seconds, "+inf")
        pipe.zcard(keys.DEVICES_LAST_SEEN)
        pipe.scard(keys.SITES)
        active, known, sites = await pipe.execute()
    return ActiveDevices(
        region=settings.region,
        active_devices=active,
        known_devices=known,
        sites=sites,
        window_seconds=settings.active_window_seconds,
        timestamp=datetime.now(UTC),
    )


@router.get("/alerts", responses=errors.responses(404, 503))
async def alerts(
    redis: RedisDep,
    settings: SettingsDep,
    site_id: SiteIdQuery = None,
    device_type: Annotated[DeviceType | None, Query(description="Only devices of this type")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many devices")] = 100,
) -> DeviceAlerts:
    """Devices whose newest message is in ALERT, newest first, with that message."""
    if site_id is None and device_type is None:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.DEVICES_ALERTS)
            pipe.zrevrange(keys.DEVICES_ALERTS, 0, limit - 1)
            total, ids = await pipe.execute()
    else:
        # Filtering needs each alerting device's site/type: a few thousand short strings at most.
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(keys.DEVICES_ALERTS, 0, -1)
            if site_id is not None:
                pipe.sismember(keys.SITES, site_id)
            all_ids, *known_site = await pipe.execute()
        if known_site and not known_site[0]:
            raise errors.NotFoundError(f"unknown site {site_id!r}")
        states = await _hmget(redis, keys.DEVICES_STATE, all_ids)
        ids = list(filter_by_state(all_ids, states, site_id, device_type))
        total, ids = len(ids), ids[:limit]
    devices = decode_alerts(await _hmget(redis, keys.DEVICES_LATEST, ids))
    return DeviceAlerts(
        region=settings.region,
        site_id=site_id,
        total_alerts=total,
        count=len(devices),
        devices=devices,
        timestamp=datetime.now(UTC),
    )


@router.get("/metrics/site/{site_id}", responses=errors.responses(404, 503))
async def site_metrics(site_id: SiteIdPath, redis: RedisDep) -> SiteMetrics:
    """Device counts of one site: total, by state and by type (404 for a site never seen)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.sismember(keys.SITES, site_id)
        pipe.hgetall(keys.site_metrics(site_id))
        known, fields = await pipe.execute()
    if not known and not fields:
        raise errors.NotFoundError(f"unknown site {site_id!r}")
    return site_metrics_from_hash(site_id, fields)


async def _hmget(redis: Redis, key: str, fields: list[bytes]) -> list[bytes | None]:
    if not fields:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(key, fields)
        (values,) = await pipe.execute()
    return list(values)


# --- pure decoding -----------------------------------------------------------------------------------


def filter_by_state(
    ids: Iterable[bytes], states: Iterable[bytes | None], site_id: str | None, device_type: str | None
) -> Iterable[bytes]:
    """The ids whose `devices:state` entry (`{site}|{type}|{state}`) matches the filters."""
    for device_id, state in zip(ids, states, strict=True):
        if state is None:
            continue
        site, dtype, _ = state.decode().split("|", 2)
        if (site_id is None or site == site_id) and (device_type is None or dtype == device_type):
            yield device_id


def decode_alerts(raw: Iterable[bytes | None]) -> list[DeviceAlert]:
    """Stored payloads as alerts; skips ids with no payload and payloads no longer in ALERT (the
    device recovered between the two reads) or unreadable (logged, never a 500)."""
    return [alert for alert in decode_stored(DeviceAlert, raw) if alert.status.state == "ALERT"]


def site_metrics_from_hash(site_id: str, fields: Mapping[bytes, bytes]) -> SiteMetrics:
    """The `site:{id}:metrics` hash as a response (missing counters are 0)."""

    def count(name: str) -> int:
        return int(fields.get(name.encode(), b"0"))

    last_seen = fields.get(b"last_seen")
    return SiteMetrics(
        site_id=site_id,
        device_count=count("device_count"),
        ok_count=count(keys.SITE_STATE_FIELDS["OK"]),
        warn_count=count(keys.SITE_STATE_FIELDS["WARN"]),
        alert_count=count(keys.SITE_STATE_FIELDS["ALERT"]),
        devices_by_type={t.value: count(keys.site_type_field(t.value)) for t in DeviceType},
        last_seen=datetime.fromtimestamp(float(last_seen), UTC) if last_seen else None,
        timestamp=datetime.now(UTC),
    )
