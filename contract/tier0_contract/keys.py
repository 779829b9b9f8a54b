"""Redis key names: the one place they are spelled (they follow the seeds, e.g. `region1:status`).

Writers: the MQTT ingest worker (device keys), the activity consumer (user keys), the operator and
the failover endpoints (region keys). Readers: the region API, in either region (the replica region
reads the same keys from its replicated Redis). Each name says its Redis type and fields; JSON
values are the compact JSON of the contract models in `tier0_contract.models`. Timestamps stored
as numbers are Unix epoch seconds (float).
"""

# --- regions ---------------------------------------------------------------------------------------


def region_status(region: str) -> str:
    """STRING `active` / `standby` / `failing_over`, as the seeds' failover flow writes it."""
    return f"{region}:status"


def region_version(region: str) -> str:
    """STRING deployment version of the region, e.g. `v1.0.0057_region1`."""
    return f"{region}:version"


# --- devices (written by the ingest worker, one Lua call per batch) ---------------------------------

ACTIVE_DEVICES = "stats:active_devices"
"""STRING int: devices whose last message is at most ACTIVE_WINDOW_SECONDS old, i.e.
`ZCOUNT devices:last_seen (now - window) +inf`. Refreshed about once a second by the primary
region's ingest workers (not per message)."""

ACTIVE_WINDOW_SECONDS = 30.0
"""Default activity window of ACTIVE_DEVICES (devices publish every second)."""

DEVICES_LATEST = "devices:latest"
"""HASH device_id -> JSON of the device's newest valid payload (`models.DevicePayload`, compact).
`HGET devices:latest TURB-00912`; `HMGET` for a list of ids (e.g. those of DEVICES_ALERTS)."""

DEVICES_STATE = "devices:state"
"""HASH device_id -> `{site_id}|{device_type}|{state}` of the newest payload (state OK/WARN/ALERT).
Ingest's bookkeeping for the per-site counts (a device that changes state or site moves its
counts); also the cheapest way to read one device's state."""

DEVICES_LAST_SEEN = "devices:last_seen"
"""ZSET device_id -> timestamp_utc of its newest payload (epoch s, clamped to ingest time, so a
device with a clock in the future cannot stay "active"). Also orders redeliveries: a payload older
than the stored score is counted as stale and not applied. Members are never removed."""

DEVICES_ALERTS = "devices:alerts"
"""ZSET device_id -> timestamp_utc (epoch s) of its newest payload, holding exactly the devices whose
newest state is ALERT. `/api/devices/alerts`: `ZREVRANGE devices:alerts 0 99` + `HMGET devices:latest`."""

SITES = "sites"
"""SET of site ids that have sent at least one valid payload (the API answers 404 for others)."""


def site_metrics(site_id: str) -> str:
    """HASH of per-site counts, all integers except `last_seen`:
    `device_count` (distinct devices seen at the site), `ok_count`, `warn_count`, `alert_count`
    (devices whose newest state is OK/WARN/ALERT; the three sum to device_count),
    `<device_type>_count` for each `models.DeviceType` value (e.g. `turbine_count`), and
    `last_seen` (epoch s of the newest payload from the site)."""
    return f"site:{site_id}:metrics"


SITE_STATE_FIELDS = {"OK": "ok_count", "WARN": "warn_count", "ALERT": "alert_count"}
"""Field of `site_metrics` counting each device state."""


def site_type_field(device_type: str) -> str:
    """Field of `site_metrics` counting devices of one type: `turbine_count`, ..."""
    return f"{device_type}_count"


DEVICES_DEAD_LETTER = "deadletter:devices"
"""LIST, newest first, capped at DEAD_LETTER_MAX: device messages that failed validation. Element:
JSON `{"received_at": epoch s, "topic": str, "error": str, "payload": str}` (payload decoded as
UTF-8 with replacement, cut to 2 KiB)."""

DEAD_LETTER_MAX = 10_000

