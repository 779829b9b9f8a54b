"""Who may talk to RabbitMQ and how much its queues hold, on the real rabbitmq-server configured as the
chart configures it (tier0_services.access.rabbitmq definitions, topics' queue arguments).

What is tested: there is no guest user; the application user is refused the default vhost and any
queue or exchange but the activity queue's three; the activity queue refuses a message beyond its
length (the publisher's confirm is a nack: nothing accepted is dropped); a message delivered and
returned `ACTIVITY_DELIVERY_LIMIT` times goes to the dead-letter queue instead of looping; the
dead-letter queue keeps its newest messages up to its bound (the oldest go).
"""

import time
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.pipeline.test_activity_pipeline import connect
from tier0_contract import topics
from tier0_dev import programs
from tier0_services.access import rabbitmq as rabbitmq_access
from tier0_services.activity.consumer import amqp_parameters, declare

pytestmark = pytest.mark.integration

Channel = Any


@pytest.fixture
def channel(rabbitmq_port: int, local_secrets: programs.Secrets) -> Iterator[Channel]:
    """A confirming channel of the application user, on a freshly declared queue set."""
    conn = connect(rabbitmq_port, local_secrets)
    ch = conn.channel()
    for q in (topics.ACTIVITY_QUEUE, topics.ACTIVITY_DEAD_LETTER_QUEUE):
        ch.queue_delete(q)
    declare(ch)
    ch.confirm_delivery()
    yield ch
    for q in (topics.ACTIVITY_QUEUE, topics.ACTIVITY_DEAD_LETTER_QUEUE):
        ch.queue_delete(q)
    conn.close()


def test_there_is_no_guest_and_the_app_user_has_only_its_vhost(
    rabbitmq_port: int, local_secrets: programs.Secrets
) -> None:
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{rabbitmq_port}/%2F"))
    default_vhost = amqp_parameters(
        f"amqp://127.0.0.1:{rabbitmq_port}/%2F", rabbitmq_access.APP, local_secrets.amqp_password()
    )
    with pytest.raises((pika.exceptions.ProbableAccessDeniedError, pika.exceptions.ConnectionClosedByBroker)):
        pika.BlockingConnection(default_vhost)
    conn = connect(rabbitmq_port, local_secrets)
    try:
        for what, args in (
            ("queue_declare", ("someone_elses_queue",)),
            ("exchange_declare", ("someone_elses_exchange", "fanout")),
            ("basic_publish", ("amq.topic", "x", b"{}")),
        ):
            ch = conn.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                getattr(ch, what)(*args)
                ch.basic_qos(prefetch_count=1)  # a round trip, so an asynchronous refusal arrives
            assert refused.value.reply_code == 403
    finally:
        conn.close()


def fill(channel: Channel, exchange: str, routing_key: str, n: int, queue: str, expect: int) -> None:
    """Publish `n` small messages without confirms (fast) on a second channel, then wait until
    `queue` holds `expect`."""
    bulk = channel.connection.channel()
    for i in range(n):
        bulk.basic_publish(exchange, routing_key, b"%d" % i)
    for _ in range(600):
        if channel.queue_declare(queue, passive=True).method.message_count >= expect:
            break
        time.sleep(0.05)
    bulk.close()


def test_the_activity_queue_refuses_what_exceeds_its_length(channel: Channel) -> None:
    fill(channel, "", topics.ACTIVITY_QUEUE, topics.ACTIVITY_MAX_LENGTH - 1, topics.ACTIVITY_QUEUE, 9_999)
    accepted = 0
    with pytest.raises(pika.exceptions.NackError):
        for _ in range(3):  # a quorum queue takes one message past its limit before it refuses
            channel.basic_publish("", topics.ACTIVITY_QUEUE, b"more", mandatory=True)
            accepted += 1
    assert 1 <= accepted <= 2
    depth = channel.queue_declare(topics.ACTIVITY_QUEUE, passive=True).method.message_count
    assert depth == topics.ACTIVITY_MAX_LENGTH - 1 + accepted
    _, _, first = channel.basic_get(topics.ACTIVITY_QUEUE, auto_ack=True)
    assert first == b"0"  # what was accepted stays: the newest is refused, nothing old is dropped


def test_a_message_returned_too_often_is_dead_lettered(channel: Channel) -> None:
    channel.basic_publish("", topics.ACTIVITY_QUEUE, b"crashes every consumer", mandatory=True)
    deliveries = 0
    while deliveries < 2 * topics.ACTIVITY_DELIVERY_LIMIT:
        method, _, _ = channel.basic_get(topics.ACTIVITY_QUEUE)
        if method is None:
            break
        deliveries += 1
        channel.basic_nack(method.delivery_tag, requeue=True)  # as a consumer that dies holding it
    assert topics.ACTIVITY_DELIVERY_LIMIT <= deliveries <= topics.ACTIVITY_DELIVERY_LIMIT + 1
    _, _, dead = channel.basic_get(topics.ACTIVITY_DEAD_LETTER_QUEUE, auto_ack=True)
    assert dead == b"crashes every consumer"


def test_the_dead_letter_queue_keeps_only_its_newest(channel: Channel) -> None:
    extra = 5
    limit = topics.DEAD_LETTER_MAX_LENGTH
    fill(channel, topics.ACTIVITY_DLX, "", limit + extra, topics.ACTIVITY_DEAD_LETTER_QUEUE, limit)
    time.sleep(0.5)  # a quorum queue trims a message past its limit a moment after taking it
    depth = channel.queue_declare(topics.ACTIVITY_DEAD_LETTER_QUEUE, passive=True).method.message_count
    assert depth == limit
    _, _, oldest = channel.basic_get(topics.ACTIVITY_DEAD_LETTER_QUEUE, auto_ack=True)
    assert oldest == b"%d" % extra
