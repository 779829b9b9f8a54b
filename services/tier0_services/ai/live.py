"""Questions about the live telemetry, answered from the keys the ingest worker and the activity
consumer write (`tier0_contract.keys`), the same reads the region API's endpoints make.

Each answer carries its figures and the Redis commands that computed them, so the console can show
exactly where a number came from. A site the region has never heard of is an abstention that lists
the sites it does have.
"""

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from tier0_contract import keys, models
from tier0_services.ai.answers import Evidence, Mode, QueryResult
from tier0_services.ai.rag import intents, slots
from tier0_services.ai.rag.intents import LiveQuery

LIST_IN_TEXT = 20
"""Listed items named in the answer text; `data` holds up to `LIST_LIMIT`."""
LIST_LIMIT = 100
"""Devices one answer enumerates at most (it says how many there are)."""
SCAN_LIMIT = 10_000
"""Entries of `devices:alerts` or `devices:state` one answer reads at most, in pages of `PAGE`: a
count the per-site counters do not keep (turbines in WARN) is exact up to this many devices and
said to be partial beyond (issue 23 runs 100,000 devices; a question must not read them all)."""
PAGE = 1_000
MAX_SITES = 1_000
"""Sites one answer reads the counters of at most."""
VOCABULARY = frozenset("ok warn warning alert alerts id ids mqtt iot cpu ram gb mb ms".split())
"""Names the live telemetry can honour beside sites and device types: device states, the activity
sample's metric names. Another name ("BP", "CEO") is something it knows nothing of."""


@dataclass(frozen=True)
class LiveAnswer:
    text: str
    data: dict[str, Any]
    query: str
    abstained: bool = False
    covers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scan:
    """Matching devices found by a bounded read: up to `LIST_LIMIT` ids, how many matched, how
    many entries were read and whether that was all of them."""

    ids: list[str]
    matched: int
    read: int
    complete: bool


@dataclass(frozen=True)
class Sites:
    """The region's sites read (at most `MAX_SITES`) and how many it has."""

    ids: list[str]
    total: int

    @property
    def sampled(self) -> bool:
        return self.total > len(self.ids)


SITE_FIELDS = [
    "device_count",
    *keys.SITE_STATE_FIELDS.values(),
    *(keys.site_type_field(t.value) for t in models.DeviceType),
]
"""Every count field of `site_metrics` (the contract names them all): read by HMGET, never HGETALL."""


def _sample_note(site_id: str | None, region: Sites) -> str:
    """Said when a figure over the region's sites covers only the `MAX_SITES` read."""
    if site_id is not None or not region.sampled:
        return ""
    return f" (Over the {len(region.ids):,} of the region's {region.total:,} sites read, not all: a sample.)"


