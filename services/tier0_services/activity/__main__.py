"""`python -m tier0_services.activity`: consume webapp_active_users into this region's Redis."""

import argparse
import logging
import os
import signal

from prometheus_client import start_http_server
from redis import Redis

from tier0_services.activity.consumer import ActivityConsumer, ConsumerConfig
from tier0_services.activity.metrics import ActivityMetrics
from tier0_services.activity.store import ActivityStore


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description="RabbitMQ user-activity consumer: acks each message only after its Redis write; "
        "invalid messages go to the dead-letter queue webapp_active_users.dead."
    )
    parser.add_argument("--amqp-url", default=env("TIER0_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
                        help="RabbitMQ URL (env TIER0_AMQP_URL)")  # fmt: skip
    parser.add_argument("--redis-url", default=env("TIER0_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="this region's Redis (env TIER0_REDIS_URL)")  # fmt: skip
    parser.add_argument("--prefetch", type=int, default=int(env("TIER0_PREFETCH", "50")),
                        help="unacknowledged messages in flight (env TIER0_PREFETCH)")  # fmt: skip
    parser.add_argument("--metrics-port", type=int, default=int(env("TIER0_METRICS_PORT", "9102")),
                        help="Prometheus /metrics port, 0 to disable (env TIER0_METRICS_PORT)")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = ActivityMetrics()
    if args.metrics_port:
        start_http_server(args.metrics_port, registry=metrics.registry)
    redis = Redis.from_url(args.redis_url, socket_timeout=2, socket_connect_timeout=2)
    consumer = ActivityConsumer(ConsumerConfig(args.amqp_url, prefetch=args.prefetch), ActivityStore(redis), metrics)
    signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
    signal.signal(signal.SIGINT, lambda *_: consumer.stop())
    consumer.run()


if __name__ == "__main__":
    main()