INGEST_STATS = "stats:ingest"
"""HASH of cumulative ingest counters (every worker of the pair, written into the current primary):
`stored` (applied), `stale` / `duplicate` (older than / as old as the stored state, e.g. a
redelivery; not applied), `invalid` (dead-lettered), `too_old` (dead-lettered by
`timestamps.clamp_or_reject`), `future_clamped` (stored with the receive time instead of a
timestamp beyond the skew allowance), `failed` (dead-lettered: the store refused them for good, e.g.
a script error or a key of the wrong type)."""


PAIR_EPOCH = "pair:epoch"
"""STRING int: the RegionPair's epoch (`status.epoch`) at which this Redis became the primary,
written by the operator into the primary when it promotes it (and on the first reconcile). Writers
that can reach both regions' Redis write to the endpoint that reports `role:master` with the
highest PAIR_EPOCH, so a partitioned old primary that still believes it is master is never chosen
over the one the operator promoted."""

PIPELINE_HEARTBEATS = "pipeline:heartbeats"
"""HASH `{component}/{worker}` -> JSON `tier0_contract.pipeline.Heartbeat`, written about once a
second by every ingest worker and activity consumer into the Redis it writes to (so it replicates
with the data); times in it are that Redis server's clock. Read by the region API and the operator
through `pipeline.assess()`."""


# --- users (written by the activity consumer) ------------------------------------------------------

ACTIVE_USERS = "stats:active_users"
"""STRING int: `metrics.active_users` of the newest user-activity message."""

ACTIVE_CONNECTIONS = "stats:active_connections"
"""STRING int: `metrics.active_connections` of the newest user-activity message."""

USERS_ACTIVITY_LATEST = "users:activity:latest"
"""STRING: JSON of the newest `models.UserActivityMessage`, as received (includes the list)."""

USERS_ACTIVITY_LATEST_TS = "users:activity:latest_ts"
"""STRING float: timestamp_utc (epoch s) of USERS_ACTIVITY_LATEST; an older message does not
replace the newest (a redelivery after a consumer restart)."""

USERS_ACTIVE = "users:active"
"""HASH user_id -> JSON `models.ActiveUser` (with its `connections`) from the newest message;
replaced as a whole with each message. `/api/users/connections`: the users with connections > 0."""

USERS_ACTIVITY_HISTORY = "users:activity:history"
"""LIST, newest first, capped at ACTIVITY_HISTORY_MAX: one JSON per applied message
`{"message_id", "timestamp_utc", "site_id", "metrics": {...}}` (the list of users left out)."""

ACTIVITY_HISTORY_MAX = 720
"""One hour of messages at the seeds' 5 s interval."""


def activity_seen(message_id: str) -> str:
    """STRING `1` with a TTL of ACTIVITY_SEEN_TTL_SECONDS: the message was applied (redeliveries of it
    are acknowledged but not applied twice)."""
    return f"users:activity:seen:{message_id}"


ACTIVITY_SEEN_TTL_SECONDS = 24 * 3600

ACTIVITY_STATS = "stats:activity"
"""HASH of cumulative activity-consumer counters: `stored`, `duplicate` (already applied),
`stale` (older than the newest; recorded in history, latest left alone), `too_old` (rejected by
`timestamps.clamp_or_reject`, dead-lettered), `future_clamped` (applied with the receive time
instead of a timestamp beyond the skew allowance), `invalid` (sent to the
RabbitMQ dead-letter queue `topics.ACTIVITY_DEAD_LETTER_QUEUE`), `failed` (dead-lettered too: Redis
refused the write for a reason retrying does not cure)."""


# --- AI features (issue 4): image catalog, document corpus, access-log aggregates -------------------

IMAGE_EMBEDDING_PREFIX = "embedding:"
"""Prefix of the image HASHes, as the seeds spell them (`embedding:WY-ALPHA_turbine_Turbine1.jpg`);
the RediSearch index, when the module is present, is declared over this prefix."""


def image_embedding(image_id: str) -> str:
    """HASH of one catalogued image: `embedding` (float32 bytes), `site_id`, `device_type`,
    `description`, `tags` (comma-separated), `filename`, `mode` (`image` or `caption`), `model`."""
    return f"{IMAGE_EMBEDDING_PREFIX}{image_id}"


