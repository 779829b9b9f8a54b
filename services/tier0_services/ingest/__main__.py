"""`python -m tier0_services.ingest`: run one ingest worker process (flags or TIER0_* variables)."""

import argparse
import asyncio
import logging
import os
import signal
import sys

from prometheus_client import REGISTRY, start_http_server

from tier0_contract import keys
from tier0_services.ingest.metrics import IngestMetrics
from tier0_services.ingest.worker import Config, IngestWorker


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TIER0_{name}", default)


def parse_args(argv: list[str] | None = None) -> tuple[Config, int, str]:
    d = Config()
    p = argparse.ArgumentParser(
        prog="python -m tier0_services.ingest",
        description="MQTT ingest worker: subscribes $share/<group>/og/field/# (QoS 1), validates each "
        "device message, writes batches to its region's Redis while that Redis is the primary, and "
        "acknowledges each message only after its batch is written. Every flag has a TIER0_<FLAG> variable.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--region", default=_env("REGION", d.region), help="region this worker belongs to")
    p.add_argument("--redis-url", default=_env("REDIS_URL", d.redis_url), help="the region's Redis")
    p.add_argument("--mqtt-host", default=_env("MQTT_HOST", d.mqtt_host))
    p.add_argument("--mqtt-port", type=int, default=int(_env("MQTT_PORT", str(d.mqtt_port))))
    p.add_argument("--client-id", default=_env("CLIENT_ID", os.environ.get("POD_NAME", "")),
                   help="MQTT client id, stable across restarts (default: tier0-ingest-<region>)")  # fmt: skip
    p.add_argument("--share-group", default=_env("SHARE_GROUP", ""),
                   help="shared-subscription group (default: ingest-<region>)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=int(_env("BATCH_SIZE", str(d.batch_size))),
                   help="messages per Redis write (a partial batch waits at most --max-delay)")  # fmt: skip
    p.add_argument("--max-delay", type=float, default=float(_env("MAX_DELAY", str(d.max_delay))), help="seconds")
    p.add_argument("--receive-maximum", type=int, default=int(_env("RECEIVE_MAXIMUM", str(d.receive_maximum))),
                   help="unacknowledged messages the broker may send ahead (MQTT 5 Receive Maximum)")  # fmt: skip
    p.add_argument("--session-expiry", type=int, default=int(_env("SESSION_EXPIRY", str(d.session_expiry))),
                   help="seconds the broker keeps this worker's session (and queue) while it is away")  # fmt: skip
    p.add_argument("--role-interval", type=float, default=float(_env("ROLE_INTERVAL", str(d.role_interval))),
                   help="seconds between INFO replication checks")  # fmt: skip
    p.add_argument("--active-window", type=float, default=float(_env("ACTIVE_WINDOW", str(d.active_window))),
                   help=f"a device is active if seen within this many seconds ({keys.ACTIVE_DEVICES})")  # fmt: skip
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "9101")),
                   help="Prometheus /metrics port (0: none)")  # fmt: skip
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
    config = Config(
        region=a.region, redis_url=a.redis_url, mqtt_host=a.mqtt_host, mqtt_port=a.mqtt_port,
        client_id=a.client_id, share_group=a.share_group, batch_size=a.batch_size, max_delay=a.max_delay,
        receive_maximum=a.receive_maximum, session_expiry=a.session_expiry, role_interval=a.role_interval,
        active_window=a.active_window,
    )  # fmt: skip
    return config, a.metrics_port, a.log_level


async def serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await IngestWorker(config, IngestMetrics(REGISTRY)).run(stop)


def main(argv: list[str] | None = None) -> int:
    config, metrics_port, level = parse_args(argv)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gmqtt").setLevel(logging.WARNING)
    if metrics_port:
        start_http_server(metrics_port)
    try:
        import uvloop

        uvloop.run(serve(config))
    except ImportError:
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