def _names(items: list[str], total: int | None = None) -> str:
    shown = ", ".join(items[:LIST_IN_TEXT])
    more = (total if total is not None else len(items)) - min(len(items), LIST_IN_TEXT)
    held = min(len(items), LIST_LIMIT)
    if more <= 0:
        return shown
    return f"{shown} and {more} more ({held} in data)" if held > LIST_IN_TEXT else f"{shown} and {more} more"


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
    """Reads bounded whatever the fleet's size: counts from the per-site counters the ingest keeps
    (`site:{id}:metrics`), sorted-set cardinalities and ranges, and at most `SCAN_LIMIT` devices
    read for what no counter holds."""

    def __init__(self, redis: Redis, active_window_seconds: float = keys.ACTIVE_WINDOW_SECONDS) -> None:
        self.redis = redis
        self.window = active_window_seconds

    async def sites(self) -> Sites:
        """The region's sites: at most `MAX_SITES` read (by SSCAN), and how many there are (SCARD)."""
        total = int(await self.redis.scard(keys.SITES))  # type: ignore[misc]
        found: set[str] = set()
        if total:
            async for member in self.redis.sscan_iter(keys.SITES, count=PAGE):
                found.add(member.decode())
                if len(found) >= MAX_SITES:
                    break
        return Sites(sorted(found), max(total, len(found)))

    async def ask(self, question: str, label: str, found: slots.Slots) -> tuple[QueryResult, list[str]]:
        """A question routed to the live read `label`: the answer, and the names the question
        gives that the live telemetry cannot honour (the orchestrator grounds on them)."""
        sites = (await self.sites()).ids
        site = resolve_site(found, sites)
        strange = [n for n in found.names if not honours_name(n, site, found)]
        when = past_or_future(found)
        if when:
            text = (
                "The live telemetry holds each device's and user's newest state only, not history or "
                f"forecasts ({when})."
            )
            return QueryResult(question, text, "abstain", evidence=Evidence("live", None, {"sites": sites})), strange
        got = await self.answer(intents.live_query(label, found, question, site))
        mode: Mode = "abstain" if got.abstained else "aggregation"
        return QueryResult(
            question, got.text, mode, data=got.data, evidence=Evidence("live", got.query, got.covers)
        ), strange

    async def answer(self, q: LiveQuery) -> LiveAnswer:
        region = await self.sites()
        sites = region.ids
        covers: dict[str, Any] = {"sites": sites, "sites_total": region.total}
        if q.site_id is not None and q.site_id not in sites and region.sampled:
            # Beyond the sites read: the set itself says whether the region has it.
            if await self.redis.sismember(keys.SITES, q.site_id):  # type: ignore[misc]
                sites = [*sites, q.site_id]
        if q.site_id is not None and q.site_id not in sites:
            known = ", ".join(sites) if sites else "none yet (is the ingest running?)"
            return LiveAnswer(
                f"This region has no telemetry from a site {q.site_id}; the sites it has are: {known}.",
                {"site_id": q.site_id, "known_sites": sites},
                f"SSCAN {keys.SITES}",
                abstained=True,
                covers=covers,
            )
        if not sites and q.kind in {"devices_in_state", "active_devices", "site", "sites", "sites_ranked"}:
            # No data is no answer: "0 devices" would be grounded on nothing.
            return LiveAnswer(
                "This region has received no device telemetry yet (no site has reported), so I cannot answer this.",
                {"sites": []},
                f"SSCAN {keys.SITES}",
                abstained=True,
                covers=covers,
            )
        if q.kind == "devices_in_state":
            return await self._in_state(q, sites, region)
        if q.kind == "active_devices":
            return await self._active(q, sites, region)
        if q.kind == "active_users":
            return await self._users(q)
        if q.kind == "active_connections":
            return await self._connections()
        if q.kind == "site" and q.site_id is not None:
            return await self._site(q.site_id)
        if q.kind == "sites_ranked":
            return await self._ranked(q, sites, region)
        if q.kind == "server":
            return await self._server()
        text = f"This region has telemetry from {_plural(region.total, 'site')}: {', '.join(sites) or 'none yet'}"
        text += f" (the first {len(sites):,} read)." if region.sampled else "."
        data = {"count": region.total, "sites": sites, "complete": not region.sampled}
        return LiveAnswer(text, data, f"SCARD {keys.SITES}; SSCAN {keys.SITES} (at most {MAX_SITES:,})", covers=covers)

    async def _counters(self, sites: list[str], fields: list[str]) -> dict[str, dict[str, int]]:
        """Per site, the named fields of its counters (missing ones 0)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for site in sites:
                pipe.hmget(keys.site_metrics(site), fields)
            replies = await pipe.execute()
        return {
            site: {f: int(v) if v is not None else 0 for f, v in zip(fields, reply, strict=True)}
            for site, reply in zip(sites, replies, strict=True)
        }

    async def _scan_alerts(self, site_id: str | None, device_type: str | None, known: int | None = None) -> Scan:
        """Alerting devices, newest first, filtered by site and type through their `devices:state`
        entries: pages of `devices:alerts` until `SCAN_LIMIT` are read (or, with `known` from a
        counter, until `LIST_LIMIT` or `known` match)."""
        ids: list[str] = []
        matched = read = 0
        total = int(await self.redis.zcard(keys.DEVICES_ALERTS))
        while read < min(total, SCAN_LIMIT) and not _enough(matched, known):
            page = [m.decode() for m in await self.redis.zrevrange(keys.DEVICES_ALERTS, read, read + PAGE - 1)]
            if not page:
                break
            states = await self.redis.hmget(keys.DEVICES_STATE, page)  # type: ignore[misc]
            read += len(page)
            for device, raw in zip(page, states, strict=True):
                if raw is not None and _matches(raw.decode(), site_id, device_type, "ALERT"):
                    matched += 1
                    if len(ids) < LIST_LIMIT:
                        ids.append(device)
        return Scan(ids, matched, read, read >= total)

    async def _scan_states(
        self, site_id: str | None, device_type: str | None, state: str | None, known: int | None = None
    ) -> Scan:
        """Devices matching site, type and state from `devices:state`, by HSCAN, until
        `SCAN_LIMIT` entries are read (or, with `known`, `LIST_LIMIT` or `known` match): no counter
        keeps types by state, nor a site's device ids."""
        ids: list[str] = []
        matched = read = 0
        total = int(await self.redis.hlen(keys.DEVICES_STATE))  # type: ignore[misc]
        cursor = 0
        while True:
            cursor, page = await self.redis.hscan(keys.DEVICES_STATE, cursor, count=PAGE)
            read += len(page)
            for device, raw in page.items():
                if _matches(raw.decode(), site_id, device_type, state):
                    matched += 1
                    if len(ids) < LIST_LIMIT:
                        ids.append(device.decode())
            if cursor == 0 or read >= SCAN_LIMIT or _enough(matched, known):
                break
        return Scan(sorted(ids), matched, read, cursor == 0 or read >= total)

    async def _in_state(self, q: LiveQuery, sites: list[str], region: Sites) -> LiveAnswer:
        state = q.state or "ALERT"
        field_name = keys.SITE_STATE_FIELDS[state]
        scan: Scan | None = None
        by_site: dict[str, int] = {}
        of_all: int | None = None
        if q.device_type is None:
            # The count from the counters, exact whatever the fleet's size, and the devices it is a share of.
            counters = await self._counters([q.site_id] if q.site_id else sites, [field_name, "device_count"])
            count = sum(c[field_name] for c in counters.values())
            of_all = sum(c["device_count"] for c in counters.values())
            query = f"HMGET {keys.site_metrics('<site>')} {field_name} device_count (each site asked)"
            if state == "ALERT" and q.site_id is None:
                # The region's figure as /api/devices/alerts gives it; the counters give the sites.
                count = int(await self.redis.zcard(keys.DEVICES_ALERTS))
                query = f"ZCARD {keys.DEVICES_ALERTS}; {query}"
                of_all = None if region.sampled else of_all  # the sites read are not all the devices
            if q.site_id is None:
                by_site = {s: c[field_name] for s, c in counters.items() if c[field_name]}
                by_site = dict(sorted(by_site.items(), key=lambda kv: (-kv[1], kv[0])))
            # The devices are named when asked for, and alerting ones when few (cheap: newest first).
            if count and (q.enumerate or (state == "ALERT" and count <= LIST_IN_TEXT)):
                if state == "ALERT":
                    scan = await self._scan_alerts(q.site_id, None, count)
                    query += f"; ZREVRANGE {keys.DEVICES_ALERTS} + HMGET {keys.DEVICES_STATE}, newest first"
                else:
                    scan = await self._scan_states(q.site_id, None, state, count)
                    query += f"; HSCAN {keys.DEVICES_STATE}"
        else:
            # No counter keeps a type's devices by state: the devices are read, bounded.
            if state == "ALERT":
                scan = await self._scan_alerts(q.site_id, q.device_type)
                query = f"ZREVRANGE {keys.DEVICES_ALERTS} + HMGET {keys.DEVICES_STATE} (site|type|state of each)"
            else:
                scan = await self._scan_states(q.site_id, q.device_type, state)
                query = f"HSCAN {keys.DEVICES_STATE} (site|type|state of each)"
            query += f", at most {SCAN_LIMIT:,} entries"
            count = scan.matched
        where = _where(q.site_id, q.device_type)
        partial = scan is not None and q.device_type is not None and not scan.complete
        lead = f"at least {count}" if partial else str(count)
        noun, verb = ("device", "is") if count == 1 else ("devices", "are")
        text = f"{lead} {noun}{where} {verb} in {state} state now"
        members = scan.ids if scan is not None else []
        if of_all:
            text += f" ({100.0 * count / of_all:.1f}% of the {of_all}{' there' if q.site_id else ''})"
        text += f": {_names(members, count)}." if members else "."
        if partial and scan is not None:
            text += (
                f" (No counter keeps device types by state: {scan.read:,} devices were read, not all; "
                "the figure is a lower bound.)"
            )
        if by_site:
            text += " By site: " + ", ".join(f"{site} {n}" for site, n in by_site.items()) + "."
        text += _sample_note(q.site_id, region)
        data: dict[str, Any] = {
            "state": state,
            "count": count,
            "of_devices": of_all,
            "site_id": q.site_id,
            "device_type": q.device_type,
        }
        if scan is not None:
            data["devices"] = members
            data["devices_listed"] = len(members)
            data["devices_read"] = scan.read
            data["complete"] = not partial
        if by_site:
            data["by_site"] = by_site
        return LiveAnswer(text, data, query, covers={"sites": sites})

    async def _active(self, q: LiveQuery, sites: list[str], region: Sites) -> LiveAnswer:
        since = time.time() - self.window
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(keys.DEVICES_LAST_SEEN, since, "+inf")
            pipe.zcard(keys.DEVICES_LAST_SEEN)
            active, known = await pipe.execute()
        query = f"ZCOUNT {keys.DEVICES_LAST_SEEN} <now-{self.window:g}s> +inf; ZCARD {keys.DEVICES_LAST_SEEN}"
        data: dict[str, Any] = {
            "active_devices": int(active),
            "known_devices": int(known),
            "window_seconds": self.window,
            "site_id": q.site_id,
            "device_type": q.device_type,
        }
        if not (q.site_id or q.device_type):
            text = (
                f"{_plural(int(active), 'device')} sent telemetry in the last {self.window:g} s ({int(known)} known)."
            )
            return LiveAnswer(text, data, query)
        # A site's or a type's devices from the counters; activity is kept for the region as a whole.
        field_name = keys.site_type_field(q.device_type) if q.device_type else "device_count"
        counters = await self._counters([q.site_id] if q.site_id else sites, [field_name])
        count = sum(c[field_name] for c in counters.values())
        what = _plural(count, q.device_type or "device") if q.device_type else _plural(count, "device")
        where = f"{q.site_id} has {what}" if q.site_id else f"The region's sites have {what}"
        text = (
            f"{where} reporting. Across the region, {int(active)} of {int(known)} devices sent telemetry "
            f"in the last {self.window:g} s."
        ) + _sample_note(q.site_id, region)
        data["device_count"] = count
        query = f"HMGET {keys.site_metrics('<site>')} {field_name} (each site asked); {query}"
        return LiveAnswer(text, data, query)

    async def _users(self, q: LiveQuery) -> LiveAnswer:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.ACTIVE_USERS)
            pipe.get(keys.USERS_ACTIVITY_LATEST_TS)
            count, as_of = await pipe.execute()
        if count is None:
            return LiveAnswer(
                "No user-activity message has been received yet, so I do not know how many users are active.",
                {"active_users": None},
                f"GET {keys.ACTIVE_USERS}",
                abstained=True,
            )
        ids, connected, complete = await self._user_list()
        text = f"{int(count)} users are active according to the newest activity message"
        if connected is not None and complete:
            text += f" ({connected} with at least one connection, {int(count) - connected} idle with none)"
        text += f": {_names(ids, int(count))}." if q.enumerate and ids else "."
        data: dict[str, Any] = {"active_users": int(count), "as_of": float(as_of) if as_of else None}
        if connected is not None and complete:
            data.update(connected_users=connected, idle_users=int(count) - connected)
        if q.enumerate:
            data["users"] = ids[:LIST_LIMIT]
        return LiveAnswer(text, data, f"GET {keys.ACTIVE_USERS}; HSCAN {keys.USERS_ACTIVE} (at most {SCAN_LIMIT:,})")

    async def _user_list(self) -> tuple[list[str], int | None, bool]:
        """The newest message's users (ids sorted), how many have a connection (None without the
        list) and whether every one was read (at most `SCAN_LIMIT`)."""
        ids: list[str] = []
        connected = read = 0
        cursor = 0
        while True:
            cursor, page = await self.redis.hscan(keys.USERS_ACTIVE, cursor, count=PAGE)
            read += len(page)
            for user, value in page.items():
                ids.append(user.decode())
                connected += int(int(json.loads(value).get("connections") or 0) > 0)
            if cursor == 0 or read >= SCAN_LIMIT:
                break
        return sorted(ids), (connected if read else None), cursor == 0

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
        values = await self.redis.hmget(keys.site_metrics(site_id), SITE_FIELDS)  # type: ignore[misc]
        counts = {k: int(v) for k, v in zip(SITE_FIELDS, values, strict=True) if v is not None}
        by_type = {k.removesuffix("_count"): v for k, v in counts.items() if k not in keys.SITE_STATE_FIELDS.values()}
        by_type.pop("device", None)
        total = counts.get("device_count", 0)
        text = (
            f"{site_id} has {_plural(total, 'device')}: {counts.get('ok_count', 0)} OK, "
            f"{counts.get('warn_count', 0)} WARN, {counts.get('alert_count', 0)} ALERT"
            + (f" ({', '.join(f'{n} {t}' for t, n in sorted(by_type.items()))})." if by_type else ".")
        )
        data = {"site_id": site_id, "device_count": total, **counts, "devices_by_type": by_type}
        return LiveAnswer(text, data, f"HMGET {keys.site_metrics(site_id)} {' '.join(SITE_FIELDS)}")

    async def _ranked(self, q: LiveQuery, sites: list[str], region: Sites) -> LiveAnswer:
        """Sites ordered by their devices in the state asked (all devices when none is)."""
        field_name = keys.SITE_STATE_FIELDS[q.state] if q.state else "device_count"
        counts = {site: c[field_name] for site, c in (await self._counters(sites, [field_name])).items()}
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
            every = "All sites" if not region.sampled else f"The {len(sites):,} sites read"
            text = f"The site with the {which} {what} is {lead}. {every}: {listed}.{_sample_note(None, region)}"
        data = {
            "ranked_by": field_name,
            "order": "ascending" if least else "descending",
            "sites": [{"site_id": s, "count": c} for s, c in ranked],
            "site_id": ranked[0][0] if ranked else None,
            "complete": not region.sampled,
        }
        query = " ; ".join(f"HGET {keys.site_metrics(s)} {field_name}" for s in sites[:3]) + " ... (every site)"
        return LiveAnswer(text, data, query, covers={"sites": sites})