AI_SAMPLES = "ai:samples"
"""HASH of the start-up sample loading, replicated with the data it describes: `plan` (the kinds
the first region API to find this dataset on a primary saw empty, comma-separated: `images`,
`corpus`, `logs`; empty string for none) and one field per loaded kind (ISO time). Whichever
region API serves the primary finishes the plan, so a transition in the middle of loading does not
leave the samples half loaded, and a restart never loads a kind twice."""

IMAGE_IDS = "images:ids"
"""SET of the catalogued image ids (the numpy search path and `/api/images/list` read it whole),
at most IMAGES_MAX of them."""
IMAGES_MAX = 20_000
"""Most images the catalog holds (default of `TIER0_AI_IMAGES_MAX`): an upload that would add ids
beyond it is refused whole (409), replacing a catalogued id still works. Generous for a fleet's
pictures, and small enough to read whole: at Cohere's 1,536 float32 dimensions each image is about
6 kB, 120 MB in Redis and as much in the API's numpy search matrix."""
IMAGE_VERSION = "images:version"
"""Counter bumped on every catalog change, so that in-process vector caches know to reload."""
IMAGE_INDEX = "idx:images"
"""RediSearch index name over `embedding:*` (only when the module is loaded)."""

PASSAGE_PREFIX = "rag:passage:"
"""Prefix of the corpus passage HASHes (RediSearch indexes them as `idx:passages` when present)."""


def passage(passage_id: str) -> str:
    """HASH of one corpus passage: `doc_id`, `title`, `source`, `text`, `embedding` (float32)."""
    return f"{PASSAGE_PREFIX}{passage_id}"


def document(doc_id: str) -> str:
    """HASH of one corpus document: `title`, `source`, `tags`, `passages` (count), `added_at`."""
    return f"rag:doc:{doc_id}"


DOCUMENT_IDS = "rag:docs"
"""SET of document ids in the corpus."""
PASSAGE_IDS = "rag:passages"
"""SET of passage ids in the corpus (`{doc_id}#{n}`), at most PASSAGES_MAX of them (every document
has at least one passage, so DOCUMENT_IDS is bounded by it too)."""
PASSAGES_MAX = 20_000
"""Most passages the corpus holds (default of `TIER0_AI_PASSAGES_MAX`): a document that would add
passages beyond it is refused whole (409), replacing one with as many passages or fewer still works.
About 14 MB of notes (passages are cut at 700 characters); each passage is about 7 kB with Cohere's
vectors, and the corpus is read whole into BM25 and the numpy search matrix."""
CORPUS_VERSION = "rag:version"
"""Counter bumped on every corpus change (BM25 and vector caches reload when it moves)."""
PASSAGE_INDEX = "idx:passages"
"""RediSearch index name over `rag:passage:*` (only when the module is loaded)."""

LOGS_MAX_MEMBERS = 10_000
"""Most members each access-log ZSET keeps (the least frequent go, `ZREMRANGEBYRANK` after each
batch): exact figures until a set holds this many distinct IPs or paths. The region API records
route templates (`/api/images/site/{site_id}`, `<unmatched>` for unknown paths), so its own traffic
adds a few dozen paths at most; the cap bounds imported logs and many client IPs."""
LOGS_MEMBER_MAX_CHARS = 256
"""Longest path or IP kept as a member (longer ones are cut, ending in `…`)."""

