"""User-activity endpoints over what the activity consumer writes: counts, users, history,
connections, limits, and an empty region answering zeros."""

import time

import httpx
import pytest
from redis.asyncio import Redis

from tier0_testing import api as testing

pytestmark = pytest.mark.integration


async def test_empty_region_answers_zeros(client: httpx.AsyncClient) -> None:
    active = (await client.get("/api/users/active")).json()
    assert (active["active_users"], active["as_of"], active["users"]) == (0, None, [])
    activity = (await client.get("/api/users/activity")).json()
    assert (activity["latest"], activity["history"]) == (None, [])
    conns = (await client.get("/api/users/connections")).json()
    assert (conns["active_connections"], conns["users_with_connections"], conns["users"]) == (0, 0, [])


async def test_active_users_newest_activity_first(client: httpx.AsyncClient, redis: Redis) -> None:
    now = time.time()
    await testing.write_activity(redis, testing.activity_message(30, now))
    body = (await client.get("/api/users/active", params={"limit": 10})).json()
    assert body["active_users"] == 30 and body["count"] == 10
    assert abs(_epoch(body["as_of"]) - now) < 1
    seen = [_epoch(u["last_activity_utc"]) for u in body["users"]]
    assert seen == sorted(seen, reverse=True) and body["users"][0]["user_id"] == "user-0000"
    assert set(body["users"][0]) == {
        "user_id",
        "session_id",
        "login_time_utc",
        "last_activity_utc",
        "ip_address",
        "client",
        "location",
        "connections",
    }


async def test_activity_latest_and_history(client: httpx.AsyncClient, redis: Redis) -> None:
    now = time.time()
    for seq in (1, 2, 3):
        await testing.write_activity(redis, testing.activity_message(10 * seq, now + 5 * seq, seq=seq))
    body = (await client.get("/api/users/activity", params={"limit": 2})).json()
    assert body["latest"]["message_id"] == "MSG-00000003" and body["latest"]["metrics"]["active_users"] == 30
    assert set(body["latest"]["metrics"]) == {
        "active_users",
        "active_connections",
        "server_cpu_pct",
        "server_memory_gb",
        "average_latency_ms",
    }
    assert [h["message_id"] for h in body["history"]] == ["MSG-00000003", "MSG-00000002"]


async def test_connections_lists_connected_users_most_first(client: httpx.AsyncClient, redis: Redis) -> None:
    raw = testing.activity_message(12, time.time())
    await testing.write_activity(redis, raw)
    body = (await client.get("/api/users/connections")).json()
    connected = body["users"]
    assert body["users_with_connections"] == 8 == len(connected)  # every third user is idle
    assert all(u["connections"] > 0 for u in connected)
    counts = [u["connections"] for u in connected]
    assert counts == sorted(counts, reverse=True)
    assert body["active_connections"] == sum(counts)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/users/active", {"limit": 0}),
        ("/api/users/connections", {"limit": 5000}),
        ("/api/users/activity", {"limit": 721}),
        ("/api/users/activity", {"limit": "x"}),
    ],
)
async def test_bad_limits_are_422(client: httpx.AsyncClient, path: str, params: dict[str, str | int]) -> None:
    assert (await client.get(path, params=params)).status_code == 422


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