def _enough(matched: int, known: int | None) -> bool:
    """A scan for a count a counter already gave stops once it has the devices to name."""
    return known is not None and matched >= min(known, LIST_LIMIT)


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


def past_or_future(found: slots.Slots) -> str:
    """What of the question the live telemetry (now only) cannot honour: a year, day, month, a past
    window ("last week") or a time to come; '' when nothing."""
    when = [str(y) for y in found.years] + list(found.days) + list(found.months)
    if found.window and not re.search(r"\b(?:today|this)\b", found.window, re.IGNORECASE):
        when.append(found.window)
    if found.future:
        when.append("the future")
    return ", ".join(when)


def honours_name(name: str, site: str | None, found: slots.Slots) -> bool:
    """Can the live telemetry honour this name? A state, the site asked (its ID or its name in
    prose), a device type."""
    low = name.lower()
    if low in VOCABULARY or low in slots.STATES or low in slots.DEVICE_TYPES:
        return True
    if site is None:
        return False
    parts = [p for p in re.split(r"[-_]", site.lower()) if p]
    return low == site.lower() or any(low == p or (len(p) < 3 and low.startswith(p)) for p in parts)


def resolve_site(found: slots.Slots, sites: list[str]) -> str | None:
    """The region's site the question names: as an ID, or in prose ("Wyoming Alpha" is WY-ALPHA)."""
    for s in found.sites:
        return s
    words = frozenset(w.lower() for n in found.names for w in re.split(r"[\s-]+", n))
    for site in sites:
        parts = [p for p in site.lower().split("-") if p]
        if len(parts) >= 2 and all(
            (p in words) if len(p) >= 3 else any(w.startswith(p) and len(w) > len(p) for w in words) for p in parts
        ):
            return site
    return None