LOGS_TOTAL = "logs:total"
"""Count of access-log entries aggregated (region API's own log plus imported files)."""
LOGS_BY_STATUS = "logs:by_status"
"""HASH status code -> count."""
LOGS_BY_METHOD = "logs:by_method"
"""HASH HTTP method -> count (`OTHER` for a method HTTP does not define)."""
LOGS_BY_DAY = "logs:by_day"
"""HASH `YYYY-MM-DD` (UTC) -> count for the newest LOGS_MAX_DAYS days, and LOGS_BY_DAY_EARLIER ->
the requests of older days (summed when a newer day took their field)."""
LOGS_MAX_DAYS = 5 * 366
"""Most day fields LOGS_BY_DAY keeps (default of `TIER0_AI_LOGS_MAX_DAYS`): five years of the API's
own traffic; an imported log can name any day, and the hash is read whole."""
LOGS_BY_DAY_EARLIER = "earlier"
"""Field of LOGS_BY_DAY summing the requests of the days older than the LOGS_MAX_DAYS it keeps."""
LOGS_IPS = "logs:ips"
"""ZSET client IP -> number of requests."""
LOGS_PATHS = "logs:paths"
"""ZSET path (query string dropped; the region API's own requests by route template) -> number of
requests."""
LOGS_ERROR_PATHS = "logs:error_paths"
"""ZSET path -> number of requests answered 4xx/5xx."""
LOGS_ERROR_IPS = "logs:error_ips"
"""ZSET client IP -> number of requests answered 4xx/5xx ("which IPs have the most errors")."""
LOGS_LATENCY = "logs:latency"
"""HASH `sum_ms` (float), `count` (entries that carried a latency)."""
LOGS_LATENCY_HISTOGRAM = "logs:latency:histogram"
"""HASH latency bucket -> count: each latency rounded to 3 significant digits (`971`, `12.3`,
`0.512` ms), so percentiles are exact for whole-millisecond logs under 1 s and within 0.5% otherwise;
latencies outside 0.001 ms .. 1e7 ms count at the bound (at most 9,000 fields)."""
LOGS_EXTREMES = "logs:extremes"
"""ZSET of running extremes kept with ZADD GT/LT: `max_latency_ms`, `first_ts`, `last_ts` (epoch s)."""
LOGS_RECENT_ERRORS = "logs:recent_errors"
"""LIST (newest first, capped at 200) of JSON access-log entries answered 4xx/5xx."""


def logs_ips_for_status(status: int) -> str:
    """ZSET client IP -> number of requests answered with `status` (`/logs/errors/{code}`)."""
    return f"logs:ips:{status}"


def logs_paths_for_status(status: int) -> str:
    """ZSET path -> number of requests answered with `status` ("which paths return 404 most")."""
    return f"logs:paths:{status}"


def logs_ips_for_class(status_class: int) -> str:
    """ZSET client IP -> number of requests answered `{status_class}xx` (`logs:ips:4xx`)."""
    return f"logs:ips:{status_class}xx"


def logs_paths_for_class(status_class: int) -> str:
    """ZSET path -> number of requests answered `{status_class}xx` (`logs:paths:5xx`)."""
    return f"logs:paths:{status_class}xx"


# --- data classes: what Redis may evict, what has a TTL, what is bounded otherwise ------------------
#
# Redis runs with `maxmemory` below its container's limit and MAXMEMORY_POLICY (chart values
# `redis.maxmemory*`, the process stack and the test fixtures through `tier0_dev.programs.redis`).
# A `volatile-*` policy evicts only keys that carry a TTL, and only the EPHEMERAL class has one: when
# nothing volatile is left, Redis refuses writes that need memory (`OOM command not allowed`) and
# the writer sees it (the ingest worker does not acknowledge the batch, the API answers 503), so
# acknowledged telemetry is never evicted silently.

TELEMETRY = "telemetry"
"""Acknowledged device and user data and the counters derived from them as they are stored:
never evicted, no TTL; bounded by the fleet (one entry per device, site, user) or a cap."""
CONTROL = "control"
"""What the pair is steered by (region status and version, epoch, heartbeats, the sample plan):
never evicted, no TTL, a handful of small keys."""
CATALOG = "catalog"
"""Image catalog and document corpus (AI): never evicted, no TTL; grows only through the
authenticated upload endpoints (bounded bodies), up to IMAGES_MAX images and PASSAGES_MAX passages."""
ACCESS_LOG = "access-log"
"""Access-log aggregates: never evicted, no TTL (an imported log has no natural expiry), bounded
instead: route templates, LOGS_MAX_MEMBERS per sorted set, LOGS_MEMBER_MAX_CHARS per member,
LOGS_MAX_DAYS day fields."""
DEAD_LETTER = "dead-letter"
"""Rejected device messages: never evicted, no TTL, capped at DEAD_LETTER_MAX."""
EPHEMERAL = "ephemeral"
"""Keys with a TTL, the only ones Redis may evict (the nearest to expiry first): losing one early
costs a redelivery that is applied again, nothing acknowledged."""

