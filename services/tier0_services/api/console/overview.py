"""What the console's status panel shows: both regions, the RegionPair, the telemetry counters.

The answering region describes itself from its own Redis (the same reads as `/api/status`). The
other region comes from, in this order: its own API when `TIER0_PEER_API_URL` is set (role, status,
version, counts as it reports them), else the RegionPair status the operator writes (role, health,
lag), with the version from its `{region}:version` key (replicated, so readable here). A source
that cannot be reached is named in `error`, never guessed around. The decoding is pure and
unit-tested; `read_overview` does the I/O.
"""

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import Request
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_contract import regionpair as rp
from tier0_kube import client as kube
from tier0_kube import errors as kube_errors
from tier0_services.api.console.models import Overview, PairView, RegionView, Telemetry
from tier0_services.api.routers import core
from tier0_services.api.schemas import Transition
from tier0_services.api.settings import Settings

PAIR_TIMEOUT_SECONDS = 1.5
"""The overview is polled every couple of seconds: a slow apiserver must not hold it longer."""

STATES = ("OK", "WARN", "ALERT")


# --- pure decoding -----------------------------------------------------------------------------------


def pair_view(pair: rp.RegionPair) -> PairView:
    """The pair as the panel shows it; phase and epoch stay None until the operator writes them."""
    st, written = pair.status, pair.status.model_fields_set
    last = st.last_transition
    return PairView(
        name=pair.metadata.name,
        active_region=st.active_region,
        # The contract's model reads an unset spec.activeRegion as the home region, like the operator.
        desired_region=pair.spec.active_region,
        phase=st.phase if "phase" in written else None,
        epoch=st.epoch if "epoch" in written else None,
        in_transition=st.transition is not None,
        last_transition=Transition.model_validate(last.to_json()) if last else None,
    )


def pair_regions(pair: rp.RegionPair | None) -> dict[str, rp.RegionStatus]:
    """`status.regions` of the RegionPair by name."""
    return {r.name: r for r in pair.status.regions} if pair is not None else {}


def replica_lag(replication: Mapping[str, Any]) -> int | None:
    """Bytes the slowest replica is behind, from a primary's INFO replication (None: no replica)."""
    offset = replication.get("master_repl_offset")
    replicas = [v for k, v in replication.items() if k.startswith("slave") and isinstance(v, Mapping)]
    if not isinstance(offset, int) or not replicas:
        return None
    return max(0, max(offset - int(r.get("offset", 0)) for r in replicas))


def telemetry_from(ingest: Mapping[bytes, bytes], sites: Sequence[Sequence[bytes | None]], known: int) -> Telemetry:
    """`stats:ingest` and each site's state counters as the console's counters."""
    total = sum(int(ingest.get(f, b"0")) for f in (b"stored", b"stale", b"invalid"))
    by_state = dict.fromkeys(STATES, 0)
    for counts in sites:
        for state, value in zip(STATES, counts, strict=True):
            by_state[state] += int(value or 0)
    return Telemetry(messages_total=total, devices_by_state=by_state, known_devices=known)


def peer_from_pair(
    name: str, entry: rp.RegionStatus | None, pair: PairView | None, version: str | None, pair_error: str | None
) -> RegionView:
    if entry is None:
        why = pair_error or f"the RegionPair reports nothing about {name} yet"
        return RegionView(
            name=name,
            source="unknown",
            role=None,
            status=None,
            healthy=None,
            version=version,
            active_devices=None,
            active_users=None,
            lag_bytes=None,
            error=why,
        )
    active = pair.active_region if pair else None
    return RegionView(
        name=name,
        source="regionpair",
        role=entry.role,
        status=("active" if active == name else "standby") if active else None,
        healthy=entry.healthy,
        version=version,
        active_devices=None,
        active_users=None,
        lag_bytes=entry.lag_bytes,
    )


