"""Where telemetry travels: the MQTT topic scheme and the RabbitMQ names, spelled once.

Device messages go to `og/field/{site_id}/{device_type}/{device_id}` (the seeds' convention). Ingest
workers subscribe through an MQTT v5 shared subscription so that the broker splits the stream
between them instead of giving every worker every message.
"""

from typing import Any, NamedTuple

TOPIC_PREFIX = "og/field"
ALL_DEVICES = f"{TOPIC_PREFIX}/#"
INGEST_GROUP = "ingest"


class DeviceTopic(NamedTuple):
    site_id: str
    device_type: str
    device_id: str


def device_topic(site_id: str, device_type: str, device_id: str) -> str:
    """`og/field/WY-ALPHA/turbine/TURB-00912`."""
    return f"{TOPIC_PREFIX}/{site_id}/{device_type}/{device_id}"


def parse_device_topic(topic: str) -> DeviceTopic | None:
    """The three segments of a device topic, or None when `topic` is not one (never raises)."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "og" or parts[1] != "field" or not all(parts[2:]):
        return None
    return DeviceTopic(parts[2], parts[3], parts[4])


def shared_subscription(group: str = INGEST_GROUP, topic_filter: str = ALL_DEVICES) -> str:
    """`$share/ingest/og/field/#`: every worker in `group` gets a share of the device stream."""
    return f"$share/{group}/{topic_filter}"


# --- RabbitMQ (user activity) ---------------------------------------------------------------------

ACTIVITY_VHOST = "tier0"
"""The RabbitMQ virtual host of user activity: the application user has permissions here only."""

ACTIVITY_QUEUE = "webapp_active_users"
"""Durable queue the user simulator publishes to (persistent messages, publisher confirms)."""

ACTIVITY_DLX = "webapp_active_users.dlx"
"""Fanout exchange that receives messages the consumer rejects (poison messages)."""

ACTIVITY_DEAD_LETTER_QUEUE = "webapp_active_users.dead"
"""Durable queue bound to ACTIVITY_DLX: where poison messages are kept for inspection."""


ACTIVITY_DELIVERY_LIMIT = 20
"""Deliveries of one message before RabbitMQ dead-letters it: a message whose handling crashes the
consumer (each crash returns it to the queue) stops after this many tries instead of looping."""
ACTIVITY_MAX_LENGTH = 10_000
ACTIVITY_MAX_LENGTH_BYTES = 128 * 1024 * 1024
"""Bounds of ACTIVITY_QUEUE (about 14 hours of the simulator's one message per 5 s): when reached,
RabbitMQ refuses new messages (`reject-publish`: the publisher's confirm is a nack, and the
publisher retries), so nothing already accepted is dropped."""
DEAD_LETTER_MAX_LENGTH = 10_000
DEAD_LETTER_MAX_LENGTH_BYTES = 64 * 1024 * 1024
"""Bounds of ACTIVITY_DEAD_LETTER_QUEUE: beyond them the oldest dead letters go (`drop-head`)."""


def activity_queue_arguments() -> dict[str, Any]:
    """Arguments of ACTIVITY_QUEUE. Publisher and consumer both declare the queue, and RabbitMQ
    refuses a redeclaration with different arguments, so both take them from here. A quorum queue
    (RabbitMQ 3.8+, the chart's 4.1 and the node's 3.10 alike): replicated when the broker is a
    cluster, and the only queue type with a delivery limit."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": ACTIVITY_DLX,
        "x-delivery-limit": ACTIVITY_DELIVERY_LIMIT,
        "x-max-length": ACTIVITY_MAX_LENGTH,
        "x-max-length-bytes": ACTIVITY_MAX_LENGTH_BYTES,
        "x-overflow": "reject-publish",
    }


def dead_letter_queue_arguments() -> dict[str, Any]:
    """Arguments of ACTIVITY_DEAD_LETTER_QUEUE: bounded, the oldest dropped first."""
    return {
        "x-queue-type": "quorum",
        "x-max-length": DEAD_LETTER_MAX_LENGTH,
        "x-max-length-bytes": DEAD_LETTER_MAX_LENGTH_BYTES,
        "x-overflow": "drop-head",
    }