MAXMEMORY_POLICY = "volatile-ttl"
"""Redis `maxmemory-policy`: evict only keys with a TTL (EPHEMERAL), those closest to expiry
first; never the others (see above). The chart's default `redis.maxmemoryPolicy` is this value."""

DATA_CLASSES: dict[str, str] = {
    region_status("{region}"): CONTROL,
    region_version("{region}"): CONTROL,
    PAIR_EPOCH: CONTROL,
    PIPELINE_HEARTBEATS: CONTROL,
    AI_SAMPLES: CONTROL,
    ACTIVE_DEVICES: TELEMETRY,
    DEVICES_LATEST: TELEMETRY,
    DEVICES_STATE: TELEMETRY,
    DEVICES_LAST_SEEN: TELEMETRY,
    DEVICES_ALERTS: TELEMETRY,
    SITES: TELEMETRY,
    site_metrics("{site_id}"): TELEMETRY,
    INGEST_STATS: TELEMETRY,
    ACTIVE_USERS: TELEMETRY,
    ACTIVE_CONNECTIONS: TELEMETRY,
    USERS_ACTIVITY_LATEST: TELEMETRY,
    USERS_ACTIVITY_LATEST_TS: TELEMETRY,
    USERS_ACTIVE: TELEMETRY,
    USERS_ACTIVITY_HISTORY: TELEMETRY,
    ACTIVITY_STATS: TELEMETRY,
    activity_seen("{message_id}"): EPHEMERAL,
    DEVICES_DEAD_LETTER: DEAD_LETTER,
    image_embedding("{image_id}"): CATALOG,
    IMAGE_IDS: CATALOG,
    IMAGE_VERSION: CATALOG,
    passage("{passage_id}"): CATALOG,
    document("{doc_id}"): CATALOG,
    DOCUMENT_IDS: CATALOG,
    PASSAGE_IDS: CATALOG,
    CORPUS_VERSION: CATALOG,
    LOGS_TOTAL: ACCESS_LOG,
    LOGS_BY_STATUS: ACCESS_LOG,
    LOGS_BY_METHOD: ACCESS_LOG,
    LOGS_BY_DAY: ACCESS_LOG,
    LOGS_IPS: ACCESS_LOG,
    LOGS_PATHS: ACCESS_LOG,
    LOGS_ERROR_PATHS: ACCESS_LOG,
    LOGS_ERROR_IPS: ACCESS_LOG,
    LOGS_LATENCY: ACCESS_LOG,
    LOGS_LATENCY_HISTOGRAM: ACCESS_LOG,
    LOGS_EXTREMES: ACCESS_LOG,
    LOGS_RECENT_ERRORS: ACCESS_LOG,
    "logs:ips:{status}": ACCESS_LOG,
    "logs:paths:{status}": ACCESS_LOG,
    "logs:ips:{n}xx": ACCESS_LOG,
    "logs:paths:{n}xx": ACCESS_LOG,
}
"""Every key (a `{placeholder}` for the variable part) and its data class; `data_class(key)`."""

WITH_TTL = frozenset(k for k, c in DATA_CLASSES.items() if c == EPHEMERAL)
"""The keys written with a TTL: the only ones `MAXMEMORY_POLICY` may evict."""


def data_class(key: str) -> str | None:
    """The data class of a concrete key name (None: not a key tier0 writes)."""
    for pattern, cls in DATA_CLASSES.items():
        head, brace, rest = pattern.partition("{")
        if not brace:
            if key == pattern:
                return cls
            continue
        tail = rest.partition("}")[2]
        if key.startswith(head) and key.endswith(tail) and len(key) > len(head) + len(tail):
            middle = key[len(head) : len(key) - len(tail)]
            if ":" not in middle or head in (IMAGE_EMBEDDING_PREFIX, PASSAGE_PREFIX):
                return cls
    return None