def _lag(entry: rp.RegionStatus | None) -> int | None:
    return entry.lag_bytes if entry is not None else None


# --- I/O ---------------------------------------------------------------------------------------------


async def _read_pair(request: Request, settings: Settings) -> tuple[rp.RegionPair | None, str | None]:
    client: kube.Client | None = request.app.state.kube
    if client is None:
        return None, f"kubernetes API not configured: {request.app.state.kube_error}"
    namespace = settings.regionpair_namespace or client.namespace
    try:
        async with asyncio.timeout(PAIR_TIMEOUT_SECONDS):
            return await client.get_pair(namespace, settings.regionpair_name), None
    except TimeoutError:
        return None, f"the Kubernetes API did not answer within {PAIR_TIMEOUT_SECONDS} s"
    except kube_errors.KubeError as exc:
        return None, str(exc)


async def _read_peer_api(http: httpx.AsyncClient, base: str, name: str) -> RegionView:
    try:
        answer = await http.get(f"{base.rstrip('/')}/api/status")
        answer.raise_for_status()
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        return RegionView(
            name=name,
            source="peer-api",
            role=None,
            status=None,
            healthy=False,
            version=None,
            active_devices=None,
            active_users=None,
            lag_bytes=None,
            error=f"{base}: {exc or type(exc).__name__}",
        )
    return RegionView(
        name=str(body.get("region", name)),
        source="peer-api",
        role=body.get("role"),
        status=body.get("status"),
        healthy=True,
        version=body.get("version"),
        active_devices=body.get("active_devices"),
        active_users=body.get("active_users"),
        lag_bytes=None,
    )


async def read_overview(request: Request, redis: Redis, settings: Settings) -> Overview:
    own = await core.status(request=request, redis=redis, settings=settings)
    peers = [r for r in settings.regions if r != settings.region]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.info("replication")
        pipe.hgetall(keys.INGEST_STATS)
        pipe.smembers(keys.SITES)
        pipe.zcard(keys.DEVICES_LAST_SEEN)
        for peer in peers:
            pipe.get(keys.region_version(peer))
        replication, ingest, site_ids, known, *peer_versions = await pipe.execute()
    sites = sorted(s.decode() for s in site_ids)
    async with redis.pipeline(transaction=False) as pipe:
        for site in sites:
            pipe.hmget(keys.site_metrics(site), [keys.SITE_STATE_FIELDS[s] for s in STATES])
        site_counts = await pipe.execute() if sites else []

    found, pair_error = await _read_pair(request, settings)
    pair = pair_view(found) if found is not None else None
    by_name = pair_regions(found)
    lag_here = replica_lag(replication) if own.role == "primary" else None
    regions = [
        RegionView(
            name=settings.region,
            source="self",
            role=own.role,
            status=own.status,
            healthy=True,
            version=own.version,
            active_devices=own.active_devices,
            active_users=own.active_users,
            lag_bytes=0 if own.role == "primary" else _lag(by_name.get(settings.region)),
        )
    ]
    peer_http: httpx.AsyncClient | None = request.app.state.peer_http
    for peer, raw_version in zip(peers, peer_versions, strict=True):
        version = raw_version.decode("utf-8", "replace") if raw_version else None
        if settings.peer_api_url and peer_http is not None and len(peers) == 1:
            view = await _read_peer_api(peer_http, settings.peer_api_url, peer)
        else:
            view = peer_from_pair(peer, by_name.get(peer), pair, version, pair_error)
        if view.lag_bytes is None:
            lag = _lag(by_name.get(peer))
            view = view.model_copy(update={"lag_bytes": lag if lag is not None else lag_here})
        regions.append(view)
    return Overview(
        answered_by=settings.region,
        regions=sorted(regions, key=lambda r: r.name),
        pair=pair,
        pair_error=pair_error,
        telemetry=telemetry_from(ingest, site_counts, int(known)),
        timestamp=datetime.now(UTC),
    )
