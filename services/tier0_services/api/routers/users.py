"""User-activity endpoints: what the activity consumer wrote from the `webapp_active_users` queue."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from tier0_contract import keys
from tier0_services.api import errors
from tier0_services.api.deps import RedisDep
from tier0_services.api.schemas import (
    ActiveUsers,
    ActivitySample,
    UserActivity,
    UserConnections,
    UserOut,
    decode_stored,
)

router = APIRouter(prefix="/api/users", tags=["users"])

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many users")]


@router.get("/active", responses=errors.responses(503))
async def active_users(redis: RedisDep, limit: Limit = 100) -> ActiveUsers:
    """The active-user count of the newest activity message and its users, most recently active first."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.ACTIVE_USERS)
        pipe.get(keys.USERS_ACTIVITY_LATEST_TS)
        pipe.hvals(keys.USERS_ACTIVE)
        count, as_of, raw_users = await pipe.execute()
    # Ties broken by id: the hash's order differs between a primary and its replica.
    users = sorted(decode_stored(UserOut, raw_users), key=lambda u: (-u.last_activity_utc.timestamp(), u.user_id))
    users = users[:limit]
    return ActiveUsers(
        active_users=int(count or 0),
        as_of=datetime.fromtimestamp(float(as_of), UTC) if as_of else None,
        count=len(users),
        users=users,
        timestamp=datetime.now(UTC),
    )


@router.get("/activity", responses=errors.responses(503))
async def activity(
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=keys.ACTIVITY_HISTORY_MAX, description="History length")] = 12,
) -> UserActivity:
    """The newest activity message (server CPU, memory, latency, counts) and the ones before it."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.USERS_ACTIVITY_LATEST)
        pipe.lrange(keys.USERS_ACTIVITY_HISTORY, 0, limit - 1)
        latest, history = await pipe.execute()
    decoded_latest = decode_stored(ActivitySample, [latest])
    return UserActivity(
        latest=decoded_latest[0] if decoded_latest else None,
        history=decode_stored(ActivitySample, history),
        timestamp=datetime.now(UTC),
    )


@router.get("/connections", responses=errors.responses(503))
async def connections(redis: RedisDep, limit: Limit = 100) -> UserConnections:
    """Open live connections: the reported total and the users holding them, most first."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.ACTIVE_CONNECTIONS)
        pipe.hvals(keys.USERS_ACTIVE)
        total, raw_users = await pipe.execute()
    connected = sorted(
        (u for u in decode_stored(UserOut, raw_users) if u.connections > 0), key=lambda u: (-u.connections, u.user_id)
    )
    return UserConnections(
        active_connections=int(total or 0),
        users_with_connections=len(connected),
        count=min(len(connected), limit),
        users=connected[:limit],
        timestamp=datetime.now(UTC),
    )
