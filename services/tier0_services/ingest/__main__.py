"""`python -m tier0_services.ingest`: run one ingest worker process (`--flags` or TIER0_* variables)."""

import asyncio
import logging
import signal
import sys

from prometheus_client import REGISTRY
from pydantic import ValidationError

from tier0_contract import liveness
from tier0_services import aio, healthz
from tier0_services.ingest.metrics import IngestMetrics
from tier0_services.ingest.settings import Settings
from tier0_services.ingest.worker import IngestWorker


def parse_args(argv: list[str] | None = None) -> Settings:
    try:
        return Settings(_cli_parse_args=sys.argv[1:] if argv is None else argv)  # type: ignore[call-arg]
    except ValidationError as exc:
        sys.exit(f"python -m tier0_services.ingest: {exc}")


async def serve(config: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = IngestWorker(config, IngestMetrics(REGISTRY))
    # The loop stamps its own liveness: /livez fails when this loop is wedged, not when a thread is.
    clock = liveness.LoopClock()
    ticker = asyncio.create_task(liveness.tick_forever(clock), name="liveness")
    if config.metrics_port:
        healthz.serve(
            config.metrics_port,
            REGISTRY,
            lambda: healthz.verdict(worker.progress, config.heartbeat_interval),
            clock,
            config.liveness_max_age,
        )
    try:
        await worker.run(stop)
    finally:
        await aio.cancel_and_wait(ticker)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gmqtt").setLevel(logging.WARNING)
    try:
        import uvloop

        uvloop.run(serve(config))
    except ImportError:
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
