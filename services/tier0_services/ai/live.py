"""Questions about the live telemetry, answered from the keys the ingest worker and the activity
consumer write (`tier0_contract.keys`), the same reads the region API's endpoints make.

Each answer carries its figures and the Redis commands that computed them, so the console can show
exactly where a number came from. A site the region has never heard of is an abstention that lists
the sites it does have.
"""

import json
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.rag.intents import LiveQuery

LIST_IN_TEXT = 20
"""Listed items named in the answer text; `data` always holds every one."""


@dataclass(frozen=True)
class LiveAnswer:
    text: str
    data: dict[str, Any]
    query: str
    abstained: bool = False
    covers: dict[str, Any] = field(default_factory=dict)


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:LIST_IN_TEXT])
    more = len(items) - LIST_IN_TEXT
    return f"{shown} and {more} more (all in data)" if more > 0 else shown


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _where(site_id: str | None, device_type: str | None) -> str:
    parts = []
    if device_type:
        parts.append(f"of type {device_type}")
    if site_id:
        parts.append(f"at {site_id}")
    return (" " + " ".join(parts)) if parts else ""


class LiveData:
    def __init__(self, redis: Redis, active_window_seconds: float = keys.ACTIVE_WINDOW_SECONDS) -> None:
        self.redis = redis
        self.window = active_window_seconds

    async def sites(self) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(keys.SITES))  # type: ignore[misc]

    async def answer(self, q: LiveQuery) -> LiveAnswer:
        sites = await self.sites()
        covers = {"sites": sites}
        if q.site_id is not None and q.site_id not in sites:
            known = ", ".join(sites) if sites else "none yet (is the ingest running?)"
            return LiveAnswer(
                f"This region has no telemetry from a site {q.site_id}; the sites it has are: {known}.",
                {"site_id": q.site_id, "known_sites": sites},
                f"SMEMBERS {keys.SITES}",
                abstained=True,
                covers=covers,
            )
        if q.kind == "devices_in_state":
            return await self._in_state(q, sites)
        if q.kind == "active_devices":
            return await self._active(q)
        if q.kind == "active_users":
            return await self._users(q)
        if q.kind == "active_connections":
            return await self._connections()
        if q.kind == "site" and q.site_id is not None:
            return await self._site(q.site_id)
        if q.kind == "sites_ranked":
            return await self._ranked(q, sites)
        if q.kind == "server":
            return await self._server()
        text = f"This region has telemetry from {_plural(len(sites), 'site')}: {', '.join(sites) or 'none yet'}."
        return LiveAnswer(text, {"count": len(sites), "sites": sites}, f"SMEMBERS {keys.SITES}", covers=covers)

    async def _in_state(self, q: LiveQuery, sites: list[str]) -> LiveAnswer:
        state = q.state or "ALERT"
        if state == "ALERT":
            members = [m.decode() for m in await self.redis.zrevrange(keys.DEVICES_ALERTS, 0, -1)]
            query = f"ZREVRANGE {keys.DEVICES_ALERTS} 0 -1"
            if q.site_id or q.device_type:
                states = await self.redis.hmget(keys.DEVICES_STATE, members) if members else []  # type: ignore[misc]
                members = [
                    m
                    for m, raw in zip(members, states, strict=True)
                    if raw is not None and _matches(raw.decode(), q.site_id, q.device_type, state)
                ]
                query += f" + HMGET {keys.DEVICES_STATE} <those ids> (site|type|state of each)"
        else:
            raw_all = await self.redis.hgetall(keys.DEVICES_STATE)  # type: ignore[misc]
            members = sorted(
                k.decode() for k, v in raw_all.items() if _matches(v.decode(), q.site_id, q.device_type, state)
            )
            query = f"HGETALL {keys.DEVICES_STATE} (site|type|state of every device), filtered"
        where = _where(q.site_id, q.device_type)
        text = f"{_plural(len(members), 'device')}{where} {'is' if len(members) == 1 else 'are'} in {state} state now"
        if q.enumerate and members:
            text += f": {_names(members)}."
        else:
            text += "."
        by_site = await self._by_site(members) if members and q.site_id is None else {}
        if by_site:
            text += " By site: " + ", ".join(f"{site} {n}" for site, n in by_site.items()) + "."
        data: dict[str, Any] = {
            "state": state,
            "count": len(members),
            "site_id": q.site_id,
            "device_type": q.device_type,
        }
        if q.enumerate or len(members) <= LIST_IN_TEXT:
            data["devices"] = members
        if by_site:
            data["by_site"] = by_site
        return LiveAnswer(text, data, query, covers={"sites": sites})

    async def _by_site(self, members: list[str]) -> dict[str, int]:
        """How many of these devices each site has, most first."""
        states = await self.redis.hmget(keys.DEVICES_STATE, members)  # type: ignore[misc]
        counts: dict[str, int] = {}
        for raw in states:
            if raw is not None:
                site = raw.decode().split("|", 1)[0]
                counts[site] = counts.get(site, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    async def _active(self, q: LiveQuery) -> LiveAnswer:
        since = time.time() - self.window
        if q.site_id or q.device_type:
            raw_all = await self.redis.hgetall(keys.DEVICES_STATE)  # type: ignore[misc]
            ids = [k for k, v in raw_all.items() if _matches(v.decode(), q.site_id, q.device_type, None)]
            scores = await self.redis.zmscore(keys.DEVICES_LAST_SEEN, ids) if ids else []
            active = sum(1 for s in scores if s is not None and s >= since)
            known = len(ids)
            query = (
                f"HGETALL {keys.DEVICES_STATE} (filter by site/type) + ZMSCORE {keys.DEVICES_LAST_SEEN} <ids>, "
                f"last seen within {self.window:g} s"
            )
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zcount(keys.DEVICES_LAST_SEEN, since, "+inf")
                pipe.zcard(keys.DEVICES_LAST_SEEN)
                active, known = await pipe.execute()
            query = f"ZCOUNT {keys.DEVICES_LAST_SEEN} <now-{self.window:g}s> +inf; ZCARD {keys.DEVICES_LAST_SEEN}"
        where = _where(q.site_id, q.device_type)
        text = (
            f"{_plural(int(active), 'device')}{where} sent telemetry in the last {self.window:g} s "
            f"({int(known)} known)."
        )
        data: dict[str, Any] = {
            "active_devices": int(active),
            "known_devices": int(known),
            "window_seconds": self.window,
        }
        if q.site_id or q.device_type:
            data["device_count"] = int(known)  # every device of that site / type the region knows
        return LiveAnswer(text, {**data, "site_id": q.site_id, "device_type": q.device_type}, query)

    async def _users(self, q: LiveQuery) -> LiveAnswer:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.ACTIVE_USERS)
            pipe.get(keys.USERS_ACTIVITY_LATEST_TS)
            pipe.hkeys(keys.USERS_ACTIVE)
            count, as_of, users = await pipe.execute()
        if count is None:
            return LiveAnswer(
                "No user-activity message has been received yet, so I do not know how many users are active.",
                {"active_users": None},
                f"GET {keys.ACTIVE_USERS}",
                abstained=True,
            )
        ids = sorted(u.decode() for u in users)
        connected = await self._connected_users()
        text = f"{int(count)} users are active according to the newest activity message"
        if connected is not None:
            text += f" ({connected} with at least one connection, {int(count) - connected} idle with none)"
        text += f": {_names(ids)}." if q.enumerate and ids else "."
        data: dict[str, Any] = {"active_users": int(count), "as_of": float(as_of) if as_of else None}
        if connected is not None:
            data.update(connected_users=connected, idle_users=int(count) - connected)
        if q.enumerate:
            data["users"] = ids
        return LiveAnswer(text, data, f"GET {keys.ACTIVE_USERS}; HKEYS {keys.USERS_ACTIVE}")

    async def _connected_users(self) -> int | None:
        """Users of the newest message with at least one connection (None without the list)."""
        raw = await self.redis.hvals(keys.USERS_ACTIVE)  # type: ignore[misc]
        if not raw:
            return None
        return sum(1 for value in raw if int(json.loads(value).get("connections") or 0) > 0)

    async def _server(self) -> LiveAnswer:
        """The newest activity sample's metrics: users, connections and the web server's own."""
        newest = await self.redis.lindex(keys.USERS_ACTIVITY_HISTORY, 0)  # type: ignore[misc]
        if newest is None:
            return LiveAnswer(
                "No user-activity message has been received yet, so I do not know the server's metrics.",
                {"metrics": None},
                f"LINDEX {keys.USERS_ACTIVITY_HISTORY} 0",
                abstained=True,
            )
        sample = json.loads(newest)
        metrics = sample.get("metrics") or {}
        names = {
            "server_cpu_pct": ("server CPU", "%"),
            "server_memory_gb": ("server memory", " GB"),
            "average_latency_ms": ("average latency", " ms"),
            "active_users": ("active users", ""),
            "active_connections": ("open connections", ""),
        }
        shown = [
            f"{label} {metrics[k]:g}{unit}"
            for k, (label, unit) in names.items()
            if isinstance(metrics.get(k), int | float)
        ]
        where = f" from {sample.get('site_id')}" if sample.get("site_id") else ""
        text = f"The newest activity sample{where} ({sample.get('timestamp_utc')}) reports: {', '.join(shown)}."
        data = {"metrics": metrics, "site_id": sample.get("site_id"), "timestamp_utc": sample.get("timestamp_utc")}
        return LiveAnswer(text, data, f"LINDEX {keys.USERS_ACTIVITY_HISTORY} 0")

    async def _connections(self) -> LiveAnswer:
        count = await self.redis.get(keys.ACTIVE_CONNECTIONS)
        if count is None:
            return LiveAnswer(
                "No user-activity message has been received yet, so I do not know the open connections.",
                {"active_connections": None},
                f"GET {keys.ACTIVE_CONNECTIONS}",
                abstained=True,
            )
        return LiveAnswer(
            f"{int(count)} connections are open according to the newest activity message.",
            {"active_connections": int(count)},
            f"GET {keys.ACTIVE_CONNECTIONS}",
        )

    async def _site(self, site_id: str) -> LiveAnswer:
        raw = await self.redis.hgetall(keys.site_metrics(site_id))  # type: ignore[misc]
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        counts = {k: int(v) for k, v in fields.items() if k.endswith("_count")}
        by_type = {k.removesuffix("_count"): v for k, v in counts.items() if k not in keys.SITE_STATE_FIELDS.values()}
        by_type.pop("device", None)
        total = counts.get("device_count", 0)
        text = (
            f"{site_id} has {_plural(total, 'device')}: {counts.get('ok_count', 0)} OK, "
            f"{counts.get('warn_count', 0)} WARN, {counts.get('alert_count', 0)} ALERT"
            + (f" ({', '.join(f'{n} {t}' for t, n in sorted(by_type.items()))})." if by_type else ".")
        )
        data = {"site_id": site_id, "device_count": total, **counts, "devices_by_type": by_type}
        return LiveAnswer(text, data, f"HGETALL {keys.site_metrics(site_id)}")

    async def _ranked(self, q: LiveQuery, sites: list[str]) -> LiveAnswer:
        """Sites ordered by their devices in the state asked (all devices when none is)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for site in sites:
                pipe.hgetall(keys.site_metrics(site))
            replies = await pipe.execute()
        field_name = f"{q.state.lower()}_count" if q.state else "device_count"
        counts = {site: int(reply.get(field_name.encode(), 0)) for site, reply in zip(sites, replies, strict=True)}
        least = q.direction == "least"
        ranked = sorted(counts.items(), key=lambda kv: (kv[1] if least else -kv[1], kv[0]))
        what = f"devices in {q.state} state" if q.state else "devices"
        if not ranked:
            text = "This region has no telemetry from any site yet."
        else:
            head, n = ranked[0]
            ties = [s for s, c in ranked if c == n]
            which = "fewest" if least else "most"
            lead = f"{' and '.join(ties)} ({n} each)" if len(ties) > 1 else f"{head} ({n})"
            listed = ", ".join(f"{s} {c}" for s, c in ranked)
            text = f"The site with the {which} {what} is {lead}. All sites: {listed}."
        data = {
            "ranked_by": field_name,
            "order": "ascending" if least else "descending",
            "sites": [{"site_id": s, "count": c} for s, c in ranked],
            "site_id": ranked[0][0] if ranked else None,
        }
        query = " ; ".join(f"HGET {keys.site_metrics(s)} {field_name}" for s in sites[:3]) + " ... (every site)"
        return LiveAnswer(text, data, query, covers={"sites": sites})


def _matches(stored: str, site_id: str | None, device_type: str | None, state: str | None) -> bool:
    """`devices:state` values are `site|type|STATE`."""
    parts = stored.split("|")
    if len(parts) != 3:
        return False
    site, dtype, current = parts
    return (
        (site_id is None or site == site_id)
        and (device_type is None or dtype == device_type)
        and (state is None or current == state)
    )
