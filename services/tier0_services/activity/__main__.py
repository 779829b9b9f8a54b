"""`python -m tier0_services.activity`: consume webapp_active_users into the pair's current primary."""

import logging
import signal
import sys

from pydantic import ValidationError

from tier0_services import healthz
from tier0_services.activity.consumer import ActivityConsumer
from tier0_services.activity.metrics import ActivityMetrics
from tier0_services.activity.settings import Settings


def parse_args(argv: list[str] | None = None) -> Settings:
    try:
        return Settings(_cli_parse_args=sys.argv[1:] if argv is None else argv)  # type: ignore[call-arg]
    except ValidationError as exc:
        sys.exit(f"python -m tier0_services.activity: {exc}")


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = ActivityMetrics()
    consumer = ActivityConsumer(config, metrics)
    if config.metrics_port:
        healthz.serve(
            config.metrics_port,
            metrics.registry,
            lambda: healthz.verdict(consumer.progress, config.heartbeat_interval),
            consumer.liveness,
            config.liveness_max_age,
        )
    signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
    signal.signal(signal.SIGINT, lambda *_: consumer.stop())
    consumer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
