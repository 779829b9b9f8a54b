"""Device endpoints over data written by the ingest worker's own store: active count within the
window, devices in ALERT (filters, limits, recovery), per-site metrics, 404 and 422."""

import time
from collections import Counter
from datetime import datetime

import httpx
import pytest
from redis.asyncio import Redis

from tier0_contract.models import DeviceState, DeviceType
from tier0_testing import api as testing

pytestmark = pytest.mark.integration

FLEET = testing.fleet(400)


@pytest.fixture
async def fleet_written(redis: Redis) -> float:
    now = time.time()
    await testing.write_devices(redis, FLEET, now)
    return now


async def test_active_devices_counts_the_window(client: httpx.AsyncClient, redis: Redis, fleet_written: float) -> None:
    silent = testing.fleet(450)[400:]
    await testing.write_devices(redis, silent, fleet_written - 120)  # seen two minutes ago
    body = (await client.get("/api/devices/active")).json()
    assert body["active_devices"] == 400 and body["known_devices"] == 450
    assert body["sites"] == 10 and body["window_seconds"] == 30 and body["region"] == "region1"


async def test_alerts_lists_devices_in_alert_newest_first(client: httpx.AsyncClient, fleet_written: float) -> None:
    expected = {d.device_id for d in FLEET if d.state == DeviceState.ALERT}
    body = (await client.get("/api/devices/alerts", params={"limit": 1000})).json()
    assert body["total_alerts"] == len(expected) == 12 and body["count"] == 12
    assert {d["device_id"] for d in body["devices"]} == expected
    device = body["devices"][0]
    assert device["status"]["state"] == "ALERT" and device["metrics"] and device["location"]
    assert set(device) >= {"device_id", "device_type", "site_id", "timestamp_utc", "firmware", "status"}
    page = (await client.get("/api/devices/alerts", params={"limit": 5})).json()
    assert page["total_alerts"] == 12 and page["count"] == 5


async def test_alerts_filter_by_site_and_type(client: httpx.AsyncClient, fleet_written: float) -> None:
    site = "WY-ALPHA"
    expected = {d.device_id for d in FLEET if d.state == DeviceState.ALERT and d.site_id == site}
    body = (await client.get("/api/devices/alerts", params={"site_id": site})).json()
    assert body["site_id"] == site and body["total_alerts"] == len(expected) > 0
    assert {d["device_id"] for d in body["devices"]} == expected
    turbines = (await client.get("/api/devices/alerts", params={"device_type": "turbine"})).json()
    assert turbines["total_alerts"] == sum(
        1 for d in FLEET if d.state == DeviceState.ALERT and d.device_type == "turbine"
    )
    assert {d["device_type"] for d in turbines["devices"]} == {"turbine"}
    unknown = await client.get("/api/devices/alerts", params={"site_id": "XX-NOWHERE"})
    assert unknown.status_code == 404 and "XX-NOWHERE" in unknown.json()["detail"]


async def test_a_recovered_device_leaves_the_alerts(
    client: httpx.AsyncClient, redis: Redis, fleet_written: float
) -> None:
    alerting = next(d for d in FLEET if d.state == DeviceState.ALERT)
    recovered = testing.Device(alerting.device_id, alerting.site_id, alerting.device_type, DeviceState.OK)
    await testing.write_devices(redis, [recovered], fleet_written + 1)
    body = (await client.get("/api/devices/alerts", params={"limit": 1000})).json()
    assert body["total_alerts"] == 11 and alerting.device_id not in {d["device_id"] for d in body["devices"]}
    site = (await client.get(f"/api/devices/metrics/site/{alerting.site_id}")).json()
    at_site = [d for d in FLEET if d.site_id == alerting.site_id]
    assert site["alert_count"] == sum(1 for d in at_site if d.state == DeviceState.ALERT) - 1


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"limit": "many"}, {"device_type": "toaster"}, {"site_id": "WY:ALPHA"}],
)
async def test_alerts_reject_bad_parameters(client: httpx.AsyncClient, params: dict[str, str | int]) -> None:
    resp = await client.get("/api/devices/alerts", params=params)
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"][0] == "query"


async def test_site_metrics_match_the_fleet(client: httpx.AsyncClient, fleet_written: float) -> None:
    for site in testing.SITES:
        at_site = [d for d in FLEET if d.site_id == site]
        states = Counter(d.state.value for d in at_site)
        types = Counter(d.device_type.value for d in at_site)
        body = (await client.get(f"/api/devices/metrics/site/{site}")).json()
        assert body["site_id"] == site and body["device_count"] == len(at_site) == 40
        counts = body["ok_count"], body["warn_count"], body["alert_count"]
        assert counts == (states["OK"], states["WARN"], states["ALERT"])
        assert body["devices_by_type"] == {t.value: types[t.value] for t in DeviceType}
        assert abs(datetime.fromisoformat(body["last_seen"]).timestamp() - fleet_written) < 1


async def test_site_metrics_404_for_unknown_and_422_for_bad_ids(
    client: httpx.AsyncClient, fleet_written: float
) -> None:
    unknown = await client.get("/api/devices/metrics/site/XX-NOWHERE")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "unknown site 'XX-NOWHERE'"}
    for bad in ("WY:ALPHA", "-WY", "W" * 65, "WY%20ALPHA"):
        assert (await client.get(f"/api/devices/metrics/site/{bad}")).status_code == 422, bad


async def test_empty_region_answers_zeros_not_errors(client: httpx.AsyncClient) -> None:
    active = (await client.get("/api/devices/active")).json()
    assert (active["active_devices"], active["known_devices"], active["sites"]) == (0, 0, 0)
    alerts = (await client.get("/api/devices/alerts")).json()
    assert (alerts["total_alerts"], alerts["devices"]) == (0, [])
